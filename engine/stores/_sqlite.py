"""The embedded store: one SQLite file shared by the processes of one machine.

WAL mode, short transactions (``BEGIN IMMEDIATE`` takes the write lock at
once, so two processes never deadlock upgrading a read), and every call on
one thread of its own: sqlite3 blocks, and the engine's event loop must not.
Another process's commits are noticed through ``PRAGMA data_version``, which
changes when any other connection commits.

The database itself (schema, migrations, WAL mode, the thread and its
transactions) is ``engine.stores._sqlite_db``'s; claiming and reading jobs,
and reading a store without opening it, ``engine.stores._sqlite_read``'s.
:class:`SqliteJobStore` here opens the store, keeps its owner's lease, and
writes jobs and their audit records.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from engine._core.state import JobState
from engine.audit import AuditEntry
from engine.stores._base import (
    AuditChain,
    Lease,
    StoreError,
    compact_json,
    owner_gone,
    snapshot_json,
)
from engine.stores._sqlite_db import SCHEMA_VERSION, _is_sqlite, _use_wal
from engine.stores._sqlite_read import (
    _SqliteReads,
    read_sqlite_records,
    sqlite_unfinished,
)

__all__ = [
    "SCHEMA_VERSION",
    "SqliteJobStore",
    "read_sqlite_records",
    "sqlite_unfinished",
]

logger = logging.getLogger("statepoll.store")

#: Finished jobs stay readable (wait, state_of, audit heads) this long.
KEEP_DONE: Final = 7 * 24 * 3600.0


class SqliteJobStore(_SqliteReads):
    """Jobs, owners and the audit log in one SQLite file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Use the store at ``path`` (created on :meth:`open`)."""
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.owner = ""
        self._lease = 30.0
        self._db: sqlite3.Connection | None = None
        # One thread for every call: sqlite3 connections belong to a thread,
        # and the calls of one store are serialized, in order, for free.
        self._thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="statepoll-sqlite"
        )
        #: This writer's audit chain (advanced only after a commit).
        self._audit = AuditChain(self.owner)
        self._version = 0

    # -- opening ----------------------------------------------------------------------

    async def open(self, owner: str, *, lease: float, now: float) -> None:
        """Open (or create) the file, migrate its schema, and register ``owner``."""
        self.owner = owner
        self._audit = AuditChain(owner)
        self._lease = lease
        await self._call(self._open_sync, now)

    def _open_sync(self, now: float) -> None:
        folder = self.path.absolute().parent
        if not folder.is_dir():
            msg = f"cannot open job store {self.path}: no directory {folder}"
            raise StoreError(msg)
        if self.path.is_dir():
            msg = f"{self.path} is a directory, not a job store"
            raise StoreError(msg)
        if (
            self.path.exists()
            and self.path.stat().st_size
            and not _is_sqlite(self.path)
        ):
            msg = f"{self.path} is not a job store (not a SQLite database)"
            raise StoreError(msg)
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            msg = f"cannot open the job store {self.path}: {exc}"
            raise StoreError(msg) from exc
        self._db = db
        _use_wal(db)
        db.execute("PRAGMA synchronous=NORMAL")
        with self._transaction(db):
            self._migrate(db)
            for (other,) in db.execute(
                "SELECT owner FROM owners WHERE lease_until >= ?", (now,)
            ).fetchall():
                if owner_gone(other):
                    logger.info(
                        "owner %s of %s is gone: its jobs are free", other, self.path
                    )
                    db.execute(
                        "UPDATE owners SET lease_until = 0 WHERE owner = ?", (other,)
                    )
            db.execute(
                "INSERT INTO owners (owner, lease_until, started) VALUES (?, ?, ?) "
                "ON CONFLICT (owner) DO UPDATE SET lease_until = excluded.lease_until",
                (self.owner, now + self._lease, now),
            )
            # An owner name used again (a restart that reuses it) continues
            # its audit chain instead of clashing with it.
            last = db.execute(
                "SELECT wseq, hash FROM audit WHERE writer = ? ORDER BY wseq DESC LIMIT 1",
                (self.owner,),
            ).fetchone()
            if last is not None:
                self._audit.wseq, self._audit.wprev = int(last[0]), str(last[1])
        self._version = db.execute("PRAGMA data_version").fetchone()[0]

    async def close(self) -> None:
        """Close the connection and its thread."""
        if self._db is not None:
            await self._call(self._db.close)
            self._db = None
        self._thread.shutdown(wait=True)

    # -- owners -------------------------------------------------------------------------

    async def heartbeat(self, *, now: float) -> None:
        """Extend the owner's lease, and purge finished jobs past their keeping time."""
        await self._call(self._heartbeat_sync, now)

    def _heartbeat_sync(self, now: float) -> None:
        db = self._conn()
        with self._transaction(db):
            db.execute(
                "UPDATE owners SET lease_until = ? WHERE owner = ?",
                (now + self._lease, self.owner),
            )
            db.execute(
                "DELETE FROM jobs WHERE done = 1 AND updated < ?", (now - KEEP_DONE,)
            )
            db.execute("DELETE FROM owners WHERE lease_until < ?", (now - KEEP_DONE,))

    async def release(self) -> None:
        """Free every job this owner holds, and drop its heartbeat."""
        await self._call(self._release_sync)

    def _release_sync(self) -> None:
        db = self._conn()
        with self._transaction(db):
            db.execute("UPDATE jobs SET owner = NULL WHERE owner = ?", (self.owner,))
            db.execute("DELETE FROM owners WHERE owner = ?", (self.owner,))

    # -- writing -------------------------------------------------------------------------

    async def add(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        *,
        hold: bool,
        now: float,
    ) -> Lease:
        """Insert a new job and its first records (see ``JobStore.add``)."""
        [lease] = await self.add_many([(job, entries)], hold=hold, now=now)
        return lease

    async def add_many(
        self,
        jobs: Sequence[tuple[JobState, Sequence[AuditEntry]]],
        *,
        hold: bool,
        now: float,
    ) -> list[Lease]:
        """Insert new jobs and their first records, all in one transaction."""
        return await self._call(self._add_sync, jobs, hold=hold, now=now)

    def _add_sync(
        self,
        jobs: Sequence[tuple[JobState, Sequence[AuditEntry]]],
        *,
        hold: bool,
        now: float,
    ) -> list[Lease]:
        db = self._conn()
        leases, rows, values = self._audit.first(
            jobs, owner=self.owner if hold else None, now=now
        )
        with self._transaction(db):
            self._insert_jobs(db, values)
            self._insert(db, rows)
        self._audit.advance(rows)
        return leases

    @staticmethod
    def _insert_jobs(db: sqlite3.Connection, values: list[tuple[Any, ...]]) -> None:
        db.executemany(
            "INSERT INTO jobs (key, service, lifecycle, job_id, phase, done, due, "
            "owner, token, audit_seq, audit_head, snapshot, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
            values,
        )

    async def commit(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        *,
        hold: bool,
        now: float,
    ) -> Lease | None:
        """Write a step, fenced by ``lease`` (see ``JobStore.commit``)."""
        return await self._call(
            self._commit_sync, job, entries, lease, hold=hold, now=now
        )

    def _commit_sync(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        *,
        hold: bool,
        now: float,
    ) -> Lease | None:
        try:
            moved, _ = self._write_step(job, entries, lease, hold=hold, now=now)
        except _Fenced:
            return None  # rolled back: the job has another owner now
        return moved

    async def commit_and_add(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        new: tuple[JobState, Sequence[AuditEntry]],
        *,
        hold_new: bool,
        now: float,
    ) -> tuple[Lease, Lease] | None:
        """Write a job's step and insert the job it starts, at once (see ``JobStore``)."""
        return await self._call(
            self._commit_and_add_sync, job, entries, lease, new, hold_new, now
        )

    def _commit_and_add_sync(  # noqa: PLR0917 - the arguments of commit_and_add
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        new: tuple[JobState, Sequence[AuditEntry]],
        hold_new: bool,  # noqa: FBT001 - positional through _call
        now: float,
    ) -> tuple[Lease, Lease] | None:
        try:
            moved, added = self._write_step(
                job, entries, lease, hold=False, now=now, new=new, hold_new=hold_new
            )
        except _Fenced:
            return None
        assert added is not None  # noqa: S101 - a new job was given
        return moved, added

    def _write_step(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        *,
        hold: bool,
        now: float,
        new: tuple[JobState, Sequence[AuditEntry]] | None = None,
        hold_new: bool = False,
    ) -> tuple[Lease, Lease | None]:
        db = self._conn()
        added: Lease | None = None
        with self._transaction(db):
            rows, moved = self._audit.chain(entries, lease)
            if new is not None:
                # The next job of a chain: in the same transaction, so that a
                # crash can neither lose it nor, the step being fenced, add it twice.
                owner = self.owner if hold_new else None
                [added], first, values = self._audit.first(
                    [new], owner=owner, now=now, after=rows
                )
                rows.extend(first)
                self._insert_jobs(db, values)
            changed = db.execute(
                "UPDATE jobs SET job_id = ?, phase = ?, done = ?, due = ?, owner = ?, "
                "audit_seq = ?, audit_head = ?, snapshot = ?, updated = ? "
                "WHERE key = ? AND token = ?",
                (
                    job.job_id,
                    job.phase.value,
                    int(job.done),
                    job.due,
                    self.owner if hold else None,
                    moved.jseq,
                    moved.jhead,
                    snapshot_json(job),
                    now,
                    lease.key,
                    lease.token,
                ),
            ).rowcount
            if not changed:
                raise _Fenced
            self._insert(db, rows)
        self._audit.advance(rows)
        return moved, added

    def _insert(self, db: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
        db.executemany(
            "INSERT INTO audit (writer, wseq, job, jseq, record, hash) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    r["writer"],
                    r["wseq"],
                    r["job"],
                    r["jseq"],
                    compact_json(r),
                    r["hash"],
                )
                for r in rows
            ],
        )


class _Fenced(Exception):  # noqa: N818 - a control-flow signal, never raised to a caller
    """The job was claimed by another driver: roll the commit back."""
