"""What PostgreSQL spends per poll on a worker's statements: as the store sends them, and batched.

    python bench/_stores_sql.py [--jobs 5000] [--polls 20000]

A helper of stores.py, for its part 1: where PostgreSQL's CPU per poll goes,
and what batching would save. On a throwaway cluster (``tests/postgres.py``)
it opens a ``PostgresJobStore``, adopts ``--jobs`` jobs with
``AsyncEngine.track_many`` (all due at once), then replays, with psycopg on
one connection, the statements a worker sends for each poll of a plain
(no-change) step, in four ways:

- as today: the claim ``UPDATE … WHERE key IN (SELECT … ORDER BY due LIMIT n
  FOR UPDATE SKIP LOCKED) RETURNING …`` for one job and the fenced commit
  ``UPDATE … WHERE key AND token``, each between ``BEGIN`` and ``COMMIT``;
- the same two statements without ``BEGIN``/``COMMIT`` (each a transaction of
  its own: one round trip);
- one claim for 64 jobs, then 64 single-statement commits;
- one claim for 64 jobs, then one commit for all 64 (``UPDATE … FROM
  unnest(…)``).

Each commit writes the job's own snapshot back (same size as a real step)
and a due time still in the past, so that every job stays claimable. For
each way: PostgreSQL's CPU per poll (the postmaster and its backends, from
/proc), the client's, and the wall time. The SQL mirrors
``engine/stores/_postgres.py`` at the time of writing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from _stores_proc import scale_for, tree_cpu_seconds, write_spec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import AsyncEngine
from tests.postgres import running_cluster

BATCH = 64
CLAIM = (
    "UPDATE statepoll.jobs SET owner = %(me)s, token = token + 1 "
    "WHERE key IN (SELECT j.key FROM statepoll.jobs j WHERE NOT j.done "
    "AND j.due <= %(now)s AND j.shelved <= %(now)s "
    "AND (j.owner IS NULL OR NOT EXISTS (SELECT 1 FROM statepoll.owners o "
    "WHERE o.owner = j.owner AND o.lease_until >= %(now)s)) "
    "ORDER BY j.due LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
    "RETURNING key, token, snapshot, due, job_id, audit_seq, audit_head"
)
COMMIT = (
    "UPDATE statepoll.jobs SET job_id = %s, phase = %s, done = %s, due = %s, "
    "owner = %s, audit_seq = %s, audit_head = %s, snapshot = %s, updated = %s "
    "WHERE key = %s AND token = %s"
)
COMMIT_MANY = (
    "UPDATE statepoll.jobs j SET due = v.due, owner = NULL, snapshot = v.snapshot, "
    "updated = %s FROM unnest(%s::text[], %s::bigint[], %s::float8[], %s::text[]) "
    "AS v(key, token, due, snapshot) WHERE j.key = v.key AND j.token = v.token"
)
#: What a claim returns: key, token, snapshot, due, job_id, audit_seq, audit_head.
Row = tuple[str, int, str, float, str, int, str]
#: The owner the replayed claims take jobs as (registered with a long lease).
ME = "bench:replay"


async def _adopt(url: str, jobs: int, spec: Path) -> None:
    # Every job due at once (a frozen clock at 0): the replay's claims always find some.
    class _Zero:
        def now(self) -> float:
            return 0.0

        async def sleep_until(self, deadline: float) -> None:
            await asyncio.sleep(deadline)

    async with AsyncEngine(store=url, clock=_Zero(), time_scale=scale_for(1.0)) as e:
        await e.track_many(str(spec), "job", (f"job-{i:07d}" for i in range(jobs)))


class _Replay:
    """One connection replaying a worker's statements."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.now = time.time()
        self.conn.execute(
            "INSERT INTO statepoll.owners (owner, lease_until, started) "
            "VALUES (%s, %s, %s)",
            (ME, self.now + 3600, self.now),
        )

    def claim(self, limit: int, *, tx: bool) -> list[Row]:
        params = {"me": ME, "now": self.now, "limit": limit}
        if tx:
            with self.conn.transaction():
                return self.conn.execute(CLAIM, params).fetchall()
        return self.conn.execute(CLAIM, params).fetchall()

    def commit(self, row: Row, *, tx: bool) -> None:
        key, token, snapshot, due, job_id, seq, head = row
        # What a plain step writes: the same state, a new due time (still past).
        params = (job_id, "poll", False, due + 1e-6, None, seq, head, snapshot)
        params += (self.now, key, token)
        if tx:
            with self.conn.transaction():
                self.conn.execute(COMMIT, params)
            return
        self.conn.execute(COMMIT, params)

    def commit_many(self, rows: list[Row]) -> None:
        keys, tokens, snapshots, dues, *_ = zip(*rows, strict=True)
        self.conn.execute(
            COMMIT_MANY,
            (
                self.now,
                list(keys),
                list(tokens),
                [d + 1e-6 for d in dues],
                list(snapshots),
            ),
        )


def _ways(replay: _Replay) -> dict[str, Callable[[], int]]:
    """Each way runs one round of polls and returns how many it made."""

    def today() -> int:
        rows = replay.claim(1, tx=True)
        for row in rows:
            replay.commit(row, tx=True)
        return len(rows)

    def no_begin() -> int:
        rows = replay.claim(1, tx=False)
        for row in rows:
            replay.commit(row, tx=False)
        return len(rows)

    def claim_many() -> int:
        rows = replay.claim(BATCH, tx=False)
        for row in rows:
            replay.commit(row, tx=False)
        return len(rows)

    def batched() -> int:
        rows = replay.claim(BATCH, tx=False)
        if rows:
            replay.commit_many(rows)
        return len(rows)

    return {
        "claim 1 + commit, each in BEGIN/COMMIT (today)": today,
        "the same without BEGIN/COMMIT": no_begin,
        f"claim {BATCH} + {BATCH} single commits": claim_many,
        f"claim {BATCH} + one commit for {BATCH}": batched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--polls", type=int, default=20_000, help="per way")
    args = parser.parse_args()
    with running_cluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        url = cluster.create_database("replay")
        asyncio.run(_adopt(url, args.jobs, write_spec(Path(tmp))))
        replay = _Replay(url)
        size = replay.conn.execute(
            "SELECT avg(length(snapshot)) FROM statepoll.jobs"
        ).fetchone()
        print(
            f"{args.jobs:,} jobs (snapshots of {size[0] if size else 0:,.0f} B on average); "
            f"{args.polls:,} polls per way, one connection; µs per poll"
        )
        print(f"  {'way':<50}{'PostgreSQL CPU':>15}{'client CPU':>11}{'wall':>8}")
        for name, way in _ways(replay).items():
            polls = 0
            pg0, cpu0, t0 = (
                tree_cpu_seconds(cluster.postmaster_pid),
                time.process_time(),
                time.perf_counter(),
            )
            while polls < args.polls:
                polls += way()
            pg1, cpu1, t1 = (
                tree_cpu_seconds(cluster.postmaster_pid),
                time.process_time(),
                time.perf_counter(),
            )
            print(
                f"  {name:<50}{(pg1 - pg0) / polls * 1e6:>15,.0f}"
                f"{(cpu1 - cpu0) / polls * 1e6:>11,.0f}{(t1 - t0) / polls * 1e6:>8,.0f}"
            )
        replay.conn.close()


if __name__ == "__main__":
    main()
