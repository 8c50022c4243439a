"""Reading a job store's audit table: in commit, writer or job order, with the jobs' heads.

A job store keeps its audit records in a table beside its jobs (see
``engine.stores``). Each row carries its record's two chain positions as
columns (``writer``/``wseq`` and ``job``/``jseq``, each pair unique, so each
order is an index scan), and each ``jobs`` row keeps the head of its job's
chain (``audit_seq``, ``audit_head``). Every query streams: nothing here
holds the whole table.

The SQL is plain and shared by every backend; what differs is how a
read-only connection is opened and a query streamed, one small function per
backend. SQLite's (:func:`open_store_audit`) reads every pass from one
snapshot, so a store that workers are writing still verifies. A PostgreSQL
store will bring its own: a psycopg connection in a REPEATABLE READ READ ONLY
transaction, each query through a server-side (named) cursor.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from ._errors import AuditFormatError
from ._format import sqlite_uri
from ._records import parse_record

#: Runs one query and yields its rows, streamed.
Rows = Callable[[str], Iterator[Sequence[Any]]]

_COLUMNS: Final = "a.id, a.writer, a.wseq, a.job, a.jseq, a.record, a.hash"
_IN_COMMIT_ORDER: Final = f"SELECT {_COLUMNS} FROM audit a ORDER BY a.id"  # noqa: S608 - constants only
_BY_WRITER: Final = f"SELECT {_COLUMNS} FROM audit a ORDER BY a.writer, a.wseq, a.id"  # noqa: S608 - constants only
_BY_JOB: Final = (
    f"SELECT {_COLUMNS}, j.key, j.audit_seq, j.audit_head FROM audit a "  # noqa: S608 - constants only
    "LEFT JOIN jobs j ON j.key = a.job "
    "WHERE a.job IS NOT NULL ORDER BY a.job, a.jseq, a.id"
)
_WITHOUT_JOB: Final = (
    f"SELECT {_COLUMNS} FROM audit a WHERE a.job IS NULL ORDER BY a.id"  # noqa: S608 - constants only
)
_JOBS_WITHOUT_RECORDS: Final = (
    "SELECT j.key, j.audit_seq, j.audit_head FROM jobs j "
    "WHERE NOT EXISTS (SELECT 1 FROM audit a WHERE a.job = j.key) ORDER BY j.key"
)


@attrs.frozen
class StoreRow:
    """One row of a store's audit table: its columns, and its record (parsed, or as stored)."""

    id: int
    writer: Any
    wseq: Any
    job: Any
    jseq: Any
    record: Any
    hash: Any

    @classmethod
    def of(cls, values: Sequence[Any]) -> StoreRow:
        """Return the row for the values of ``id, writer, wseq, job, jseq, record, hash``."""
        row_id, writer, wseq, job, jseq, record, digest = values[:7]
        if isinstance(record, (str, bytes)):
            record = parse_record(record)
        return cls(row_id, writer, wseq, job, jseq, record, digest)


@attrs.frozen
class JobHead:
    """What a ``jobs`` row says of its job's chain; ``key`` is ``None`` when there is no row."""

    key: Any
    seq: Any
    head: Any


class StoreAudit:
    """The audit table of one job store, every pass read from one snapshot."""

    def __init__(self, rows: Rows) -> None:
        """Read through ``rows``, the backend's way of streaming a query."""
        self._rows = rows

    def in_commit_order(self) -> Iterator[StoreRow]:
        """Yield every row in commit order."""
        return (StoreRow.of(v) for v in self._rows(_IN_COMMIT_ORDER))

    def by_writer(self) -> Iterator[StoreRow]:
        """Yield every row, writer by writer, each writer's in ``wseq`` order."""
        return (StoreRow.of(v) for v in self._rows(_BY_WRITER))

    def by_job(self) -> Iterator[tuple[StoreRow, JobHead]]:
        """Yield every row of a job, job by job in ``jseq`` order, with its job's row."""
        return ((StoreRow.of(v), JobHead(*v[7:10])) for v in self._rows(_BY_JOB))

    def without_job(self) -> Iterator[StoreRow]:
        """Yield the rows of no job (``spec`` records), in commit order."""
        return (StoreRow.of(v) for v in self._rows(_WITHOUT_JOB))

    def jobs_without_records(self) -> Iterator[JobHead]:
        """Yield the ``jobs`` rows that no audit record names."""
        return (JobHead(*v) for v in self._rows(_JOBS_WITHOUT_RECORDS))


@contextlib.contextmanager
def open_store_audit(path: Path, name: str) -> Iterator[StoreAudit]:
    """Open the audit table of the SQLite store at ``path`` read-only (``name`` for messages).

    Raises:
        AuditFormatError: the database cannot be opened or its tables read.
    """
    try:
        db = sqlite3.connect(sqlite_uri(path), uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        msg = f"{name}: cannot open the job store: {exc}"
        raise AuditFormatError(msg) from exc
    try:
        # One read transaction: every pass sees the same commits, however
        # many workers write the store meanwhile.
        db.execute("BEGIN")
        yield StoreAudit(functools.partial(_sqlite_rows, db, name))
    finally:
        db.close()


def _sqlite_rows(
    db: sqlite3.Connection, name: str, sql: str
) -> Iterator[Sequence[Any]]:
    try:
        yield from db.execute(sql)
    except sqlite3.Error as exc:
        msg = f"{name}: cannot read the job store's audit table: {exc}"
        raise AuditFormatError(msg) from exc


def store_records(
    path: Path, name: str, *, by_job: bool = False
) -> Iterator[Mapping[str, Any]]:
    """Yield every record of a store's audit table that parses, in commit order.

    With ``by_job``, only the records of jobs, job by job in chain order.
    """
    with open_store_audit(path, name) as audit:
        rows = (row for row, _ in audit.by_job()) if by_job else audit.in_commit_order()
        for row in rows:
            if isinstance(row.record, dict):
                yield row.record
