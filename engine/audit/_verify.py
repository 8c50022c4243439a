"""Verification: the hash chain, and the legality of every move against its spec.

Every problem has a kind, so that a reader can tell tampering from a log it
merely cannot check:

- ``tampered``: the chain is broken (a torn or corrupted line, a sequence
  gap, a broken previous-hash link, a hash that does not recompute, a
  recorded spec that does not hash to the hash it claims);
- ``illegal``: the records are intact but describe what the spec forbids
  (an undeclared move, a move that does not continue from the job's last
  state, a job completed twice in one session);
- ``unchecked``: moves whose spec cannot be found, so their legality is
  unknown (said once per missing spec, with the number of records).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal, overload

import attrs

from statemachines import Spec

from ._read import iter_kind, iter_lines
from ._records import GENESIS, record_hash
from ._specs import SpecFinder

ProblemKind = Literal["tampered", "illegal", "unchecked"]

#: Record kinds that end a job's session: a later ``submitted`` (a re-track)
#: starts a new one.
SESSION_ENDS: Final = frozenset(
    {"completed", "timed_out", "errored", "forgotten", "unresolved_submission"}
)


@attrs.frozen(kw_only=True)
class AuditProblem:
    """Something wrong in a log, at a record (``seq``) and a line, of one ``kind``."""

    kind: ProblemKind
    seq: int | None
    line: int
    message: str

    def __str__(self) -> str:
        """Render as ``seq N (line L): message``."""
        seq = "?" if self.seq is None else str(self.seq)
        return f"seq {seq} (line {self.line}): {self.message}"


@attrs.frozen(eq=False)
class VerifyReport(Sequence[AuditProblem]):
    """What :func:`verify_log` found: the problems, in log order, and how many records.

    ``intact``: nothing tampered and nothing illegal. ``checked``: every move
    could be checked against its spec. A log is fine when both hold.

    The report is also the sequence of its problems (``len``, iteration,
    indexing), and equals a list or tuple of the same problems, so
    ``verify_log(path) == []`` still reads as "no problem at all".
    """

    problems: tuple[AuditProblem, ...]
    records: int

    @property
    def intact(self) -> bool:
        """Say whether no record was tampered with and no move was illegal."""
        return all(p.kind == "unchecked" for p in self.problems)

    @property
    def checked(self) -> bool:
        """Say whether every move could be checked against its spec."""
        return all(p.kind != "unchecked" for p in self.problems)

    def __len__(self) -> int:
        """Return the number of problems."""
        return len(self.problems)

    @overload
    def __getitem__(self, index: int) -> AuditProblem: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[AuditProblem, ...]: ...
    def __getitem__(
        self, index: int | slice
    ) -> AuditProblem | tuple[AuditProblem, ...]:
        """Return a problem, or a tuple of them for a slice."""
        return self.problems[index]

    def __iter__(self) -> Iterator[AuditProblem]:
        """Iterate over the problems in log order."""
        return iter(self.problems)

    def __eq__(self, other: object) -> bool:
        """Compare problems (and record counts, with another report)."""
        if isinstance(other, VerifyReport):
            return (self.problems, self.records) == (other.problems, other.records)
        if isinstance(other, (list, tuple)):
            return list(self.problems) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        """Hash as the tuple of problems, which a report equals."""
        return hash(self.problems)


def verify_log(
    path: str | os.PathLike[str], *, specs: Sequence[Spec] = ()
) -> VerifyReport:
    """Re-check the hash chain and the legality of every move.

    Checks: each line is a record; ``seq`` runs from 1 without a gap; each
    ``prev`` is the previous record's hash and each ``hash`` recomputes; every
    transition and item transition is legal in the spec whose content hash
    the record names, and continues from the job's (or item's) previous
    state; a job completes once per session (a ``submitted`` record after the
    job's session ended, as ``track`` of a finished job writes, starts a new
    one). Specs are found among ``specs``, the log's own ``spec`` records, the
    built-in specs and the record's ``spec`` source (see ``SpecFinder``).

    Raises:
        AuditFormatError: if ``path`` is not an audit log.
    """
    finder = SpecFinder(specs, Path(path))
    # The spec records first: one written in a later session still serves
    # the records before it.
    spec_problems = {
        line: found
        for line, record in iter_kind(path, "spec")
        if (found := finder.add_recorded(record)) is not None
    }
    chain = _Chain()
    moves = _Moves(finder)
    problems: list[AuditProblem] = []
    records = 0
    for line, record in iter_lines(path):
        records += 1
        if not isinstance(record, dict):
            message = "not a JSON record (torn or corrupted line)"
            problems.append(
                AuditProblem(kind="tampered", seq=None, line=line, message=message)
            )
            continue
        problems.extend(chain.check(record, line))
        if line in spec_problems:
            kind, message = spec_problems[line]
            problems.append(_problem(kind, record, line, message))
        problems.extend(moves.check(record, line))
    problems.extend(moves.unchecked())
    problems.sort(key=lambda p: p.line)
    return VerifyReport(tuple(problems), records)


def _seq_of(record: Mapping[str, Any]) -> int | None:
    seq = record.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _problem(
    kind: ProblemKind, record: Mapping[str, Any], line: int, message: str
) -> AuditProblem:
    return AuditProblem(kind=kind, seq=_seq_of(record), line=line, message=message)


class _Chain:
    """One hash chain: consecutive ``seq`` from 1, each ``prev`` the hash before it."""

    def __init__(self) -> None:
        self._prev = GENESIS
        self._seq = 1

    def check(self, record: Mapping[str, Any], line: int) -> list[AuditProblem]:
        out: list[AuditProblem] = []
        seq = _seq_of(record)
        if seq != self._seq:
            message = f"sequence {record.get('seq')} where {self._seq} was expected"
            out.append(_problem("tampered", record, line, message))
        if record.get("prev") != self._prev:
            message = (
                "previous-hash link broken (a record was removed, reordered or edited)"
            )
            out.append(_problem("tampered", record, line, message))
        try:
            recomputed = record_hash(record)
        except (RecursionError, ValueError):
            recomputed = None
        if record.get("hash") != recomputed:
            message = "hash does not match the record's content (edited)"
            out.append(_problem("tampered", record, line, message))
        self._prev = str(record.get("hash"))
        self._seq = (seq if seq is not None else self._seq) + 1
        return out


@attrs.define
class _Missing:
    """Moves whose spec could not be found: said once, at the first of them."""

    seq: int | None
    line: int
    source: str
    count: int = 0


class _Moves:
    """Where each job and item stands, and whether each move may follow."""

    def __init__(self, finder: SpecFinder) -> None:
        self._finder = finder
        self._jobs: dict[Any, str] = {}
        self._items: dict[tuple[Any, ...], dict[Any, str]] = {}
        self._completed: set[tuple[Any, ...]] = set()
        self._ended: set[tuple[Any, ...]] = set()
        self._missing: dict[str, _Missing] = {}

    def check(self, record: Mapping[str, Any], line: int) -> list[AuditProblem]:
        kind = record.get("kind")
        job = (record.get("service"), record.get("job_id"))
        if kind == "submitted" and job in self._ended:
            self._new_session(job)
        if kind in ("submitted", "resumed") and record.get("to"):
            self._jobs[job] = str(record["to"])
        if kind == "completed" and job in self._completed:
            message = f"job {record.get('job_id')} completed twice"
            return [_problem("illegal", record, line, message)]
        if kind == "completed":
            self._completed.add(job)
        if kind in SESSION_ENDS:
            self._ended.add(job)
        if kind in ("transition", "item_transition"):
            return self._move(record, line, job)
        return []

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
                out.append(_problem("illegal", record, line, message))
            else:
                initial = lifecycle.initial
                if not self._finder.machine(spec, lifecycle).is_legal(
                    str(source), str(dest)
                ):
                    message = f"illegal transition {source} -> {dest} in lifecycle {lifecycle.name}"
                    out.append(_problem("illegal", record, line, message))
        positions: dict[Any, str] = (
            self._items.setdefault(job, {}) if item else self._jobs
        )
        key = record.get("item_id") if item else job
        before = positions.get(key, initial if item else None)
        if before is not None and before != source:
            message = f"transition from {source} but the job was in {before}"
            out.append(_problem("illegal", record, line, message))
        positions[key] = str(dest)
        return out

    def _spec_of(self, record: Mapping[str, Any], line: int) -> Spec | None:
        spec_hash = str(record.get("spec_hash"))
        source = str(record.get("spec") or "")
        spec = self._finder.find(spec_hash, source)
        if spec is None:
            missing = self._missing.setdefault(
                spec_hash, _Missing(seq=_seq_of(record), line=line, source=source)
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
