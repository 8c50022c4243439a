"""The SQLite store's database: its schema and migrations, WAL mode, and its one thread.

:class:`_SqliteDb` is the base of ``SqliteJobStore``: every call runs on the
store's one thread (sqlite3 blocks, and the engine's event loop must not),
inside ``BEGIN IMMEDIATE`` transactions, with sqlite3's errors turned into
the store's own :class:`StoreError`. Opening migrates an older schema (the
first format's snapshots are carried over) and refuses a newer one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

from engine._core.state import JobState, Phase
from engine.audit import GENESIS
from engine.stores._base import StoreError, snapshot_json

T = TypeVar("T")

#: The schema this code writes; older ones are migrated when opened.
SCHEMA_VERSION: Final = 2
#: How long opening a store waits for another process to let go of the file.
_WAL_WAIT: Final = 30.0

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


class _SqliteDb:
    """One SQLite file on one thread: calls, transactions, schema migrations."""

    path: Path
    _db: sqlite3.Connection | None
    _thread: concurrent.futures.ThreadPoolExecutor

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(fn, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, call)
        except sqlite3.Error as exc:
            # The store's own error, which drivers handle (a worker logs it and
            # tries again), never sqlite3's: "database is locked" is not a crash.
            msg = f"job store {self.path}: {exc}"
            raise StoreError(msg) from exc

    # -- schema ------------------------------------------------------------------------

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
