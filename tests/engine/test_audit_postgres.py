"""The audit table of a PostgreSQL job store: verify, show, stats and read, as a SQLite store's."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import psycopg
import pytest

from engine.audit import (
    AuditFormatError,
    log_stats,
    read_records,
    show_log,
    verify_log,
)
from engine.cli import main
from statemachines import Spec
from tests.engine.audit_store_build import WRITER_B, build_two_writers, toy_spec


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    """The toy spec, in a file."""
    return toy_spec(tmp_path)


@pytest.fixture
def store(postgres_db: str, spec: Spec) -> str:
    """Three jobs written by two writers taking turns, in a fresh PostgreSQL database."""
    asyncio.run(build_two_writers(postgres_db, spec))
    return postgres_db


def test_two_writers_on_a_postgresql_store_verify_intact(
    store: str, spec: Spec
) -> None:
    """The same 13 rows as the SQLite store's: both writers' and the three jobs' chains hold."""
    report = verify_log(store, specs=[spec])

    assert (report.problems, report.intact, report.checked) == ((), True, True)
    assert report.records == 13
    assert [r["kind"] for r in read_records(store)].count("completed") == 2


def test_an_edited_row_of_a_postgresql_store_is_tampered(
    store: str, spec: Spec
) -> None:
    """An UPDATE of one record is found, named by its job and writer."""
    with psycopg.connect(store) as db:
        (text,) = db.execute(
            "SELECT record FROM statepoll.audit WHERE id = 8"
        ).fetchone()  # type: ignore[misc]
        record = json.loads(text)
        record["http_status"] = 500
        db.execute(
            "UPDATE statepoll.audit SET record = %s WHERE id = 8", (json.dumps(record),)
        )

    report = verify_log(store, specs=[spec])

    assert [(p.line, p.kind) for p in report] == [(8, "tampered")]
    # Each connection of a PostgreSQL store writes its own segment of the
    # owner's chain: the writer is the owner and a connection number.
    assert re.fullmatch(
        rf"job k1 \(jseq 4\), writer {WRITER_B}/\d+ \(wseq \d+\): "
        r"hash does not match the record's content \(edited\)",
        report[0].message,
    )


def test_show_and_stats_read_a_postgresql_store(store: str) -> None:
    """Timelines follow each job's chain; stats count the jobs and their outcomes."""
    lines = show_log(store, job="k1")
    (stats,) = log_stats(store)

    assert any("Running -> Done" in line for line in lines)
    assert stats.jobs == 3
    assert dict(stats.outcomes) == {"success": 2}


def test_the_cli_verifies_a_postgresql_store(store: str, spec: Spec) -> None:
    """`statepoll audit verify postgresql://…` exits 0 and says intact."""
    code = main(["audit", "verify", store, "--spec", spec.source])

    assert code == 0


def test_a_database_without_a_store_is_refused(postgres_db: str) -> None:
    """A database no store was ever opened in: said so, not read as an empty log."""
    with pytest.raises(AuditFormatError, match="is not a job store"):
        verify_log(postgres_db)
