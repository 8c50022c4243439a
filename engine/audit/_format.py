"""Telling an audit log from a job store and from other files, before reading one.

A log is SQLite when its first bytes say so (or, for a new file, when its name
ends in .db, .sqlite or .sqlite3) and JSON Lines otherwise. A SQLite file
whose ``audit`` table holds writer and job chains is a job store: its audit
table is read as the log (a path, or a ``sqlite:///`` URL). A file that is
none of these, such as a stray binary, is refused with one clear
:class:`AuditFormatError` rather than read as a log full of torn lines.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Final, Literal

from ._errors import AuditFormatError

SQLITE_SUFFIXES: Final = (".db", ".sqlite", ".sqlite3")
SQLITE_HEADER: Final = b"SQLite format 3\x00"
#: How much of a JSON Lines file is read to judge its first line.
_HEAD_BYTES: Final = 1 << 20
#: Every record a sink writes starts so; a first line cut short by a crash
#: still does, while a line of some other file does not.
_RECORD_START: Final = b'{"seq"'
#: Columns of a log's audit table, and of a job store's (chained twice).
_LOG_COLUMNS: Final = frozenset({"seq", "record", "hash"})
_STORE_COLUMNS: Final = frozenset(
    {"id", "writer", "wseq", "job", "jseq", "record", "hash"}
)

#: A log's own file: JSON Lines or SQLite.
LogFile = Literal["jsonl", "sqlite"]
#: What a file given as a log holds: a log's own file, or a job store.
LogFormat = Literal[LogFile, "store"]


def is_sqlite(path: Path) -> bool:
    """Say whether ``path`` is (or, when new or empty, will be) an SQLite log."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError:
        head = b""  # missing, a directory, unreadable: the sink says which
    if head:
        return head == SQLITE_HEADER
    return path.suffix.lower() in SQLITE_SUFFIXES


def sqlite_uri(path: Path) -> str:
    """Return a read-only SQLite URI for ``path`` (safe for ``?`` and ``#`` in names)."""
    return path.resolve().as_uri() + "?mode=ro"


def locate_log(target: str | os.PathLike[str]) -> tuple[Path | str, LogFormat]:
    """Return the file a log path or store URL names, and what it holds.

    ``target`` is a log's path, a job store's path, or a store URL
    (``sqlite:///relative``, ``sqlite:////absolute``, ``postgresql://…``).
    A PostgreSQL store is returned as its URL, with the format ``"store"``:
    whether it is one is found when its audit table is opened.

    Raises:
        AuditFormatError: for a URL of another scheme, or a file that is
            neither a log nor a store (see :func:`check_log`).
        FileNotFoundError: when there is no such file.
    """
    text = os.fspath(target)
    if "://" not in text:
        path = Path(target)
    elif (named := _url_path(text)) is not None:
        path = Path(named)
    else:
        return text, "store"
    return path, check_log(path, name=text)


def _url_path(url: str) -> str | None:
    # engine.stores imports this package (its records), so it is imported
    # here, when a URL is read, rather than at module level.
    from engine.stores import StoreError, store_path  # noqa: PLC0415 - see above

    try:
        return store_path(url)
    except StoreError as exc:
        msg = f"cannot read an audit log from this URL: {exc}"
        raise AuditFormatError(msg) from exc


def check_log(path: str | os.PathLike[str], *, name: str | None = None) -> LogFormat:
    """Check that an existing ``path`` is an audit log or a job store; say which.

    ``name`` is how messages call it (default: ``path``).

    Raises:
        AuditFormatError: for a directory, a SQLite database that is neither
            a log nor a store with an audit table, a file named .db that is
            not SQLite, or a JSON Lines file whose first line is not a record.
        FileNotFoundError: when there is no such file.
    """
    name = os.fspath(path) if name is None else name
    where = Path(path)
    if where.is_dir():
        msg = f"{name} is a directory, not an audit log"
        raise AuditFormatError(msg)
    with where.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if head.startswith(SQLITE_HEADER):
        return _check_tables(where, name)
    if where.suffix.lower() in SQLITE_SUFFIXES and head:
        msg = f"{name} is not an audit log (not an SQLite database)"
        raise AuditFormatError(msg)
    if where.suffix.lower() in SQLITE_SUFFIXES:
        return "sqlite"  # an empty file: SQLite takes it as an empty database
    _check_first_line(head, name)
    return "jsonl"


def _check_tables(path: Path, name: str) -> LogFormat:
    try:
        db = sqlite3.connect(sqlite_uri(path), uri=True)
        try:
            tables = {
                str(row[0])
                for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                )
            }
            columns = {str(row[1]) for row in db.execute("PRAGMA table_info(audit)")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        msg = f"{name} is not an audit log (unreadable SQLite database: {exc})"
        raise AuditFormatError(msg) from exc
    # Told by the audit table's columns: an older store could hold a log's
    # table (seq, record, hash) beside its jobs, and that is read as a log.
    if columns >= _STORE_COLUMNS:
        return "store"
    if columns >= _LOG_COLUMNS:
        return "sqlite"
    if "audit" in tables:
        msg = f"{name} is not an audit log (its audit table has unknown columns)"
    elif "jobs" in tables:
        msg = (
            f"{name} is a job store without an audit table (written by an older "
            "statepoll: its audit log is the file given with --audit)"
        )
    else:
        msg = f"{name} is not an audit log (an SQLite database without an audit table)"
    raise AuditFormatError(msg)


def _check_first_line(head: bytes, name: str) -> None:
    first = next((line for line in head.split(b"\n") if line.strip()), b"")
    if not first or first.lstrip().startswith(_RECORD_START):
        return
    try:
        record = json.loads(first)
    except (ValueError, RecursionError):
        record = None
    if isinstance(record, dict) and "seq" in record and "hash" in record:
        return
    msg = f"{name} is not an audit log (its first line is not an audit record)"
    raise AuditFormatError(msg)
