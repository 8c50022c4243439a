"""Job stores built through the store's own API, for the audit tests and the verify benchmark.

Run as a script, it measures ``verify_log`` on a store of many records:

    python -m tests.engine.audit_store_build --records 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from engine._core.state import JobState
from engine.audit import AuditEntry, spec_entry, verify_log
from engine.stores import JobStore, Lease, open_store
from statemachines import Spec, load_spec

#: A three-state lifecycle: Queued -> Running -> Done, nothing else.
TOY: dict[str, Any] = {
    "spec_version": "1",
    "service": {"name": "toy", "base_url": "https://api.example.test"},
    "lifecycles": {
        "job": {
            "states": {
                "Queued": {"initial": True},
                "Running": {},
                "Done": {"outcome": "success"},
            },
            "transitions": [
                {"from": "Queued", "to": "Running"},
                {"from": "Running", "to": "Done"},
            ],
            "poll": {
                "request": {"path": "/jobs/{job_id}"},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {
                            "queued": "Queued",
                            "running": "Running",
                            "done": "Done",
                        },
                    }
                ],
            },
            "schedule": {"interval": 0.01},
        }
    },
}
WRITER_A = "writer-a"
WRITER_B = "writer-b"


def toy_spec(directory: Path) -> Spec:
    """Write the toy spec into ``directory`` and load it from there."""
    path = directory / "toy.json"
    path.write_text(json.dumps(TOY), encoding="utf-8")
    return load_spec(path)


def entry(
    spec: Spec,
    kind: str,
    job_id: str,
    src: str | None = None,
    dst: str | None = None,
    **changes: Any,
) -> AuditEntry:
    """Return an entry of the toy lifecycle for ``job_id``."""
    made = AuditEntry(
        kind=kind,
        service=spec.name,
        lifecycle="job",
        job_id=job_id,
        spec_hash=spec.content_hash,
        spec_source=spec.source,
        from_state=src,
        to_state=dst,
        trigger="poll" if kind == "transition" else None,
    )
    return attrs.evolve(made, **changes)


def state(spec: Spec, key: str, job_id: str, now: str = "Queued") -> JobState:
    """Return the job ``key`` (remote id ``job_id``) as a store keeps it."""
    return JobState(
        key=key,
        service=spec.name,
        lifecycle="job",
        spec_hash=spec.content_hash,
        spec_source=spec.source,
        job_id=job_id,
        state=now,
    )


async def _opened(path: Path | str, owner: str) -> JobStore:
    store = open_store(path)
    await store.open(owner, lease=30.0, now=0.0)
    return store


async def build_two_writers(
    path: Path | str, spec: Spec, *, spec_records: bool = True
) -> None:
    """Write three jobs with two writers interleaved; job k1 changes hands.

    Rows, in commit order (``id``: writer wseq, job jseq, kind)::

        1  a1       spec            8  b5  k1 4  Running -> Done
        2  a2 k1 1  submitted       9  b6  k1 5  completed
        3  b1       spec           10  b7  k2 3  Running -> Done
        4  b2 k2 1  submitted      11  b8  k2 4  completed
        5  a3 k1 2  Queued->Running 12 a4  k3 1  submitted
        6  b3 k2 2  Queued->Running 13 a5  k3 2  Queued -> Running
        7  b4 k1 3  resumed (b claimed k1 after a let it go)

    Without ``spec_records`` the ``spec`` rows are not written (ids shift).
    """
    a, b = await _opened(path, WRITER_A), await _opened(path, WRITER_B)
    spec_first = [spec_entry(spec, spec.document)] if spec_records else []
    try:
        k1 = await a.add(
            state(spec, "k1", "j1"),
            [*spec_first, entry(spec, "submitted", "j1", dst="Queued")],
            hold=True,
            now=0.0,
        )
        k2 = await b.add(
            state(spec, "k2", "j2"),
            [*spec_first, entry(spec, "submitted", "j2", dst="Queued")],
            hold=True,
            now=0.0,
        )
        await _step(
            a,
            spec,
            k1,
            [entry(spec, "transition", "j1", "Queued", "Running")],
            hold=False,
        )
        k2 = await _step(
            b, spec, k2, [entry(spec, "transition", "j2", "Queued", "Running")]
        )
        [(_, k1)] = await b.claim(now=1.0, limit=10)
        await _step(b, spec, k1, _finish(spec, "j1", resumed=True), hold=False)
        await _step(b, spec, k2, _finish(spec, "j2"), hold=False)
        k3 = await a.add(
            state(spec, "k3", "j3"),
            [entry(spec, "submitted", "j3", dst="Queued")],
            hold=True,
            now=2.0,
        )
        await _step(a, spec, k3, [entry(spec, "transition", "j3", "Queued", "Running")])
    finally:
        await a.close()
        await b.close()


def _finish(spec: Spec, job_id: str, *, resumed: bool = False) -> list[AuditEntry]:
    took = [entry(spec, "resumed", job_id, dst="Running")] if resumed else []
    return [
        *took,
        entry(spec, "transition", job_id, "Running", "Done"),
        entry(
            spec,
            "completed",
            job_id,
            dst="Done",
            detail={"outcome": "success", "polls": 2},
        ),
    ]


async def _step(
    store: JobStore,
    spec: Spec,
    lease: Lease,
    entries: Sequence[AuditEntry],
    *,
    hold: bool = True,
) -> Lease:
    job = state(spec, lease.key, "j" + lease.key.removeprefix("k"))
    moved = await store.commit(job, entries, lease, hold=hold, now=1.0)
    assert moved is not None  # nobody else claims these jobs
    return moved


async def build_many(path: Path, spec: Spec, jobs: int) -> None:
    """Write ``jobs`` jobs of 5 records each, two writers taking turns on every job."""
    a, b = await _opened(path, WRITER_A), await _opened(path, WRITER_B)
    try:
        for n in range(jobs):
            first, second = (a, b) if n % 2 else (b, a)
            job_id = f"j{n}"
            specs = (
                [spec_entry(spec, spec.document)] if n < 2 else []
            )  # once per writer
            lease = await first.add(
                state(spec, f"k{n}", job_id),
                [*specs, entry(spec, "submitted", job_id, dst="Queued")],
                hold=True,
                now=0.0,
            )
            lease = await _step(
                first,
                spec,
                lease,
                [entry(spec, "transition", job_id, "Queued", "Running")],
            )
            # The fence is the token: the other writer goes on with this lease.
            await _step(
                second, spec, lease, _finish(spec, job_id, resumed=True), hold=False
            )
    finally:
        await a.close()
        await b.close()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Build a store of about ``--records`` records, then time verify_log on it."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        spec = toy_spec(directory)
        path = directory / "jobs.db"
        started = time.perf_counter()
        asyncio.run(build_many(path, spec, max(1, args.records // 5)))
        built = time.perf_counter() - started
        db = sqlite3.connect(path)
        (rows,) = db.execute("SELECT COUNT(*) FROM audit").fetchone()
        db.close()
        _say(
            f"built {rows:,} records in {built:.1f} s ({path.stat().st_size / 1e6:.1f} MB)"
        )
        for run in (1, 2, 3):
            started = time.perf_counter()
            report = verify_log(path)
            took = time.perf_counter() - started
            _say(
                f"verify run {run}: {report.records:,} records in {took:.2f} s = "
                f"{report.records / took:,.0f} records/s; problems: {len(report)}"
            )
        tracemalloc.start()
        verify_log(path)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        _say(f"peak Python memory during verify (tracemalloc): {peak / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
