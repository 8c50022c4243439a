"""Fixtures shared by every test package."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator

import pytest

from tests.postgres import (
    PostgresCluster,
    PostgresUnavailableError,
    database_name,
    report_unavailable,
    running_cluster,
)


@pytest.fixture
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only (the engine's loop)."""
    return "asyncio"


# -- a throwaway PostgreSQL: tests/postgres.py has the machinery --------------------------

# The fixtures that start the cluster; a test using one is marked `postgres`.
_POSTGRES_FIXTURES = frozenset(
    {"postgres_cluster", "postgres_url", "postgres_db", "make_postgres_db"}
)
# Database names stay unique across the session even when two tests share a name.
_database_numbers = itertools.count(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a PostgreSQL fixture `postgres`, so `-m` selects it."""
    for item in items:
        if _POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def _postgres_marker_needs_cluster(request: pytest.FixtureRequest) -> None:
    """Give a test marked `postgres` the cluster, so it skips or fails like its users."""
    if request.node.get_closest_marker("postgres") is not None:
        request.getfixturevalue("postgres_cluster")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """Start one throwaway PostgreSQL cluster for the session; stop and remove it at the end.

    Skips the requesting tests with the reason when PostgreSQL cannot start, or
    fails them when the environment variable CI is set.
    """
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(running_cluster())
        except PostgresUnavailableError as exc:
            unavailable = exc
        else:
            yield cluster
            return
    # Outside the except block, so the report is not chained to the reason it repeats.
    report_unavailable(unavailable, os.environ)


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """Return the URL of a database ``statepoll`` shared by the whole session."""
    return postgres_cluster.create_database("statepoll")


@pytest.fixture
def make_postgres_db(
    postgres_cluster: PostgresCluster, request: pytest.FixtureRequest
) -> Iterator[Callable[[], str]]:
    """Return a factory of fresh, empty databases (their URLs); drop them after the test."""
    created: list[str] = []

    def make() -> str:
        name = database_name(request.node.name, next(_database_numbers))
        url = postgres_cluster.create_database(name)
        created.append(name)
        return url

    yield make
    for name in created:
        postgres_cluster.drop_database(name)


@pytest.fixture
def postgres_db(make_postgres_db: Callable[[], str]) -> str:
    """Return the URL of a fresh, empty database of this test's own; dropped after it."""
    return make_postgres_db()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Return the URL of a fresh, empty job store: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'jobs.db'}"
    url: str = request.getfixturevalue("postgres_db")
    return url
