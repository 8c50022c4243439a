"""Telling an audit log from other files, before reading or appending to one.

A log is SQLite when its first bytes say so (or, for a new file, when its name
ends in .db, .sqlite or .sqlite3) and JSON Lines otherwise. A file that is
neither, such as a job store or a stray binary, is refused with one clear
:class:`AuditFormatError` rather than read as a log full of torn lines.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Final

from ._errors import AuditFormatError

SQLITE_SUFFIXES: Final = (".db", ".sqlite", ".sqlite3")
SQLITE_HEADER: Final = b"SQLite format 3\x00"
#: How much of a JSON Lines file is read to judge its first line.
_HEAD_BYTES: Final = 1 << 20
#: Every record a sink writes starts so; a first line cut short by a crash
#: still does, while a line of some other file does not.
_RECORD_START: Final = b'{"seq"'


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


def check_log(path: str | os.PathLike[str]) -> bool:
    """Check that an existing ``path`` is an audit log; return whether it is SQLite.

    Raises:
        AuditFormatError: for a directory, a job store or another SQLite
            database, a file named .db that is not SQLite, or a JSON Lines file
            whose first line is not a record.
        FileNotFoundError: when there is no such file.
    """
    name = os.fspath(path)
    where = Path(path)
    if where.is_dir():
        msg = f"{name} is a directory, not an audit log"
        raise AuditFormatError(msg)
    with where.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if head.startswith(SQLITE_HEADER):
        _check_tables(where, name)
        return True
    if where.suffix.lower() in SQLITE_SUFFIXES and head:
        msg = f"{name} is not an audit log (not an SQLite database)"
        raise AuditFormatError(msg)
    if where.suffix.lower() in SQLITE_SUFFIXES:
        return True  # an empty file: SQLite takes it as an empty database
    _check_first_line(head, name)
    return False


def _check_tables(path: Path, name: str) -> None:
    try:
        db = sqlite3.connect(sqlite_uri(path), uri=True)
        try:
            tables = {
                str(row[0])
                for row in db.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                )
            }
        finally:
            db.close()
    except sqlite3.Error as exc:
        msg = f"{name} is not an audit log (unreadable SQLite database: {exc})"
        raise AuditFormatError(msg) from exc
    if "jobs" in tables:
        msg = f"{name} is a job store, not an audit log"
    elif "audit" in tables:
        return
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
