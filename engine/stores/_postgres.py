"""The store for several machines: PostgreSQL, through psycopg 3 (async).

The tables live in their own schema, ``statepoll``, created and migrated by
the store (a ``meta`` row holds the schema version). Due jobs are claimed in
batches with ``UPDATE … WHERE key IN (SELECT … ORDER BY due LIMIT n FOR
UPDATE SKIP LOCKED)``: two workers never wait on each other's rows, and never
take the same one (the pattern of Oban, procrastinate, River and good_job).
Each claim bumps the job's fencing token; each commit names it.

A store keeps a few connections: each is a *writer* of the audit log with its
own chain, so commits run side by side without a lock. A released job that
is due at once is announced with ``NOTIFY statepoll_due``; workers
``LISTEN`` on one more connection and wake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from engine._core.state import JobState
from engine.audit import AuditEntry
from engine.stores._base import (
    SHELVE,
    AuditChain,
    Lease,
    StoreError,
    compact_json,
    owner_gone,
    read_claimed,
    shown_url,
    snapshot_json,
)

try:
    import psycopg
except ImportError:  # pragma: no cover - the postgres extra is not installed
    _MISSING = True
else:
    _MISSING = False

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "PostgresJobStore",
    "postgres_unfinished",
    "read_postgres_records",
]

logger = logging.getLogger("statepoll.store")

#: The PostgreSQL schema (namespace) the tables live in.
SCHEMA: Final = "statepoll"
#: The table layout this code writes; older ones are migrated when opened.
SCHEMA_VERSION: Final = 2
#: Finished jobs stay readable (wait, status, audit heads) this long.
KEEP_DONE: Final = 7 * 24 * 3600.0
#: The channel a released, due job is announced on.
CHANNEL: Final = "statepoll_due"

_DDL: Final = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"CREATE TABLE IF NOT EXISTS {SCHEMA}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.jobs (
        key TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        lifecycle TEXT NOT NULL,
        job_id TEXT NOT NULL,
        phase TEXT NOT NULL,
        done BOOLEAN NOT NULL DEFAULT false,
        due DOUBLE PRECISION NOT NULL,
        owner TEXT,
        token BIGINT NOT NULL DEFAULT 0,
        audit_seq BIGINT NOT NULL DEFAULT 0,
        audit_head TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        updated DOUBLE PRECISION NOT NULL,
        shelved DOUBLE PRECISION NOT NULL DEFAULT 0
    )""",
    f"CREATE INDEX IF NOT EXISTS jobs_due ON {SCHEMA}.jobs (due) WHERE NOT done",
    f"CREATE INDEX IF NOT EXISTS jobs_owner ON {SCHEMA}.jobs (owner) WHERE owner IS NOT NULL",
    f"CREATE INDEX IF NOT EXISTS jobs_finished ON {SCHEMA}.jobs (updated) WHERE done",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.owners (
        owner TEXT PRIMARY KEY,
        lease_until DOUBLE PRECISION NOT NULL,
        started DOUBLE PRECISION NOT NULL
    )""",
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.audit (
        id BIGSERIAL PRIMARY KEY,
        writer TEXT NOT NULL,
        wseq BIGINT NOT NULL,
        job TEXT,
        jseq BIGINT,
        record TEXT NOT NULL,
        hash TEXT NOT NULL,
        UNIQUE (writer, wseq),
        UNIQUE (job, jseq)
    )""",
)

_COMMIT: Final = (
    f"UPDATE {SCHEMA}.jobs SET job_id = %s, phase = %s, done = %s, "
    "due = %s, owner = %s, audit_seq = %s, audit_head = %s, "
    "snapshot = %s, updated = %s WHERE key = %s AND token = %s"
)

#: Free: no owner, or an owner whose heartbeat has lapsed.
_FREE: Final = (
    f"(j.owner IS NULL OR NOT EXISTS (SELECT 1 FROM {SCHEMA}.owners o "
    "WHERE o.owner = j.owner AND o.lease_until >= %(now)s))"
)


@attrs.define
class _Writer(AuditChain):
    """One connection, and the audit chain it writes."""

    conn: Any = attrs.field(default=None, kw_only=True)


class PostgresJobStore:
    """Jobs, owners and the audit log in PostgreSQL (see the module docstring)."""

    def __init__(self, url: str, *, connections: int = 4) -> None:
        """Use the database at ``url`` (``postgresql://user@host:port/dbname``).

        ``connections`` is how many commits may run at once (each connection
        writes its own audit chain); one more connection listens.
        """
        if _MISSING:  # pragma: no cover - the postgres extra is not installed
            msg = (
                "the PostgreSQL store needs psycopg: pip install 'statepoll[postgres]'"
            )
            raise StoreError(msg)
        self._dsn = url
        self.url = shown_url(url)
        self.owner = ""
        self._lease = 30.0
        self._size = max(1, connections)
        self._writers: list[_Writer] = []
        self._idle: asyncio.Queue[_Writer] | None = None
        self._listener: Any = None

    # -- opening ----------------------------------------------------------------------

    async def open(self, owner: str, *, lease: float, now: float) -> None:
        """Connect, create or migrate the schema, register ``owner``, and listen."""
        self.owner = owner
        self._lease = lease
        try:
            first = await self._connect()
            await self._migrate(first)
            self._writers = [_Writer(f"{owner}/0", conn=first)]
            for index in range(1, self._size):
                self._writers.append(
                    _Writer(f"{owner}/{index}", conn=await self._connect())
                )
            self._listener = await self._connect()
            await self._listener.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            await self.close()
            msg = f"cannot open the job store {self.url}: {_first_line(exc)}"
            raise StoreError(msg) from exc
        self._idle = asyncio.Queue()
        for writer in self._writers:
            self._idle.put_nowait(writer)
        async with self._tx() as conn:
            # A writer name used again (an owner name reused by a restart)
            # continues its audit chain instead of clashing with it.
            for writer in self._writers:
                last = await (
                    await conn.execute(
                        f"SELECT wseq, hash FROM {SCHEMA}.audit WHERE writer = %s "
                        "ORDER BY wseq DESC LIMIT 1",
                        (writer.name,),
                    )
                ).fetchone()
                if last is not None:
                    writer.wseq, writer.wprev = int(last[0]), str(last[1])
        async with self._tx() as conn:
            for (other,) in await (
                await conn.execute(
                    f"SELECT owner FROM {SCHEMA}.owners WHERE lease_until >= %s", (now,)
                )
            ).fetchall():
                if owner_gone(other):
                    logger.info(
                        "owner %s of %s is gone: its jobs are free", other, self.url
                    )
                    await conn.execute(
                        f"UPDATE {SCHEMA}.owners SET lease_until = 0 WHERE owner = %s",
                        (other,),
                    )
            await conn.execute(
                f"INSERT INTO {SCHEMA}.owners (owner, lease_until, started) "
                "VALUES (%s, %s, %s) ON CONFLICT (owner) "
                "DO UPDATE SET lease_until = excluded.lease_until",
                (self.owner, now + self._lease, now),
            )

    async def _connect(self) -> Any:
        return await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)

    async def _migrate(self, conn: Any) -> None:
        # One migration at a time, whatever the number of processes opening.
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('statepoll-schema'))"
            )
            for statement in _DDL:
                await conn.execute(statement)
            row = await (
                await conn.execute(
                    f"SELECT value FROM {SCHEMA}.meta WHERE key = 'schema'"
                )
            ).fetchone()
            version = int(row[0]) if row else SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                msg = (
                    f"{self.url} was written by a newer statepoll (schema {version}, "
                    f"this one knows {SCHEMA_VERSION}); upgrade statepoll to use it"
                )
                raise StoreError(msg)
            await conn.execute(
                f"INSERT INTO {SCHEMA}.meta (key, value) VALUES ('schema', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    async def close(self) -> None:
        """Close every connection."""
        for conn in [w.conn for w in self._writers] + [self._listener]:
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    await conn.close()
        self._writers = []
        self._listener = None

    # -- connections ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _writer(self) -> AsyncIterator[_Writer]:
        if self._idle is None:
            msg = f"the job store {self.url} is not open"
            raise StoreError(msg)
        writer = await self._idle.get()
        try:
            yield writer
        finally:
            self._idle.put_nowait(writer)

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[Any]:
        async with self._writer() as writer:
            try:
                async with writer.conn.transaction():
                    yield writer.conn
            except psycopg.Error as exc:
                msg = f"job store {self.url}: {_first_line(exc)}"
                raise StoreError(msg) from exc

    @contextlib.asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[Any]:
        """A connection for statements that are each a transaction of their own."""
        async with self._writer() as writer:
            try:
                yield writer.conn
            except psycopg.Error as exc:
                msg = f"job store {self.url}: {_first_line(exc)}"
                raise StoreError(msg) from exc

    # -- owners -------------------------------------------------------------------------

    async def heartbeat(self, *, now: float) -> None:
        """Extend the owner's lease, and purge finished jobs past their keeping time."""
        async with self._tx() as conn:
            await conn.execute(
                f"UPDATE {SCHEMA}.owners SET lease_until = %s WHERE owner = %s",
                (now + self._lease, self.owner),
            )
            await conn.execute(
                f"DELETE FROM {SCHEMA}.jobs WHERE done AND updated < %s",
                (now - KEEP_DONE,),
            )
            await conn.execute(
                f"DELETE FROM {SCHEMA}.owners WHERE lease_until < %s",
                (now - KEEP_DONE,),
            )

    async def release(self) -> None:
        """Free every job this owner holds, and drop its heartbeat."""
        async with self._tx() as conn:
            await conn.execute(
                f"UPDATE {SCHEMA}.jobs SET owner = NULL WHERE owner = %s", (self.owner,)
            )
            await conn.execute(
                f"DELETE FROM {SCHEMA}.owners WHERE owner = %s", (self.owner,)
            )
            await conn.execute(f"NOTIFY {CHANNEL}")

    # -- writing -------------------------------------------------------------------------

    async def add(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        *,
        hold: bool,
        now: float,
    ) -> Lease:
        """Insert a new job and its first records (see ``JobStore.add``)."""
        [lease] = await self.add_many([(job, entries)], hold=hold, now=now)
        return lease

    async def add_many(
        self,
        jobs: Sequence[tuple[JobState, Sequence[AuditEntry]]],
        *,
        hold: bool,
        now: float,
    ) -> list[Lease]:
        """Insert new jobs and their first records, all in one transaction."""
        async with self._writer() as writer:
            leases, rows, values = writer.first(
                jobs, owner=self.owner if hold else None, now=now
            )
            try:
                async with writer.conn.transaction():
                    await _insert_jobs(writer.conn, values)
                    await _insert(writer.conn, rows)
                    if not hold:
                        await writer.conn.execute(f"NOTIFY {CHANNEL}")
            except psycopg.Error as exc:
                msg = f"job store {self.url}: {_first_line(exc)}"
                raise StoreError(msg) from exc
            writer.advance(rows)
        return leases

    async def commit(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        *,
        hold: bool,
        now: float,
    ) -> Lease | None:
        """Write a step, fenced by ``lease`` (see ``JobStore.commit``)."""
        written = await self._write_step(job, entries, lease, hold=hold, now=now)
        return None if written is None else written[0]

    async def commit_and_add(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        new: tuple[JobState, Sequence[AuditEntry]],
        *,
        hold_new: bool,
        now: float,
    ) -> tuple[Lease, Lease] | None:
        """Write a job's step and insert the job it starts, at once (see ``JobStore``)."""
        written = await self._write_step(
            job, entries, lease, hold=False, now=now, new=new, hold_new=hold_new
        )
        if written is None:
            return None
        moved, added = written
        assert added is not None  # noqa: S101 - a new job was given
        return moved, added

    async def _write_step(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        *,
        hold: bool,
        now: float,
        new: tuple[JobState, Sequence[AuditEntry]] | None = None,
        hold_new: bool = False,
    ) -> tuple[Lease, Lease | None] | None:
        async with self._writer() as writer:
            rows, moved = writer.chain(entries, lease)
            added: Lease | None = None
            values: list[tuple[Any, ...]] = []
            if new is not None:
                # The next job of a chain: in the same transaction, so that a
                # crash can neither lose it nor, the step being fenced, add it twice.
                owner = self.owner if hold_new else None
                [added], first, values = writer.first(
                    [new], owner=owner, now=now, after=rows
                )
                rows.extend(first)
            # Wake the workers for a job due now, and for a new job left to them.
            notify = (not hold and not job.done and job.due <= now) or bool(
                values and not hold_new
            )
            params = (
                job.job_id,
                job.phase.value,
                job.done,
                job.due,
                self.owner if hold else None,
                moved.jseq,
                moved.jhead,
                snapshot_json(job),
                now,
                lease.key,
                lease.token,
            )
            try:
                if not rows and not notify and not values:
                    # One statement is a transaction of its own: a plain poll
                    # needs no BEGIN and COMMIT round trips.
                    cur = await writer.conn.execute(_COMMIT, params)
                    return (moved, None) if cur.rowcount else None
                async with writer.conn.transaction():
                    if values:
                        await _insert_jobs(writer.conn, values)
                    cur = await writer.conn.execute(_COMMIT, params)
                    if cur.rowcount == 0:
                        raise _Fenced  # noqa: TRY301 - rolls the transaction back, caught below
                    await _insert(writer.conn, rows)
                    if notify:
                        await writer.conn.execute(f"NOTIFY {CHANNEL}")
            except _Fenced:
                return None  # rolled back: the job has another owner now
            except psycopg.Error as exc:
                msg = f"job store {self.url}: {_first_line(exc)}"
                raise StoreError(msg) from exc
            writer.advance(rows)
        return moved, added

    # -- reading and claiming ------------------------------------------------------------

    async def claim(
        self, *, now: float, limit: int, due_only: bool = True
    ) -> list[tuple[JobState, Lease]]:
        """Take free, unfinished jobs, the most overdue first (``FOR UPDATE SKIP LOCKED``)."""
        due = "AND j.due <= %(now)s " if due_only else ""
        claimed = []
        # One statement (a transaction of its own): no BEGIN and COMMIT round trips.
        async with self._autocommit() as conn:
            rows = await (
                await conn.execute(
                    f"UPDATE {SCHEMA}.jobs SET owner = %(me)s, token = token + 1 "
                    f"WHERE key IN (SELECT j.key FROM {SCHEMA}.jobs j WHERE NOT j.done "
                    f"{due}AND j.shelved <= %(now)s AND {_FREE} "
                    "ORDER BY j.due LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                    "RETURNING key, token, audit_seq, audit_head, snapshot",
                    {"me": self.owner, "now": now, "limit": limit},
                )
            ).fetchall()
            for key, token, seq, head, snapshot in rows:
                job = read_claimed(key, snapshot, self.url)
                if job is None:
                    # Held by this owner since the claim: nobody else writes it meanwhile.
                    await conn.execute(
                        f"UPDATE {SCHEMA}.jobs SET owner = NULL, shelved = %s WHERE key = %s",
                        (now + SHELVE, key),
                    )
                    continue
                claimed.append((job, Lease(key, int(token), int(seq), head)))
        # RETURNING keeps no order: the most overdue go first.
        claimed.sort(key=lambda pair: pair[0].due)
        return claimed

    async def get(self, key: str) -> JobState | None:
        """Return job ``key`` as last committed."""
        async with self._autocommit() as conn:
            row = await (
                await conn.execute(
                    f"SELECT snapshot FROM {SCHEMA}.jobs WHERE key = %s", (key,)
                )
            ).fetchone()
        return None if row is None else JobState.from_json(json.loads(row[0]))

    async def next_due(self, *, now: float) -> float | None:
        """Return the earliest due time of a job that is free (or will be) at ``now``."""
        async with self._autocommit() as conn:
            row = await (
                await conn.execute(
                    f"SELECT MIN(j.due) FROM {SCHEMA}.jobs j WHERE NOT j.done "
                    f"AND j.shelved <= %(now)s AND {_FREE}",
                    {"now": now},
                )
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def wait_changed(self, timeout: float) -> None:
        """Return on a ``NOTIFY statepoll_due`` from any driver, or after ``timeout``."""
        if self._listener is None or timeout <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(psycopg.Error):
            async for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                break


class _Fenced(Exception):  # noqa: N818 - a control-flow signal, never raised to a caller
    """The job was claimed by another driver: roll the commit back."""


async def _insert_jobs(conn: Any, values: list[tuple[Any, ...]]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO {SCHEMA}.jobs (key, service, lifecycle, job_id, "
            "phase, done, due, owner, token, audit_seq, audit_head, "
            "snapshot, updated) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s, %s, %s)",
            values,
        )


async def _insert(conn: Any, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            f"INSERT INTO {SCHEMA}.audit (writer, wseq, job, jseq, record, hash) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [
                (
                    r["writer"],
                    r["wseq"],
                    r["job"],
                    r["jseq"],
                    compact_json(r),
                    r["hash"],
                )
                for r in rows
            ],
        )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_postgres_records(url: str) -> Iterator[Mapping[str, Any]]:
    """Yield the audit records of a PostgreSQL job store, in commit order (read only)."""
    if _MISSING:  # pragma: no cover - the postgres extra is not installed
        msg = "reading a PostgreSQL store needs psycopg: pip install 'statepoll[postgres]'"
        raise StoreError(msg)
    with psycopg.connect(url) as conn, conn.cursor(name="statepoll_audit") as cur:
        cur.execute(f"SELECT record FROM {SCHEMA}.audit ORDER BY id")
        for (text,) in cur:
            yield json.loads(text)


def postgres_unfinished(url: str) -> list[JobState]:
    """Return the unfinished jobs of a PostgreSQL store, read only.

    Raises:
        StoreError: the database cannot be reached.
    """
    if _MISSING:  # pragma: no cover - the postgres extra is not installed
        msg = "reading a PostgreSQL store needs psycopg: pip install 'statepoll[postgres]'"
        raise StoreError(msg)
    try:
        with psycopg.connect(url) as conn:
            exists = conn.execute(
                "SELECT to_regclass(%s)", (f"{SCHEMA}.jobs",)
            ).fetchone()
            if exists is None or exists[0] is None:
                return []
            rows = conn.execute(
                f"SELECT snapshot FROM {SCHEMA}.jobs WHERE NOT done ORDER BY due"
            ).fetchall()
    except psycopg.Error as exc:
        msg = f"cannot read the job store {shown_url(url)}: {_first_line(exc)}"
        raise StoreError(msg) from exc
    jobs = []
    for (text,) in rows:
        with contextlib.suppress(ValueError):
            jobs.append(JobState.from_json(json.loads(text)))
    return jobs
