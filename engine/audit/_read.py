"""Reading a log back: every record, in order, from either sink's file."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from ._errors import AuditFormatError
from ._format import check_log, sqlite_uri

_ALL: Final = "SELECT record FROM audit ORDER BY seq"
# The position in seq order is the record's "line", as in the full read.
_LIKE: Final = (
    "SELECT n, record FROM (SELECT row_number() OVER (ORDER BY seq) AS n, record"
    " FROM audit) WHERE record LIKE ? ORDER BY n"
)


def iter_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """Check ``path`` is a log, then yield (line number, parsed record or raw text).

    A line that does not parse (torn by a crash, edited, or nested too deep
    for the parser) is yielded as its raw text for the verifier to report.
    For SQLite, the line number is the row's position in ``seq`` order.

    Raises:
        AuditFormatError: if ``path`` is not an audit log (see ``check_log``).
    """
    sqlite = check_log(path)  # before the generator starts: the caller sees it at once
    where = Path(path)
    if where.stat().st_size == 0:
        return iter(())
    return _sqlite_lines(where) if sqlite else _jsonl_lines(where)


def iter_kind(path: str | os.PathLike[str], kind: str) -> Iterator[tuple[int, Any]]:
    """Yield (line number, record) of every parsed record of ``kind``, cheaply.

    Lines are matched on their raw text first and parsed only when they may
    hold such a record, so a pass for the few ``spec`` records of a large log
    costs a scan, not a parse of every line.
    """
    pattern = re.compile(rb'"kind"\s*:\s*"' + re.escape(kind.encode()) + rb'"')
    for number, record in _matching_lines(path, pattern, kind):
        if isinstance(record, dict) and record.get("kind") == kind:
            yield number, record


def _matching_lines(
    path: str | os.PathLike[str], pattern: re.Pattern[bytes], hint: str
) -> Iterator[tuple[int, Any]]:
    sqlite = check_log(path)
    where = Path(path)
    if where.stat().st_size == 0:
        return
    if sqlite:
        for number, text in _sqlite_lines(where, like=f'%"{hint}"%'):
            if pattern.search(text.encode("utf-8")):
                yield number, _parse(text)
        return
    with where.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if pattern.search(raw):
                yield number, _parse(raw)


def _parse(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


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
            yield number, str(text) if like is not None else _parse(text)
    except sqlite3.Error as exc:
        msg = f"{path} is not an audit log (cannot read its audit table: {exc})"
        raise AuditFormatError(msg) from exc
    finally:
        db.close()


def _jsonl_lines(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                yield number, _parse(raw)


def read_records(path: str | os.PathLike[str]) -> Iterator[Mapping[str, Any]]:
    """Return every valid record of a log, in order (torn lines are skipped; verify reports them).

    Raises:
        AuditFormatError: at once, if ``path`` is not an audit log.
    """
    return (record for _, record in iter_lines(path) if isinstance(record, dict))
