"""Legality: where each job and item stands, and whether each recorded move may follow.

Shared by the verification of a log (records in log order) and of a job
store (each job's records in its chain's order, one job at a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from statemachines import Spec

from ._problems import AuditProblem, problem, seq_of
from ._specs import SpecFinder

#: Record kinds that end a job's session: a later ``submitted`` (a re-track)
#: starts a new one.
SESSION_ENDS: Final = frozenset(
    {"completed", "timed_out", "errored", "forgotten", "unresolved_submission"}
)


@attrs.define
class _Missing:
    """Moves whose spec could not be found: said once, at the first of them."""

    seq: int | None
    line: int
    source: str
    count: int = 0


class Moves:
    """Where each job and item stands, and whether each move may follow."""

    def __init__(self, finder: SpecFinder) -> None:
        """Check moves against the specs ``finder`` finds."""
        self._finder = finder
        self._jobs: dict[Any, str] = {}
        self._items: dict[tuple[Any, ...], dict[Any, str]] = {}
        self._completed: set[tuple[Any, ...]] = set()
        self._ended: set[tuple[Any, ...]] = set()
        self._missing: dict[str, _Missing] = {}

    def check(self, record: Mapping[str, Any], line: int) -> list[AuditProblem]:
        """Return what is illegal about ``record`` (at ``line``), after the records before it."""
        kind = record.get("kind")
        job = (record.get("service"), record.get("job_id"))
        if kind == "submitted" and job in self._ended:
            self._new_session(job)
        if kind in ("submitted", "resumed") and record.get("to"):
            self._jobs[job] = str(record["to"])
        if kind == "completed" and job in self._completed:
            message = f"job {record.get('job_id')} completed twice"
            return [problem("illegal", record, line, message)]
        if kind == "completed":
            self._completed.add(job)
        if kind in SESSION_ENDS:
            self._ended.add(job)
        if kind in ("transition", "item_transition"):
            return self._move(record, line, job)
        return []

    def forget_jobs(self) -> None:
        """Drop where every job stands (a store is checked one job at a time).

        What could not be checked is kept, for :meth:`unchecked`.
        """
        self._jobs.clear()
        self._items.clear()
        self._completed.clear()
        self._ended.clear()

    def _new_session(self, job: tuple[Any, ...]) -> None:
        self._ended.discard(job)
        self._completed.discard(job)
        self._jobs.pop(job, None)
        self._items.pop(job, None)

    def _move(
        self, record: Mapping[str, Any], line: int, job: tuple[Any, ...]
    ) -> list[AuditProblem]:
        source, dest = record.get("from"), record.get("to")
        item = record.get("kind") == "item_transition"
        spec = self._spec_of(record, line)
        out: list[AuditProblem] = []
        initial: str | None = None
        if spec is not None:
            try:
                lifecycle = spec.lifecycle(str(record.get("lifecycle")))
            except KeyError:
                message = (
                    f"spec {spec.name} has no lifecycle {record.get('lifecycle')!r}"
                )
                out.append(problem("illegal", record, line, message))
            else:
                initial = lifecycle.initial
                if not self._finder.machine(spec, lifecycle).is_legal(
                    str(source), str(dest)
                ):
                    message = f"illegal transition {source} -> {dest} in lifecycle {lifecycle.name}"
                    out.append(problem("illegal", record, line, message))
        positions: dict[Any, str] = (
            self._items.setdefault(job, {}) if item else self._jobs
        )
        key = record.get("item_id") if item else job
        before = positions.get(key, initial if item else None)
        if before is not None and before != source:
            message = f"transition from {source} but the job was in {before}"
            out.append(problem("illegal", record, line, message))
        positions[key] = str(dest)
        return out

    def _spec_of(self, record: Mapping[str, Any], line: int) -> Spec | None:
        spec_hash = str(record.get("spec_hash"))
        source = str(record.get("spec") or "")
        spec = self._finder.find(spec_hash, source)
        if spec is None:
            missing = self._missing.setdefault(
                spec_hash, _Missing(seq=seq_of(record), line=line, source=source)
            )
            missing.count += 1
        return spec

    def unchecked(self) -> list[AuditProblem]:
        """Return one problem per spec that could not be found."""
        out = []
        for spec_hash, missing in self._missing.items():
            noun = "move" if missing.count == 1 else "moves"
            reason = self._finder.why_not(spec_hash, missing.source)
            message = f"{reason} ({missing.count} {noun} not checked)"
            out.append(
                AuditProblem(
                    kind="unchecked",
                    seq=missing.seq,
                    line=missing.line,
                    message=message,
                )
            )
        return out
