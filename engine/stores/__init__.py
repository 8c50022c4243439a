"""Job stores: where jobs live between steps, owned by one driver at a time.

:class:`SqliteJobStore` is the embedded default (one machine, several
processes); :class:`PostgresJobStore` is for several machines. Both keep the
audit log in the same transaction as the state it explains. A store is named
by a URL: a plain path or ``sqlite:///relative/path`` /
``sqlite:////absolute/path`` (as SQLAlchemy writes them) for SQLite, and
``postgresql://user@host:port/dbname`` for PostgreSQL.
"""

from __future__ import annotations

import os

from engine._core.state import JobState
from engine.stores._base import JobStore, Lease, StoreError, new_owner, shown_url
from engine.stores._sqlite import SqliteJobStore, sqlite_unfinished

__all__ = [
    "JobStore",
    "Lease",
    "PostgresJobStore",
    "SqliteJobStore",
    "StoreError",
    "new_owner",
    "open_store",
    "shown_url",
    "store_path",
    "unfinished_jobs",
]


def __getattr__(name: str) -> object:
    # Loaded on first use: psycopg is an optional extra.
    if name == "PostgresJobStore":
        from engine.stores._postgres import PostgresJobStore  # noqa: PLC0415

        return PostgresJobStore
    msg = f"module 'engine.stores' has no attribute {name!r}"
    raise AttributeError(msg)


def store_path(url: str | os.PathLike[str]) -> str | None:
    """Return the SQLite file a store URL names, or ``None`` for another kind of store."""
    text = os.fspath(url)
    if text.startswith(("postgresql://", "postgres://")):
        return None
    if text.startswith("sqlite:///"):
        return text.removeprefix("sqlite:///")
    if "://" in text:
        scheme = text.split("://", 1)[0]
        msg = (
            f"unsupported store URL scheme {scheme!r}: use a path, sqlite:///path "
            "or postgresql://user@host:port/dbname"
        )
        raise StoreError(msg)
    return text


def open_store(url: str | os.PathLike[str]) -> JobStore:
    """Return the store a URL or path names (connected by ``open()``).

    Raises:
        StoreError: for an unsupported URL.
    """
    path = store_path(url)
    if path is not None:
        return SqliteJobStore(path)
    from engine.stores._postgres import PostgresJobStore  # noqa: PLC0415 - psycopg is an extra

    return PostgresJobStore(os.fspath(url))


def unfinished_jobs(url: str | os.PathLike[str]) -> list[JobState]:
    """Return the unfinished jobs of a store, read only (no owner, no lease, no schema change).

    For a command line's "what is left where": a store that does not exist
    yet holds none.

    Raises:
        StoreError: ``url`` names something that is not a job store.
    """
    path = store_path(url)
    if path is not None:
        return sqlite_unfinished(path)
    from engine.stores._postgres import postgres_unfinished  # noqa: PLC0415 - psycopg is an extra

    return postgres_unfinished(os.fspath(url))
