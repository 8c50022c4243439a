"""Reading a job store's audit table: in commit, writer or job order, with the jobs' heads.

A job store keeps its audit records in a table beside its jobs (see
``engine.stores``). Each row carries its record's two chain positions as
columns (``writer``/``wseq`` and ``job``/``jseq``, each pair unique, so each
order is an index scan), and each ``jobs`` row keeps the head of its job's
chain (``audit_seq``, ``audit_head``). Every query streams: nothing here
holds the whole table.

The SQL is plain and shared by every backend; what differs is how a
read-only connection is opened and a query streamed, one small function per
backend. Both read every pass from one snapshot, so a store that workers are
writing still verifies: SQLite in one read transaction, PostgreSQL in one
REPEATABLE READ READ ONLY transaction (the store's schema first on the
search path), each query through a server-side (named) cursor.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
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
def open_store_audit(where: Path | str, name: str) -> Iterator[StoreAudit]:
    """Open the audit table of a job store read-only (``name`` for messages).

    ``where`` is a SQLite store's file, or a PostgreSQL store's URL.

    Raises:
        AuditFormatError: the database cannot be opened or its tables read.
    """
    if isinstance(where, str):
        with _open_postgres(where, name) as audit:
            yield audit
        return
    try:
        db = sqlite3.connect(sqlite_uri(where), uri=True, isolation_level=None)
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


@contextlib.contextmanager
def _open_postgres(url: str, name: str) -> Iterator[StoreAudit]:
    # engine.stores imports this package, and psycopg is an optional extra.
    from engine.stores import shown_url  # noqa: PLC0415 - see above

    name = shown_url(name)
    try:
        import psycopg  # noqa: PLC0415 - see above
    except ImportError:  # pragma: no cover - the postgres extra is not installed
        msg = f"{name}: reading a PostgreSQL store needs psycopg: pip install 'statepoll[postgres]'"
        raise AuditFormatError(msg) from None
    try:
        db = psycopg.connect(
            url, options="-c search_path=statepoll", connect_timeout=10
        )
    except psycopg.Error as exc:
        msg = f"{name}: cannot open the job store: {_first_line(exc)}"
        raise AuditFormatError(msg) from exc
    try:
        # One snapshot for every pass, as SQLite's read transaction.
        db.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        db.read_only = True
        found = db.execute("SELECT to_regclass('statepoll.audit')").fetchone()
        if found is None or found[0] is None:
            msg = f"{name} is not a job store (no statepoll.audit table)"
            raise AuditFormatError(msg)
        yield StoreAudit(functools.partial(_postgres_rows, db, name, itertools.count()))
    finally:
        db.close()


def _postgres_rows(
    db: Any, name: str, names: Iterator[int], sql: str
) -> Iterator[Sequence[Any]]:
    import psycopg  # noqa: PLC0415 - only reached once _open_postgres imported it

    try:
        # A named cursor streams from the server, a batch at a time.
        with db.cursor(name=f"statepoll_audit_{next(names)}") as cursor:
            cursor.itersize = 2000
            cursor.execute(sql)
            yield from cursor
    except psycopg.Error as exc:
        msg = f"{name}: cannot read the job store's audit table: {_first_line(exc)}"
        raise AuditFormatError(msg) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def store_records(
    path: Path | str, name: str, *, by_job: bool = False
) -> Iterator[Mapping[str, Any]]:
    """Yield every record of a store's audit table that parses, in commit order.

    With ``by_job``, only the records of jobs, job by job in chain order.
    """
    with open_store_audit(path, name) as audit:
        rows = (row for row, _ in audit.by_job()) if by_job else audit.in_commit_order()
        for row in rows:
            if isinstance(row.record, dict):
                yield row.record
