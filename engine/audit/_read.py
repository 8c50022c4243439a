"""Reading a log back: every record, in order, from either sink's file or a job store."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from ._errors import AuditFormatError
from ._format import LogFile, locate_log, sqlite_uri
from ._records import parse_record
from ._store import store_records

_ALL: Final = "SELECT record FROM audit ORDER BY seq"
# The position in seq order is the record's "line", as in the full read.
_LIKE: Final = (
    "SELECT n, record FROM (SELECT row_number() OVER (ORDER BY seq) AS n, record"
    " FROM audit) WHERE record LIKE ? ORDER BY n"
)


def iter_lines(path: Path, fmt: LogFile) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed record or raw text) of a log checked to be of ``fmt``.

    A line that does not parse (torn by a crash, edited, or nested too deep
    for the parser) is yielded as its raw text for the verifier to report.
    For SQLite, the line number is the row's position in ``seq`` order. A
    job store is read by ``_store`` instead.
    """
    if path.stat().st_size == 0:
        return iter(())
    return _sqlite_lines(path) if fmt == "sqlite" else _jsonl_lines(path)


def iter_kind(path: Path, fmt: LogFile, kind: str) -> Iterator[tuple[int, Any]]:
    """Yield (line number, record) of every parsed record of ``kind``, cheaply.

    Lines are matched on their raw text first and parsed only when they may
    hold such a record, so a pass for the few ``spec`` records of a large log
    costs a scan, not a parse of every line.
    """
    pattern = re.compile(rb'"kind"\s*:\s*"' + re.escape(kind.encode()) + rb'"')
    for number, record in _matching_lines(path, fmt, pattern, kind):
        if isinstance(record, dict) and record.get("kind") == kind:
            yield number, record


def _matching_lines(
    path: Path, fmt: LogFile, pattern: re.Pattern[bytes], hint: str
) -> Iterator[tuple[int, Any]]:
    if path.stat().st_size == 0:
        return
    if fmt == "sqlite":
        for number, text in _sqlite_lines(path, like=f'%"{hint}"%'):
            if pattern.search(text.encode("utf-8")):
                yield number, parse_record(text)
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if pattern.search(raw):
                yield number, parse_record(raw)


def _sqlite_lines(path: Path, *, like: str | None = None) -> Iterator[tuple[int, Any]]:
    """Yield (position in seq order, parsed record); only raw text of rows LIKE ``like``."""
    db = sqlite3.connect(sqlite_uri(path), uri=True)
    try:
        rows: Iterator[tuple[int, Any]]
        if like is None:
            rows = enumerate((text for (text,) in db.execute(_ALL)), 1)
        else:
            rows = ((n, text) for n, text in db.execute(_LIKE, (like,)))
        for number, text in rows:
            yield number, str(text) if like is not None else parse_record(text)
    except sqlite3.Error as exc:
        msg = f"{path} is not an audit log (cannot read its audit table: {exc})"
        raise AuditFormatError(msg) from exc
    finally:
        db.close()


def _jsonl_lines(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                yield number, parse_record(raw)


def read_records(path: str | os.PathLike[str]) -> Iterator[Mapping[str, Any]]:
    """Return every valid record of a log or a job store, in order.

    A log's records come in its order (torn lines are skipped; verify reports
    them); a job store's (a path or ``sqlite:///`` URL) in commit order.

    Raises:
        AuditFormatError: at once, if ``path`` is neither an audit log nor a
            job store this build can read.
    """
    where, fmt = locate_log(path)
    if fmt == "store":
        return store_records(where, os.fspath(path))
    return log_records(Path(where), fmt)


def log_records(path: Path, fmt: LogFile) -> Iterator[Mapping[str, Any]]:
    """Return every valid record of a log checked to be of ``fmt``, in order."""
    return (record for _, record in iter_lines(path, fmt) if isinstance(record, dict))
