"""Take a store's unfinished jobs over after a restart, reconciled with the audit log.

The publish path writes a step's audit records before its store commit, so
after a crash the log may be ahead of the store: a job the log shows ended
is dropped from the store, and a state (or item state) the log recorded
wins over the stored one. The log is read once, whatever the number of jobs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from engine._core import step as core
from engine._core.state import JobState
from engine.stores import JobStore
from statemachines import StatepollError

if TYPE_CHECKING:
    from engine._engine import AsyncEngine

__all__ = ["Audited", "audited_positions", "resume_stored"]

logger = logging.getLogger("statepoll.engine")

Ident = tuple[str, str, str]


@attrs.define
class Audited:
    """What the log says of one job: its last state, its items' states, whether it ended."""

    state: str | None = None
    ended: bool = False
    items: dict[str, str] = attrs.field(factory=dict)


def audited_positions(records: Iterable[Mapping[str, Any]]) -> dict[Ident, Audited]:
    """Return, per (service, lifecycle, job id), what the log recorded last (one pass)."""
    jobs: dict[Ident, Audited] = {}
    lifecycles: dict[tuple[str, str], str] = {}
    for record in records:
        kind = record.get("kind")
        service, job_id = str(record.get("service")), str(record.get("job_id"))
        if kind == "item_transition":
            parent = lifecycles.get((service, job_id))
            if parent is not None:
                found = jobs.setdefault((service, parent, job_id), Audited())
                found.items[str(record.get("item_id"))] = str(record.get("to"))
            continue
        ident = (service, str(record.get("lifecycle")), job_id)
        if kind == "submitted":
            lifecycles[(service, job_id)] = ident[1]
            # A new tracking session of the same job starts afresh.
            jobs[ident] = Audited(state=record.get("to"))
        elif kind == "transition":
            jobs.setdefault(ident, Audited()).state = record.get("to")
        elif kind in ("completed", "timed_out", "errored", "forgotten"):
            jobs.setdefault(ident, Audited()).ended = True
    return jobs


async def resume_stored(
    engine: AsyncEngine, store: JobStore, audit_path: Path | None
) -> None:
    """Register every unfinished job of ``store`` with ``engine``, reconciled with the log."""
    positions: dict[Ident, Audited] = {}
    if audit_path is not None and audit_path.exists():  # noqa: ASYNC240 - one stat at open
        from engine.audit import read_records  # noqa: PLC0415 - only with a log to read

        positions = audited_positions(read_records(audit_path))
    now = engine._clock.now()  # noqa: SLF001 - the engine's own helper module
    for key, snapshot in list(store.unfinished()):
        try:
            job = JobState.from_json(snapshot)
        except ValueError as exc:
            logger.error("not resuming stored job %s: %s", key, exc)  # noqa: TRY400 - reported, not raised
            continue
        try:
            if job.base_url:
                engine._base_urls.setdefault(job.service, job.base_url)  # noqa: SLF001
            b = engine._binding(job.spec_source.removeprefix("builtin:"), job.lifecycle)  # noqa: SLF001
        except (StatepollError, OSError) as exc:
            logger.error("not resuming %s job %s: %s", job.service, job.job_id, exc)  # noqa: TRY400
            continue
        if b.spec.content_hash != job.spec_hash:
            logger.error(
                "not resuming %s job %s: its spec changed since it was stored (%s)",
                job.service,
                job.job_id,
                os.path.basename(job.spec_source),  # noqa: PTH119 - a label, not a path operation
            )
            continue
        audited = positions.get((job.service, job.lifecycle, job.job_id))
        if audited is not None:
            if audited.ended:
                store.remove(key)  # the log says it ended: the store missed the removal
                continue
            if audited.state:
                job.state = audited.state
            if audited.items:
                job.items = {**(job.items or {}), **audited.items}
        step = core.resume(b, job, now=now)
        live = engine._adopt_stored(b, step.job)  # noqa: SLF001
        await engine._run.commit(live, step)  # noqa: SLF001
