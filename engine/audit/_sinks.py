"""Sinks: where audit records go (JSON Lines or SQLite), each continuing its chain."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ._entry import AuditEntry
from ._errors import AuditFormatError, AuditWriteError
from ._format import check_log, is_sqlite
from ._records import GENESIS, build_record


class AuditSink(Protocol):
    """Where audit records go."""

    def append(self, entry: AuditEntry) -> Mapping[str, Any]:
        """Write one record and return it as written."""
        ...

    def close(self) -> None:
        """Flush and release the sink."""
        ...


class JsonlAuditLog:
    """JSON Lines sink: one record per line, appended and flushed per record.

    ``secrets`` are blanked from every record before it is hashed (a set is
    kept by reference: values added to it later are blanked too).

    ``fsync``: ``"never"`` (the OS decides), ``"always"`` (after every record),
    or ``"interval"`` (at most every ``fsync_interval`` seconds).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: str = "never",
        fsync_interval: float = 1.0,
        secrets: Iterable[str] = (),
    ) -> None:
        """Open ``path`` for appending, continuing its sequence and chain.

        Raises:
            AuditFormatError: if ``path`` holds something other than a JSON
                Lines audit log (an SQLite database, any other data).
            AuditWriteError: if it cannot be opened (no such directory, no
                permission).
        """
        if fsync not in ("never", "always", "interval"):
            msg = f"fsync must be 'never', 'always' or 'interval', not {fsync!r}"
            raise ValueError(msg)
        self.path = Path(path)
        self._fsync = fsync
        self._fsync_interval = fsync_interval
        self._last_sync = time.monotonic()
        self._secrets = _keep(secrets)
        if self.path.is_dir():
            msg = f"{path} is a directory, not an audit log"
            raise AuditFormatError(msg)
        if (
            self.path.is_file()
            and self.path.stat().st_size
            and check_log(path) != "jsonl"
        ):
            msg = f"{path} is an SQLite database, not a JSON Lines audit log"
            raise AuditFormatError(msg)
        try:
            self._seq, self._prev, torn = _jsonl_tail(self.path)
            self._file = self.path.open("ab")
        except OSError as exc:
            msg = f"cannot open audit log {path}: {exc.strerror or exc}"
            raise AuditWriteError(msg) from exc
        if torn:
            # A crash mid-write left a partial last line: start on a fresh line;
            # verify_log reports the torn one, the chain goes on from the last
            # valid record.
            self._file.write(b"\n")
            self._file.flush()

    def append(self, entry: AuditEntry) -> Mapping[str, Any]:
        """Write one record (a single write of the whole line) and return it."""
        record = build_record(
            entry, seq=self._seq + 1, prev=self._prev, secrets=self._secrets
        )
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self._file.write(line)
            self._file.flush()
            if self._fsync == "always" or (
                self._fsync == "interval"
                and time.monotonic() - self._last_sync >= self._fsync_interval
            ):
                os.fsync(self._file.fileno())
                self._last_sync = time.monotonic()
        except (OSError, ValueError) as exc:
            msg = f"cannot append to audit log {self.path}: {exc}"
            raise AuditWriteError(msg) from exc
        self._seq += 1
        self._prev = record["hash"]
        return record

    def close(self) -> None:
        """Flush, sync and close the file."""
        if not self._file.closed:
            with contextlib.suppress(OSError):
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()


def _jsonl_tail(path: Path) -> tuple[int, str, bool]:
    """Return (last seq, last hash, torn last line?) reading only the file's tail."""
    if not path.exists() or path.stat().st_size == 0:
        return 0, GENESIS, False
    size = path.stat().st_size
    with path.open("rb") as handle:
        chunk = 1 << 16
        while True:
            start = max(0, size - chunk)
            handle.seek(start)
            data = handle.read(size - start)
            lines = data.split(b"\n")
            if start > 0:
                lines = lines[1:]  # the first one may be cut
            torn = not data.endswith(b"\n")
            for raw in reversed([line for line in lines if line.strip()]):
                try:
                    record = json.loads(raw)
                except (ValueError, RecursionError):
                    continue
                if isinstance(record, dict) and isinstance(record.get("seq"), int):
                    return record["seq"], str(record.get("hash")), torn
            if start == 0:
                return 0, GENESIS, torn
            chunk *= 4


class SqliteAuditLog:
    """SQLite sink: WAL mode, one row per record, a commit per record.

    ``secrets`` are blanked as in :class:`JsonlAuditLog` (a set stays live).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, secrets: Iterable[str] = ()
    ) -> None:
        """Open (or create) the log at ``path``, continuing its chain.

        An existing SQLite database without an audit table gets one (an older
        job store kept its log so, beside its jobs). A job store of today is
        refused: its own audit table, chained per writer and job, is the log.

        Raises:
            AuditFormatError: if ``path`` holds something other than SQLite,
                or is a job store.
            AuditWriteError: if it cannot be opened or written.
        """
        self.path = Path(path)
        self._secrets = _keep(secrets)
        if self.path.is_dir():
            msg = f"{path} is a directory, not an audit log"
            raise AuditFormatError(msg)
        if (
            self.path.is_file()
            and self.path.stat().st_size
            and not is_sqlite(self.path)
        ):
            msg = f"{path} is not an audit log (not an SQLite database)"
            raise AuditFormatError(msg)
        if self.path.is_file() and self.path.stat().st_size and _is_store(self.path):
            # Its audit table is the store's own, chained per writer and job:
            # a log's records appended to it would break both.
            msg = (
                f"{path} is a job store: its audit table is written by the store itself"
            )
            raise AuditFormatError(msg)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            msg = f"cannot open audit log {path}: {exc}"
            raise AuditWriteError(msg) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS audit "
                "(seq INTEGER PRIMARY KEY, record TEXT NOT NULL, hash TEXT NOT NULL)"
            )
            row = self._db.execute(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        except sqlite3.Error as exc:
            self._db.close()
            msg = f"cannot open audit log {path}: {exc}"
            raise AuditWriteError(msg) from exc
        self._seq, self._prev = (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def append(self, entry: AuditEntry) -> Mapping[str, Any]:
        """Write one record in its own transaction and return it."""
        record = build_record(
            entry, seq=self._seq + 1, prev=self._prev, secrets=self._secrets
        )
        try:
            self._db.execute(
                "INSERT INTO audit (seq, record, hash) VALUES (?, ?, ?)",
                (record["seq"], json.dumps(record, ensure_ascii=False), record["hash"]),
            )
        except sqlite3.Error as exc:
            msg = f"cannot append to audit log {self.path}: {exc}"
            raise AuditWriteError(msg) from exc
        self._seq += 1
        self._prev = record["hash"]
        return record

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def _is_store(path: Path) -> bool:
    try:
        return check_log(path) == "store"
    except AuditFormatError:
        return False  # another SQLite database: it gets an audit table beside its own


def _keep(secrets: Iterable[str]) -> Collection[str]:
    # A set is kept by reference, as Redactor does: the engine opens its sink
    # before it reads credentials, and adds them to the same set later.
    return secrets if isinstance(secrets, set) else tuple(s for s in secrets if s)


def open_audit(
    path: str | os.PathLike[str], *, fsync: str = "never", secrets: Iterable[str] = ()
) -> AuditSink:
    """Open the sink for ``path``: SQLite for an SQLite file or a new .db/.sqlite/.sqlite3.

    Anything else is JSON Lines.

    Raises:
        AuditFormatError: if ``path`` exists and is not an audit log of that kind.
        AuditWriteError: if it cannot be opened.
    """
    if is_sqlite(Path(path)):
        return SqliteAuditLog(path, secrets=secrets)
    return JsonlAuditLog(path, fsync=fsync, secrets=secrets)
