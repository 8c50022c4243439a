"""What the command line checks before any request is sent.

Job inputs (names, types, required ones), lifecycles, and the files a command
reads or appends to (audit logs, job stores). Each check raises
:class:`UsageError` with one line that says what is wrong and what is expected;
the command line prints it and exits 2.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from statemachines import StatepollError

if TYPE_CHECKING:
    from engine import JobStatus
    from statemachines import Lifecycle, Spec

__all__ = [
    "UsageError",
    "audit_log_problem",
    "check_audit_target",
    "check_targets",
    "lifecycle_of",
    "parse_inputs",
    "parse_pairs",
    "stored_jobs",
]

#: Suffixes ``engine.audit`` reads and writes as SQLite (everything else is JSON Lines).
_SQLITE_SUFFIXES: Final = (".db", ".sqlite", ".sqlite3")
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
#: Longest first line read to decide whether a file is a JSON Lines audit log;
#: a record is a few kilobytes.
_FIRST_LINE_LIMIT: Final = 1 << 20


class UsageError(StatepollError, ValueError):
    """A command-line mistake: printed as one line, exit 2."""


# -- lifecycles and inputs -------------------------------------------------------------


def lifecycle_of(spec: Spec, name: str) -> Lifecycle:
    """Return ``spec``'s lifecycle ``name``, or say which ones there are.

    Raises:
        UsageError: no such lifecycle (with a did-you-mean).
    """
    names = list(spec.lifecycle_names)
    if name not in names:
        msg = f"{spec.name} has no lifecycle {name!r}{_hint(name, names)}. Declared: {', '.join(names)}"
        raise UsageError(msg)
    return spec.lifecycle(name)


def parse_inputs(
    spec: Spec,
    lifecycle: Lifecycle,
    pairs: Sequence[str],
    file: str | None,
    *,
    submit: bool,
) -> dict[str, Any]:
    """Turn ``--input K=V`` pairs and ``--file`` into the job's inputs, checked.

    Every name must be declared (a wrong one gets a did-you-mean and the
    declared names); values are converted to the declared type; with
    ``submit``, every required input without a default must be given, and the
    missing ones are named together.

    Raises:
        UsageError: the first problem found, as one line.
    """
    where = f"{spec.name}/{lifecycle.name}"
    kinds = {i.name: i.type for i in lifecycle.inputs}
    declared = list(kinds)
    given = parse_pairs(pairs, "--input")
    unknown = [name for name in given if name not in declared]
    if unknown:
        listed = ", ".join(f"{n!r}{_hint(n, declared)}" for n in unknown)
        noun = "input" if len(unknown) == 1 else "inputs"
        msg = f"unknown {noun} {listed} for {where}. Declared: {', '.join(declared) or 'none'}"
        raise UsageError(msg)
    values: dict[str, Any] = {}
    for name, raw in given.items():
        values[name] = _convert(name, raw, kinds[name])
    if file is not None:
        target = next((i for i in lifecycle.inputs if i.where == "file"), None)
        if target is None:
            msg = f"{where} takes no file (--file); its inputs: {', '.join(declared) or 'none'}"
            raise UsageError(msg)
        values[target.name] = _existing_file(file, "--file")
    if submit:
        missing = [
            i.name
            for i in lifecycle.inputs
            if i.required and i.default is None and values.get(i.name) is None
        ]
        if missing:
            noun = "input" if len(missing) == 1 else "inputs"
            msg = (
                f"missing required {noun} for {where}: {', '.join(missing)} "
                f"(give each as --input NAME=VALUE; statepoll specs {spec.name} lists them)"
            )
            raise UsageError(msg)
    return values


def parse_pairs(items: Iterable[str], flag: str) -> dict[str, str]:
    """Split ``K=V`` items.

    Raises:
        UsageError: an item without ``=`` or with an empty name.
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            msg = f"{flag} takes NAME=VALUE, not {item!r}"
            raise UsageError(msg)
        out[key] = value
    return out


def _convert(name: str, raw: str, kind: str) -> Any:
    if kind == "string":
        return raw
    if kind == "file":
        return _existing_file(raw, f"--input {name}")
    try:
        if kind == "boolean":
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)  # noqa: TRY301 - reported below with the input's name
            return lowered in ("true", "1", "yes")
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        return json.loads(raw)
    except ValueError as exc:
        msg = f"--input {name}: expected {kind}{' (JSON)' if kind in ('array', 'object') else ''}, not {raw!r}"
        raise UsageError(msg) from exc


def _existing_file(path: str, flag: str) -> Path:
    found = Path(path)
    if not found.is_file():
        msg = f"{flag} {path}: no such file"
        raise UsageError(msg)
    return found


def _hint(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- stores and audit logs ------------------------------------------------------------


def check_targets(audit: str | None, store: str | None) -> None:
    """Refuse, before anything is sent, an audit log or a store that cannot be used.

    Raises:
        UsageError: the audit log cannot be appended to.
        engine.stores.StoreError: ``store`` is not a job store (or none can be made there).
    """
    if audit:
        check_audit_target(audit)
    if store:
        stored_jobs(store)


def stored_jobs(url: str) -> dict[str, JobStatus]:
    """Return where each unfinished job of the store at ``url`` is, by key (read only).

    Raises:
        engine.stores.StoreError: ``url`` is not a job store.
    """
    from engine.stores import unfinished_jobs  # noqa: PLC0415 - `statepoll specs` does not load the engine

    return {job.key: job.where() for job in unfinished_jobs(url)}


def check_audit_target(path: str) -> None:
    """Check that ``--audit PATH`` can be appended to: its folder exists, and it is empty or a log.

    Raises:
        UsageError: no such folder, a directory, or a file that is not an audit log.
    """
    target = Path(path)
    folder = target.absolute().parent
    if not folder.is_dir():
        msg = f"--audit {path}: no directory {folder}"
        raise UsageError(msg)
    if target.is_dir():
        msg = f"--audit {path} is a directory; give a file (.jsonl, or .db for SQLite)"
        raise UsageError(msg)
    if target.is_file() and target.stat().st_size > 0:
        problem = audit_log_problem(target)
        if problem is not None:
            msg = f"--audit {problem}; it would not be appended to"
            raise UsageError(msg)


def audit_log_problem(path: Path) -> str | None:
    """Return why ``path`` is not an audit log ``engine.audit`` can read, or ``None``.

    A SQLite file must hold an ``audit`` table (and carry a suffix the reader
    opens as SQLite); any other file must start with an audit record. An empty
    JSON Lines file is an empty log.
    """
    if path.is_dir():
        return f"{path} is a directory, not an audit log"
    with path.open("rb") as handle:
        head = handle.read(len(_SQLITE_MAGIC))
    sqlite_name = path.suffix.lower() in _SQLITE_SUFFIXES
    if head == _SQLITE_MAGIC:
        return _sqlite_problem(path, sqlite_name=sqlite_name)
    if sqlite_name:
        return f"{path} is not an audit log: a {path.suffix} log is a SQLite database, and this file is not one"
    first = _first_line(path)
    if first is None:
        return None
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if not (isinstance(record, dict) and "seq" in record and "hash" in record):
        return f"{path} is not an audit log: its first line is not an audit record"
    return None


def _sqlite_problem(path: Path, *, sqlite_name: bool) -> str | None:
    try:
        db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
        try:
            tables = {
                name
                for (name,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            columns = {row[1] for row in db.execute("PRAGMA table_info(audit)")}
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"{path} is not a readable SQLite database ({exc})"
    if not {"seq", "record", "hash"} <= columns:
        if "jobs" in tables:
            return f"{path} is a job store, not an audit log"
        return f"{path} is a SQLite database without an audit table, not an audit log"
    if not sqlite_name:
        return f"{path} is a SQLite audit log, but only {', '.join(_SQLITE_SUFFIXES)} files are read as SQLite: rename it"
    return None


def _first_line(path: Path) -> bytes | None:
    """Return the first non-blank line (at most ``_FIRST_LINE_LIMIT`` bytes), or ``None``."""
    with path.open("rb") as handle:
        while True:
            line = handle.readline(_FIRST_LINE_LIMIT)
            if not line:
                return None
            if line.strip():
                return line
