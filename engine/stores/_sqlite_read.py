"""Reading a SQLite store: a driver's reads and claims, and the read-only readers.

:class:`_SqliteReads` is the part of ``SqliteJobStore`` that takes free jobs
and reads them back, their due times, and other processes' commits.
:func:`read_sqlite_records` and :func:`sqlite_unfinished` read a store's file
without opening it as a driver: no owner, no lease, no schema change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from engine._core.state import JobState
from engine.stores._base import SHELVE, Lease, StoreError, read_claimed
from engine.stores._sqlite_db import _is_sqlite, _SqliteDb

__all__ = ["read_sqlite_records", "sqlite_unfinished"]

logger = logging.getLogger("statepoll.store")

#: How often another process's commits are looked for while waiting.
_WATCH: Final = 0.05

#: Free: no owner, or an owner whose heartbeat has lapsed.
_FREE: Final = (
    "(j.owner IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM owners o WHERE o.owner = j.owner AND o.lease_until >= :now))"
)


class _SqliteReads(_SqliteDb):
    """Claim free jobs, read them back, and notice other processes' commits."""

    owner: str
    _version: int

    # -- reading and claiming ------------------------------------------------------------

    async def claim(
        self, *, now: float, limit: int, due_only: bool = True
    ) -> list[tuple[JobState, Lease]]:
        """Take free, unfinished jobs, the most overdue first (see ``JobStore.claim``)."""
        return await self._call(self._claim_sync, now, limit, due_only=due_only)

    def _claim_sync(
        self, now: float, limit: int, *, due_only: bool
    ) -> list[tuple[JobState, Lease]]:
        db = self._conn()
        due = "AND j.due <= :now " if due_only else ""
        claimed = []
        with self._transaction(db):
            rows = db.execute(
                "UPDATE jobs SET owner = :me, token = token + 1 WHERE key IN ("  # noqa: S608 - constants only
                f"SELECT j.key FROM jobs j WHERE j.done = 0 {due}AND j.shelved <= :now "
                f"AND {_FREE} "
                "ORDER BY j.due LIMIT :limit) "
                "RETURNING key, token, audit_seq, audit_head, snapshot",
                {"me": self.owner, "now": now, "limit": limit},
            ).fetchall()
            for key, token, seq, head, snapshot in rows:
                job = read_claimed(key, snapshot, str(self.path))
                if job is None:
                    db.execute(
                        "UPDATE jobs SET owner = NULL, shelved = ? WHERE key = ?",
                        (now + SHELVE, key),
                    )
                    continue
                claimed.append((job, Lease(key, token, seq, head)))
        # RETURNING keeps no order: the most overdue go first.
        claimed.sort(key=lambda pair: pair[0].due)
        return claimed

    async def get(self, key: str) -> JobState | None:
        """Return job ``key`` as last committed."""
        return await self._call(self._get_sync, key)

    def _get_sync(self, key: str) -> JobState | None:
        row = (
            self._conn()
            .execute("SELECT snapshot FROM jobs WHERE key = ?", (key,))
            .fetchone()
        )
        return None if row is None else JobState.from_json(json.loads(row[0]))

    async def next_due(self, *, now: float) -> float | None:
        """Return the earliest due time of a job that is free (or will be) at ``now``."""
        return await self._call(self._next_due_sync, now)

    def _next_due_sync(self, now: float) -> float | None:
        row = (
            self._conn()
            .execute(
                f"SELECT MIN(j.due) FROM jobs j WHERE j.done = 0 AND {_FREE}",  # noqa: S608 - a constant
                {"now": now},
            )
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    async def wait_changed(self, timeout: float) -> None:
        """Return when another connection committed (``PRAGMA data_version``) or on timeout."""
        ends = time.monotonic() + max(0.0, timeout)
        while time.monotonic() < ends:
            version = await self._call(self._data_version)
            if version != self._version:
                self._version = version
                return
            await asyncio.sleep(min(_WATCH, max(0.0, ends - time.monotonic())))

    def _data_version(self) -> int:
        return int(self._conn().execute("PRAGMA data_version").fetchone()[0])


def read_sqlite_records(path: str | os.PathLike[str]) -> Iterator[Mapping[str, Any]]:
    """Yield the audit records of a SQLite job store, in commit order (read only)."""
    db = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        for (text,) in db.execute("SELECT record FROM audit ORDER BY id"):
            yield json.loads(text)
    finally:
        db.close()


def sqlite_unfinished(path: str | os.PathLike[str]) -> list[JobState]:
    """Return the unfinished jobs of a SQLite store, read only ([] when there is no file yet).

    Raises:
        StoreError: the file (or its folder) cannot be a job store.
    """
    where = Path(path)
    if not where.absolute().parent.is_dir():
        msg = f"cannot open job store {where}: no directory {where.absolute().parent}"
        raise StoreError(msg)
    if where.is_dir():
        msg = f"{where} is a directory, not a job store"
        raise StoreError(msg)
    if not where.exists() or where.stat().st_size == 0:
        return []
    if not _is_sqlite(where):
        msg = f"{where} is not a job store (not a SQLite database)"
        raise StoreError(msg)
    db = sqlite3.connect(where.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        tables = {
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "jobs" not in tables:
            what = (
                "an audit log"
                if "audit" in tables
                else "a database without a jobs table"
            )
            msg = f"{where} is not a job store ({what})"
            raise StoreError(msg)
        rows = (
            db.execute(
                "SELECT snapshot FROM jobs WHERE done = 0 ORDER BY due"
            ).fetchall()
            if "meta" in tables  # else the first format: opening the store migrates it
            else []
        )
    except sqlite3.Error as exc:
        msg = f"{where} is not a job store: {exc}"
        raise StoreError(msg) from exc
    finally:
        db.close()
    jobs = []
    for (text,) in rows:
        with contextlib.suppress(ValueError):
            jobs.append(JobState.from_json(json.loads(text)))
    return jobs
