"""Making job stores for tests that need one on disk, through the store's own API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Sequence
from typing import Any

from engine._core.state import JobState
from engine.stores import open_store
from engine.stores._postgres import read_postgres_records
from engine.stores._sqlite import read_sqlite_records


def make_store(url: str | os.PathLike[str], *, jobs: Sequence[JobState] = ()) -> None:
    """Create (or open) the store at ``url`` and add ``jobs`` to it, free for any driver."""

    async def create() -> None:
        store = open_store(url)
        try:
            await store.open("tests:0:maker", lease=30.0, now=0.0)
            if jobs:
                await store.add_many([(job, ()) for job in jobs], hold=False, now=0.0)
            await store.release()
        finally:
            await store.close()

    asyncio.run(create())


def all_jobs(url: str) -> list[JobState]:
    """Every job of the store at ``url`` (finished ones too), read with plain SQL."""
    if url.startswith("postgresql://"):
        import psycopg  # only the PostgreSQL tests need it

        with psycopg.connect(url) as db:
            rows = db.execute("SELECT snapshot FROM statepoll.jobs").fetchall()
    else:
        path = url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as db:
            rows = db.execute("SELECT snapshot FROM jobs").fetchall()
    return [JobState.from_json(json.loads(snapshot)) for (snapshot,) in rows]


def store_records(url: str) -> list[dict[str, Any]]:
    """The store's own audit records, in commit order."""
    if url.startswith("postgresql://"):
        return [dict(r) for r in read_postgres_records(url)]
    return [dict(r) for r in read_sqlite_records(url.removeprefix("sqlite:///"))]
