"""Durable job store: what a restarted engine needs to resume every live job.

The store is an interface (:class:`JobStore`); :class:`SqliteJobStore` is the
default backend. Snapshots are plain JSON (no pickle anywhere): spec source and
hash, lifecycle, ids, state, attempt counters, due time and deadline (as wall
clock, since monotonic time does not survive a restart), links taken from the
submit response, item states and the JSON inputs needed to fetch the result.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from statemachines import StatepollError

__all__ = ["JobStore", "SqliteJobStore", "StoreError", "open_store"]


class StoreError(StatepollError, ValueError):
    """The path is not a job store (another file, an audit log) or cannot hold one."""


class JobStore(Protocol):
    """Where live jobs are kept between polls."""

    def put(self, key: str, snapshot: Mapping[str, Any]) -> None:
        """Insert or replace the snapshot of job ``key``."""
        ...

    def remove(self, key: str) -> None:
        """Forget job ``key`` (it finished)."""
        ...

    def unfinished(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(key, snapshot)`` of every job still live."""
        ...

    def close(self) -> None:
        """Release the backend."""
        ...


class SqliteJobStore:
    """Job snapshots in one SQLite table (WAL mode, a commit per change)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (or create) the store at ``path``."""
        self.path = os.fspath(path)
        # The engine writes from one event loop thread; the lock keeps the
        # blocking facade and resume checks safe if they overlap.
        self._lock = threading.Lock()
        folder = Path(self.path).absolute().parent
        if not folder.is_dir():
            msg = f"cannot open job store {self.path}: no directory {folder}"
            raise StoreError(msg)
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            msg = f"cannot open job store {self.path}: {exc}"
            raise StoreError(msg) from exc
        try:
            self._check_is_store()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, snapshot TEXT NOT NULL)"
            )
        except sqlite3.Error as exc:
            self._db.close()
            # "file is not a database": a text file, an audit log in JSON Lines.
            msg = f"{self.path} is not a job store: {exc}"
            raise StoreError(msg) from exc
        except StoreError:
            self._db.close()
            raise

    def _check_is_store(self) -> None:
        """Refuse a database that holds other tables and no ``jobs`` table.

        Creating ``jobs`` there would quietly turn, say, an audit log into a
        store; an empty or new file is a store to be.
        """
        tables = {
            name
            for (name,) in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            )
        }
        if tables and "jobs" not in tables:
            what = (
                "an audit log"
                if "audit" in tables
                else "a database without a jobs table"
            )
            msg = f"{self.path} is {what}, not a job store"
            raise StoreError(msg)

    def put(self, key: str, snapshot: Mapping[str, Any]) -> None:
        """Insert or replace the snapshot of job ``key``."""
        text = json.dumps(snapshot, separators=(",", ":"), sort_keys=True)
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (key, snapshot) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET snapshot = excluded.snapshot",
                (key, text),
            )

    def remove(self, key: str) -> None:
        """Forget job ``key``."""
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE key = ?", (key,))

    def unfinished(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield every stored job, oldest key first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, snapshot FROM jobs ORDER BY key"
            ).fetchall()
        for key, text in rows:
            yield key, json.loads(text)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def open_store(path: str | os.PathLike[str]) -> JobStore:
    """Open the default store backend at ``path``.

    Raises:
        StoreError: ``path`` is not a job store, or no store can be made there.
    """
    return SqliteJobStore(path)
