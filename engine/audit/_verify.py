"""Verification: the hash chains, and the legality of every move against its spec.

A log (JSON Lines or SQLite) has one chain, checked here; a job store's
audit table has a chain per writer and a chain per job, checked by
``_verify_store``. Either way the problems are classified (see
``_problems``) and the moves checked by ``_legality``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from statemachines import Spec

from ._format import locate_log
from ._legality import Moves
from ._problems import AuditProblem, VerifyReport, problem, seq_of
from ._read import iter_kind, iter_lines
from ._records import GENESIS, record_hash
from ._specs import SpecFinder
from ._store import open_store_audit
from ._verify_store import verify_store

__all__ = ["AuditProblem", "VerifyReport", "verify_log"]


def verify_log(
    path: str | os.PathLike[str], *, specs: Sequence[Spec] = ()
) -> VerifyReport:
    """Re-check the hash chains and the legality of every move, in a log or a job store.

    Checks, for a log: each line is a record; ``seq`` runs from 1 without a
    gap; each ``prev`` is the previous record's hash and each ``hash``
    recomputes. For a job store (a path or ``sqlite:///`` URL), its audit
    table instead: every hash, each writer's chain and each job's chain, and
    each job's row against its chain's head (see ``verify_store``).

    Then, for both: every transition and item transition is legal in the
    spec whose content hash the record names, and continues from the job's
    (or item's) previous state; a job completes once per session (a
    ``submitted`` record after the job's session ended, as ``track`` of a
    finished job writes, starts a new one). Specs are found among ``specs``,
    the log's own ``spec`` records, the built-in specs and the record's
    ``spec`` source (see ``SpecFinder``).

    Raises:
        AuditFormatError: if ``path`` is neither an audit log nor a job store
            this build can read.
    """
    where, fmt = locate_log(path)
    # Spec sources recorded as relative paths are also looked for beside the
    # log (a database server's: in the working directory only).
    finder = SpecFinder(specs, where.parent if isinstance(where, Path) else Path())
    if fmt == "store":
        with open_store_audit(where, os.fspath(path)) as audit:
            return verify_store(audit, finder)
    where = Path(where)
    # The spec records first: one written in a later session still serves
    # the records before it.
    spec_problems = {
        line: found
        for line, record in iter_kind(where, fmt, "spec")
        if (found := finder.add_recorded(record)) is not None
    }
    chain = _Chain()
    moves = Moves(finder)
    problems: list[AuditProblem] = []
    records = 0
    for line, record in iter_lines(where, fmt):
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
            problems.append(problem(kind, record, line, message))
        problems.extend(moves.check(record, line))
    problems.extend(moves.unchecked())
    problems.sort(key=lambda p: p.line)
    return VerifyReport(tuple(problems), records)


class _Chain:
    """A log's hash chain: consecutive ``seq`` from 1, each ``prev`` the hash before it."""

    def __init__(self) -> None:
        self._prev = GENESIS
        self._seq = 1

    def check(self, record: Mapping[str, Any], line: int) -> list[AuditProblem]:
        out: list[AuditProblem] = []
        seq = seq_of(record)
        if seq != self._seq:
            message = f"sequence {record.get('seq')} where {self._seq} was expected"
            out.append(problem("tampered", record, line, message))
        if record.get("prev") != self._prev:
            message = (
                "previous-hash link broken (a record was removed, reordered or edited)"
            )
            out.append(problem("tampered", record, line, message))
        try:
            recomputed = record_hash(record)
        except (RecursionError, ValueError):
            recomputed = None
        if record.get("hash") != recomputed:
            message = "hash does not match the record's content (edited)"
            out.append(problem("tampered", record, line, message))
        self._prev = str(record.get("hash"))
        self._seq = (seq if seq is not None else self._seq) + 1
        return out
