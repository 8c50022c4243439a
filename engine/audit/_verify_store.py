"""Verifying a job store: writer chains, job chains, job heads, and legality job by job.

Several drivers write one store at once, so each record is in two chains
(see ``build_chained_record``): its writer's and its job's. Removing, editing
or reordering a record breaks at least one of them, and removing a job's
last records is caught by the head its ``jobs`` row keeps (written in the
same transaction). Two streaming passes, each an index scan:

1. writer by writer, in ``wseq`` order: every row parses; its columns say
   what its record says; ``wseq`` runs from 1 and each ``wprev`` is the hash
   before it; the rows were committed in that order. Records of no job
   (``spec`` records) are hashed here, and their specs indexed.
2. job by job, in ``jseq`` order: every record's hash; ``jseq`` runs from 1
   and each ``jprev`` is the hash before it; the rows were committed in that
   order; the job's row names the chain's length and last hash; and every
   move is legal, as in a log.

Held at any time: one writer's and one job's position, the specs found, and
the problems. What no chain here can catch, with nothing outside the store
to anchor them: a writer's trailing records of no job (its last ``spec``
records) removed, and a whole job (its row and its records) forged as a new
writer's, or removed when its records end their writers' chains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._legality import SESSION_ENDS, Moves
from ._problems import AuditProblem, ProblemKind, VerifyReport
from ._records import GENESIS, record_hash
from ._specs import SpecFinder
from ._store import JobHead, StoreAudit, StoreRow

#: Before the first row of a pass: equal to no writer or job, ``None`` included.
_START: Final = object()
#: A row's columns, and the record fields each must equal.
_COLUMNS: Final = ("writer", "wseq", "job", "jseq", "hash")


def verify_store(audit: StoreAudit, finder: SpecFinder) -> VerifyReport:
    """Check a store's audit table (see the module docstring); ``line`` is a row's id."""
    problems: list[AuditProblem] = []
    writers = _Writers(finder)
    records = 0
    for row in audit.by_writer():
        records += 1
        problems.extend(writers.check(row))
    jobs = _Jobs(Moves(finder))
    for row, head in audit.by_job():
        problems.extend(jobs.check(row, head))
    problems.extend(jobs.finish())
    problems.extend(
        _no_records(head)
        for head in audit.jobs_without_records()
        if (head.seq, head.head) != (0, GENESIS)  # a job added with no record yet
    )
    problems.extend(jobs.moves.unchecked())
    problems.sort(key=lambda p: p.line)
    return VerifyReport(tuple(problems), records)


def _where(row: StoreRow) -> str:
    writer = f"writer {row.writer} (wseq {row.wseq})"
    return writer if row.job is None else f"job {row.job} (jseq {row.jseq}), {writer}"


def _at(row: StoreRow, kind: ProblemKind, message: str) -> AuditProblem:
    return AuditProblem(
        kind=kind, seq=None, line=row.id, message=f"{_where(row)}: {message}"
    )


def _position(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _hash_problems(row: StoreRow, record: Mapping[str, Any]) -> list[AuditProblem]:
    try:
        recomputed = record_hash(record)
    except (RecursionError, ValueError):
        recomputed = None
    if record.get("hash") == recomputed:
        return []
    return [_at(row, "tampered", "hash does not match the record's content (edited)")]


@attrs.define
class _Chain:
    """Where one chain stands: the next position, the hash before it, the last row's id."""

    name: str
    next: int = 1
    prev: Any = GENESIS
    last_id: int = -1

    def check(
        self, row: StoreRow, position: Any, link: Any, seq: str, prev: str
    ) -> list[AuditProblem]:
        """Check a record at ``position`` linked to ``link``; ``seq``/``prev`` name the fields."""
        out = []
        if _position(position) != self.next:
            message = (
                f"{seq} {position} where {self.next} was expected in {self.name}'s "
                "chain (a record was removed or added)"
            )
            out.append(_at(row, "tampered", message))
        if link != self.prev:
            message = (
                f"{prev} link of {self.name}'s chain broken "
                "(a record before it was removed, reordered or edited)"
            )
            out.append(_at(row, "tampered", message))
        if row.id < self.last_id:
            message = (
                "committed before the record ahead of it in "
                f"{self.name}'s chain (rows reordered)"
            )
            out.append(_at(row, "tampered", message))
        self.moved_to(row, position)
        return out

    def repeats(self, row: StoreRow, position: Any, seq: str) -> list[AuditProblem]:
        """Say if ``position`` is the one just read: the chain goes on from the first copy."""
        if self.last_id < 0 or _position(position) != self.next - 1:
            return []
        message = (
            f"{seq} {position} twice in {self.name}'s chain (a record was duplicated)"
        )
        return [_at(row, "tampered", message)]

    def moved_to(self, row: StoreRow, position: Any) -> None:
        """Go on after ``row`` (at ``position``, or where it was expected)."""
        record = row.record
        self.prev = record.get("hash") if isinstance(record, dict) else row.hash
        self.next = (_position(position) or self.next) + 1
        self.last_id = max(self.last_id, row.id)


class _Writers:
    """The first pass: each row's integrity, and each writer's chain."""

    def __init__(self, finder: SpecFinder) -> None:
        self._finder = finder
        self._writer: Any = _START
        self._chain = _Chain("")

    def check(self, row: StoreRow) -> list[AuditProblem]:
        if row.writer != self._writer:
            self._writer = row.writer
            self._chain = _Chain(f"writer {row.writer}")
        record = row.record
        if not isinstance(record, dict):
            self._chain.moved_to(row, row.wseq)
            return [_at(row, "tampered", "not a JSON record (edited)")]
        out = []
        edited = [c for c in _COLUMNS if record.get(c) != getattr(row, c)]
        if edited:
            message = f"column {', '.join(edited)} differs from the record's (edited)"
            out.append(_at(row, "tampered", message))
        twice = self._chain.repeats(row, record.get("wseq"), "wseq")
        out += twice or self._chain.check(
            row, record.get("wseq"), record.get("wprev"), "wseq", "wprev"
        )
        if row.job is None:
            # Job records are hashed in the job pass, which parses them anyway.
            out += _hash_problems(row, record)
        if record.get("kind") == "spec":
            verdict = self._finder.add_recorded(record)
            if verdict is not None:
                out.append(_at(row, *verdict))
        return out


class _Jobs:
    """The second pass: each job's chain, its row's head, and the legality of its moves."""

    def __init__(self, moves: Moves) -> None:
        self.moves = moves
        self._job: Any = _START
        self._chain = _Chain("")
        self._head = JobHead(None, None, None)
        self._last: StoreRow | None = None

    def check(self, row: StoreRow, head: JobHead) -> list[AuditProblem]:
        out: list[AuditProblem] = []
        if row.job != self._job:
            out += self.finish()
            self._job, self._head = row.job, head
            self._chain = _Chain(f"job {row.job}")
        self._last = row
        record = row.record
        if not isinstance(record, dict):
            self._chain.moved_to(row, row.jseq)
            # Said in the writer pass. Where the job stands after it is
            # unknown, so the next move is not held to continue from it.
            self.moves.forget_jobs()
            return out
        out += _hash_problems(row, record)
        twice = self._chain.repeats(row, record.get("jseq"), "jseq")
        if twice:
            return out + twice  # a copy: its move was checked as the first
        out += self._chain.check(
            row, record.get("jseq"), record.get("jprev"), "jseq", "jprev"
        )
        out += [
            attrs.evolve(p, message=f"{_where(row)}: {p.message}")
            for p in self.moves.check(record, row.id)
        ]
        return out

    def finish(self) -> list[AuditProblem]:
        """Check the job read last against its row, and forget where it stood."""
        self.moves.forget_jobs()
        last, self._last = self._last, None
        if last is None:
            return []
        record = last.record if isinstance(last.record, dict) else {}
        count, digest = record.get("jseq", last.jseq), record.get("hash", last.hash)
        head = self._head
        if head.key is None:
            if record.get("kind") in SESSION_ENDS:
                return []  # finished: its row was purged after its keeping time
            message = (
                f"job {last.job}: {count} records but no row in the jobs table, and its "
                f"last record ({record.get('kind')}) does not end it (the row was deleted)"
            )
            return [
                AuditProblem(kind="tampered", seq=None, line=last.id, message=message)
            ]
        if (head.seq, head.head) == (count, digest):
            return []
        message = (
            f"job {last.job}: its row says {head.seq} records ending in {head.head}, "
            f"its chain has {count} ending in {digest} "
            "(its last records were removed, or the row was edited)"
        )
        return [AuditProblem(kind="tampered", seq=None, line=last.id, message=message)]


def _no_records(head: JobHead) -> AuditProblem:
    message = (
        f"job {head.key}: its row says {head.seq} records ending in {head.head}, "
        "and the audit table has none (removed)"
    )
    return AuditProblem(kind="tampered", seq=None, line=0, message=message)
