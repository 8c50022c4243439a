"""Verification: the hash chain, and the legality of every move against its spec."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from statemachines import (
    Spec,
    StatepollError,
    build_machine,
    builtin_names,
    load_builtin,
    load_spec,
)

from ._read import iter_lines
from ._records import GENESIS, record_hash


@attrs.frozen
class AuditProblem:
    """Something wrong in a log, at a record (``seq``) and a line."""

    seq: int | None
    line: int
    message: str

    def __str__(self) -> str:
        """Render as ``seq N (line L): message``."""
        seq = "?" if self.seq is None else str(self.seq)
        return f"seq {seq} (line {self.line}): {self.message}"


def _spec_index(specs: Sequence[Spec]) -> dict[str, Spec]:
    index = {spec.content_hash: spec for spec in specs}
    for name in builtin_names():
        spec = load_builtin(name)
        index.setdefault(spec.content_hash, spec)
    return index


def verify_log(
    path: str | os.PathLike[str], *, specs: Sequence[Spec] = ()
) -> list[AuditProblem]:
    """Re-check the hash chain and the legality of every transition.

    Checks: each line is a record; seq is consecutive from 1; each ``prev`` is
    the previous record's hash and each ``hash`` recomputes; every transition
    and item transition is legal in the spec whose content hash the record
    names (built-in specs, ``specs``, or the record's ``spec`` file), and
    continues from the job's (or item's) previous state; a job completes once.
    """
    problems: list[AuditProblem] = []
    index = _spec_index(specs)
    prev_hash = GENESIS
    expected_seq = 1
    positions: dict[tuple[Any, ...], str] = {}
    completed: set[tuple[Any, ...]] = set()
    for line, record in iter_lines(Path(path)):
        if not isinstance(record, dict):
            problems.append(
                AuditProblem(None, line, "not a JSON record (torn or corrupted line)")
            )
            continue
        seq = record.get("seq")
        if seq != expected_seq:
            problems.append(
                AuditProblem(
                    seq, line, f"sequence {seq} where {expected_seq} was expected"
                )
            )
        if record.get("prev") != prev_hash:
            problems.append(
                AuditProblem(
                    seq,
                    line,
                    "previous-hash link broken (a record was removed, reordered or edited)",
                )
            )
        if record.get("hash") != record_hash(record):
            problems.append(
                AuditProblem(
                    seq, line, "hash does not match the record's content (edited)"
                )
            )
        prev_hash = str(record.get("hash"))
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
        problems.extend(_legality(record, line, index, positions, completed))
    return problems


def _legality(
    record: Mapping[str, Any],
    line: int,
    index: dict[str, Spec],
    positions: dict[tuple[Any, ...], str],
    completed: set[tuple[Any, ...]],
) -> list[AuditProblem]:
    seq = record.get("seq")
    kind = record.get("kind")
    job = (record.get("service"), record.get("job_id"))
    if kind == "completed":
        if job in completed:
            return [
                AuditProblem(seq, line, f"job {record.get('job_id')} completed twice")
            ]
        completed.add(job)
        return []
    if kind == "submitted" and record.get("to"):
        positions[job] = str(record["to"])
    if kind == "resumed" and record.get("to"):
        positions[job] = str(record["to"])
    if kind not in ("transition", "item_transition"):
        return []
    spec = index.get(str(record.get("spec_hash")))
    if spec is None and record.get("spec"):
        with contextlib.suppress(StatepollError, OSError):
            candidate = load_spec(str(record["spec"]).removeprefix("builtin:"))
            if candidate.content_hash == record.get("spec_hash"):
                spec = index[candidate.content_hash] = candidate
    if spec is None:
        return [
            AuditProblem(
                seq,
                line,
                f"no spec with hash {record.get('spec_hash')} (pass it with --spec)",
            )
        ]
    try:
        lifecycle = spec.lifecycle(str(record.get("lifecycle")))
    except KeyError:
        return [
            AuditProblem(
                seq,
                line,
                f"spec {spec.name} has no lifecycle {record.get('lifecycle')!r}",
            )
        ]
    source, dest = record.get("from"), record.get("to")
    out: list[AuditProblem] = []
    if not build_machine(lifecycle).is_legal(str(source), str(dest)):
        out.append(
            AuditProblem(
                seq,
                line,
                f"illegal transition {source} -> {dest} in lifecycle {lifecycle.name}",
            )
        )
    key = (*job, record.get("item_id")) if kind == "item_transition" else job
    before = positions.get(
        key, lifecycle.initial if kind == "item_transition" else None
    )
    if before is not None and before != source:
        out.append(
            AuditProblem(
                seq, line, f"transition from {source} but the job was in {before}"
            )
        )
    positions[key] = str(dest)
    return out
