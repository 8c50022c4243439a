"""The embedded store: one SQLite file shared by the processes of one machine.

WAL mode, short transactions (``BEGIN IMMEDIATE`` takes the write lock at
once, so two processes never deadlock upgrading a read), and every call on
one thread of its own: sqlite3 blocks, and the engine's event loop must not.
Another process's commits are noticed through ``PRAGMA data_version``, which
changes when any other connection commits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from engine._core.state import JobState, Phase
from engine.audit import GENESIS, AuditEntry
from engine.stores._base import (
    AuditChain,
    Lease,
    StoreError,
    compact_json,
    owner_gone,
    snapshot_json,
)

__all__ = [
    "SCHEMA_VERSION",
    "SqliteJobStore",
    "read_sqlite_records",
    "sqlite_unfinished",
]

logger = logging.getLogger("statepoll.store")

T = TypeVar("T")

#: The schema this code writes; older ones are migrated when opened.
SCHEMA_VERSION: Final = 2
#: Finished jobs stay readable (wait, state_of, audit heads) this long.
KEEP_DONE: Final = 7 * 24 * 3600.0
#: How often another process's commits are looked for while waiting.
_WATCH: Final = 0.05
#: How long opening a store waits for another process to let go of the file.
_WAL_WAIT: Final = 30.0
#: A job whose snapshot cannot be read is left alone this long.
_SHELVE: Final = 3600.0

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS jobs (
        key TEXT PRIMARY KEY,
        service TEXT NOT NULL,
        lifecycle TEXT NOT NULL,
        job_id TEXT NOT NULL,
        phase TEXT NOT NULL,
        done INTEGER NOT NULL DEFAULT 0,
        due REAL NOT NULL,
        owner TEXT,
        token INTEGER NOT NULL DEFAULT 0,
        audit_seq INTEGER NOT NULL DEFAULT 0,
        audit_head TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        updated REAL NOT NULL,
        shelved REAL NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_due ON jobs (due) WHERE done = 0",
    "CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner) WHERE owner IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (updated) WHERE done = 1",
    """CREATE TABLE IF NOT EXISTS owners (
        owner TEXT PRIMARY KEY,
        lease_until REAL NOT NULL,
        started REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        writer TEXT NOT NULL,
        wseq INTEGER NOT NULL,
        job TEXT,
        jseq INTEGER,
        record TEXT NOT NULL,
        hash TEXT NOT NULL,
        UNIQUE (writer, wseq),
        UNIQUE (job, jseq)
    )""",
)

#: Free: no owner, or an owner whose heartbeat has lapsed.
_FREE: Final = (
    "(j.owner IS NULL OR NOT EXISTS "
    "(SELECT 1 FROM owners o WHERE o.owner = j.owner AND o.lease_until >= :now))"
)


class SqliteJobStore:
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

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(fn, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, call)
        except sqlite3.Error as exc:
            # The store's own error, which drivers handle (a worker logs it and
            # tries again), never sqlite3's: "database is locked" is not a crash.
            msg = f"job store {self.path}: {exc}"
            raise StoreError(msg) from exc

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

    def _migrate(self, db: sqlite3.Connection) -> None:
        tables = {
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if tables and "jobs" not in tables and "meta" not in tables:
            # Creating the store's tables there would quietly turn, say, an
            # audit log into a store; an empty or new file is a store to be.
            what = (
                "an audit log"
                if "audit" in tables
                else "a database without a jobs table"
            )
            msg = f"{self.path} is not a job store ({what})"
            raise StoreError(msg)
        legacy = "jobs" in tables and "meta" not in tables
        if legacy:
            db.execute("ALTER TABLE jobs RENAME TO jobs_v1")
        for statement in _SCHEMA:
            db.execute(statement)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        version = int(row[0]) if row else (1 if legacy else SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            msg = (
                f"{self.path} was written by a newer statepoll (schema {version}, "
                f"this one knows {SCHEMA_VERSION}); upgrade statepoll to use it"
            )
            raise StoreError(msg)
        if legacy:
            _migrate_v1(db)
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )

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
                try:
                    job = JobState.from_json(json.loads(snapshot))
                except ValueError as exc:
                    # Not a snapshot this code can read (written by a newer
                    # statepoll, or damaged): reported, and left alone for an
                    # hour rather than handed from driver to driver.
                    logger.error("job %s in %s cannot be read: %s", key, self.path, exc)  # noqa: TRY400 - reported, not raised
                    db.execute(
                        "UPDATE jobs SET owner = NULL, shelved = ? WHERE key = ?",
                        (now + _SHELVE, key),
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

    # -- helpers -------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            msg = f"the job store {self.path} is not open"
            raise StoreError(msg)
        return self._db

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock at once: two processes never
        # both read, then deadlock upgrading to write.
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class _Fenced(Exception):  # noqa: N818 - a control-flow signal, never raised to a caller
    """The job was claimed by another driver: roll the commit back."""


def _use_wal(db: sqlite3.Connection) -> None:
    """Put the file in WAL mode, waiting while another process holds it.

    Changing the journal mode does not wait on the busy timeout: it fails at
    once while, say, the last connection of another process checkpoints on
    close. A file already in WAL mode (every store but a new one) needs no
    change at all.
    """
    ends = time.monotonic() + _WAL_WAIT
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if time.monotonic() >= ends:
                raise
            time.sleep(0.05)
        else:
            return


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(16) == b"SQLite format 3\x00"


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Carry the first store format's snapshots (a 15-key dict per job) over."""
    for key, text in db.execute("SELECT key, snapshot FROM jobs_v1").fetchall():
        old = json.loads(text)
        job = JobState(
            key=key,
            service=old["service"],
            lifecycle=old["lifecycle"],
            spec_hash=old["spec_hash"],
            spec_source=old.get("spec_source", ""),
            job_id=old["job_id"],
            state=old["state"],
            phase=Phase.POLL,
            due=float(old.get("due_wall") or 0.0),
            deadline=old.get("deadline_wall"),
            polls=int(old.get("attempts", 0)),
            polls_in_state=int(old.get("state_attempts", 0)),
            links=old.get("links"),
            items=old.get("items") or None,
            inputs=old.get("inputs") or {},
            filters=old.get("item_filters"),
            base_url=old.get("base_url", ""),
        )
        db.execute(
            "INSERT INTO jobs (key, service, lifecycle, job_id, phase, done, due, "
            "owner, token, audit_seq, audit_head, snapshot, updated) "
            "VALUES (?, ?, ?, ?, 'poll', 0, ?, NULL, 0, 0, ?, ?, ?)",
            (
                key,
                job.service,
                job.lifecycle,
                job.job_id,
                job.due,
                GENESIS,
                snapshot_json(job),
                time.time(),
            ),
        )
    db.execute("DROP TABLE jobs_v1")


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
