"""Reading a log back: every record, in order, from either sink's file."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ._sinks import SQLITE_SUFFIXES


def iter_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed record or the raw bytes when unparseable)."""
    if path.suffix.lower() in SQLITE_SUFFIXES:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for number, (text,) in enumerate(
                db.execute("SELECT record FROM audit ORDER BY seq"), 1
            ):
                try:
                    yield number, json.loads(text)
                except ValueError:
                    yield number, text
        finally:
            db.close()
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except ValueError:
                yield number, raw


def read_records(path: str | os.PathLike[str]) -> Iterator[Mapping[str, Any]]:
    """Yield every valid record of a log, in order (torn lines are skipped; verify reports them)."""
    for _, record in iter_lines(Path(path)):
        if isinstance(record, dict):
            yield record
