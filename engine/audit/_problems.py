"""What verification reports: problems of three kinds, and the report that holds them.

Every problem has a kind, so that a reader can tell tampering from a log it
merely cannot check:

- ``tampered``: a chain is broken (a torn or corrupted line, a sequence
  gap, a broken previous-hash link, a hash that does not recompute, a
  recorded spec that does not hash to the hash it claims; in a job store,
  also a job's row that disagrees with its chain);
- ``illegal``: the records are intact but describe what the spec forbids
  (an undeclared move, a move that does not continue from the job's last
  state, a job completed twice in one session);
- ``unchecked``: moves whose spec cannot be found, so their legality is
  unknown (said once per missing spec, with the number of records).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, overload

import attrs

ProblemKind = Literal["tampered", "illegal", "unchecked"]


@attrs.frozen(kw_only=True)
class AuditProblem:
    """Something wrong in a log, at a record (``seq``) and a line, of one ``kind``.

    In a job store, records have no ``seq`` (``None``) and ``line`` is the
    row's ``id`` in the audit table (0 for a problem of a ``jobs`` row whose
    chain has no record left); the message names the job and the writer.
    """

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


def seq_of(record: Mapping[str, Any]) -> int | None:
    """Return a log record's ``seq`` when it is an integer (``None`` in a store)."""
    seq = record.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def problem(
    kind: ProblemKind, record: Mapping[str, Any], line: int, message: str
) -> AuditProblem:
    """Return a problem of ``kind`` at ``record``, which is at ``line``."""
    return AuditProblem(kind=kind, seq=seq_of(record), line=line, message=message)
