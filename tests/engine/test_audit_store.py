"""verify_log on a job store: two writers' chains, job chains and heads, legality per job."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.audit import VerifyReport, read_records, verify_log
from engine.audit._records import record_hash
from engine.audit._store import open_store_audit
from engine.stores import SqliteJobStore
from statemachines import Spec
from tests.engine.audit_store_build import (
    WRITER_A,
    WRITER_B,
    build_two_writers,
    entry,
    state,
    toy_spec,
)


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    """The toy spec, in a file beside the store."""
    return toy_spec(tmp_path)


@pytest.fixture
def store(tmp_path: Path, spec: Spec) -> Path:
    """Three jobs written by two writers taking turns (see build_two_writers)."""
    path = tmp_path / "jobs.db"
    asyncio.run(build_two_writers(path, spec))
    return path


def _sql(path: Path, *statements: str, params: tuple[Any, ...] = ()) -> None:
    db = sqlite3.connect(path)
    try:
        with db:
            for statement in statements:
                db.execute(statement, params if "?" in statement else ())
    finally:
        db.close()


def _record(path: Path, row: int) -> dict[str, Any]:
    db = sqlite3.connect(path)
    try:
        (text,) = db.execute("SELECT record FROM audit WHERE id = ?", (row,)).fetchone()
    finally:
        db.close()
    record: dict[str, Any] = json.loads(text)
    return record


def _rewrite(path: Path, row: int, record: dict[str, Any]) -> None:
    _sql(
        path,
        "UPDATE audit SET record = ? WHERE id = ?",
        params=(json.dumps(record), row),
    )


BROKEN = "(a record before it was removed, reordered or edited)"


def _found(report: VerifyReport) -> list[tuple[int, str]]:
    return [(p.line, p.kind) for p in report]


# -- intact ---------------------------------------------------------------------------


def test_two_writers_interleaved_on_one_store_verify_intact_and_checked(
    store: Path,
) -> None:
    """Every row is read once; both writers' chains and the three job chains hold."""
    report = verify_log(store)

    assert (report.problems, report.intact, report.checked) == ((), True, True)
    assert report.records == 13


def test_a_store_url_verifies_like_its_path(store: Path) -> None:
    """sqlite:////absolute/path names the same store as the path."""
    assert verify_log(f"sqlite:///{store}") == verify_log(store)


def test_a_store_with_a_job_and_no_record_yet_is_intact(
    tmp_path: Path, spec: Spec
) -> None:
    """A job added without records has an empty chain, and its row says so."""
    path = tmp_path / "jobs.db"

    async def main() -> None:
        store = SqliteJobStore(path)
        await store.open(WRITER_A, lease=30.0, now=0.0)
        try:
            await store.add(state(spec, "k1", "j1"), (), hold=False, now=0.0)
        finally:
            await store.close()

    asyncio.run(main())

    assert verify_log(path) == VerifyReport((), 0)


def test_every_pass_reads_one_snapshot_while_a_writer_commits(
    tmp_path: Path, store: Path, spec: Spec
) -> None:
    """A step committed between two passes is seen by neither: heads and chains agree."""

    async def commit_one_more() -> None:
        writer = SqliteJobStore(store)
        await writer.open("writer-c", lease=30.0, now=0.0)
        try:
            await writer.add(
                state(spec, "k4", "j4"),
                [entry(spec, "submitted", "j4", dst="Queued")],
                hold=False,
                now=3.0,
            )
        finally:
            await writer.close()

    with open_store_audit(store, str(store)) as audit:
        by_writer = list(audit.by_writer())
        asyncio.run(commit_one_more())
        by_job = list(audit.by_job())

    assert len(by_writer) == 13
    assert {row.job for row, _ in by_job} == {"k1", "k2", "k3"}
    assert len(list(read_records(store))) == 14


# -- tampered -------------------------------------------------------------------------


def test_an_edited_record_is_tampered_and_named_by_job_and_writer(store: Path) -> None:
    """A record whose content changed no longer hashes: one problem, at its row."""
    record = _record(store, 8)
    record["http_status"] = 500
    _rewrite(store, 8, record)

    report = verify_log(store)

    assert _found(report) == [(8, "tampered")]
    assert report[0].message == (
        f"job k1 (jseq 4), writer {WRITER_B} (wseq 5): "
        "hash does not match the record's content (edited)"
    )


def test_a_rehashed_edit_breaks_the_next_links_of_both_chains(store: Path) -> None:
    """Edit and rehash a record: the next ones of its writer and its job link to the old hash."""
    record = _record(store, 8)
    record["http_status"] = 500
    record["hash"] = record_hash(record)
    _rewrite(store, 8, record)
    _sql(store, "UPDATE audit SET hash = ? WHERE id = 8", params=(record["hash"],))

    report = verify_log(store)

    assert _found(report) == [(9, "tampered"), (9, "tampered")]
    assert {p.message.split(": ", 1)[1] for p in report} == {
        f"wprev link of writer {WRITER_B}'s chain broken {BROKEN}",
        f"jprev link of job k1's chain broken {BROKEN}",
    }


def test_a_middle_record_of_a_job_removed_breaks_its_job_and_writer_chains(
    store: Path,
) -> None:
    """Row 8 gone: job k1 and writer b each miss a position and a link at row 9."""
    _sql(store, "DELETE FROM audit WHERE id = 8")

    report = verify_log(store)

    messages = [p.message for p in report]
    assert {p.kind for p in report} == {"tampered"}
    assert {p.line for p in report} == {9}
    assert any("jseq 5 where 4 was expected in job k1's chain" in m for m in messages)
    assert any(
        f"wseq 6 where 5 was expected in writer {WRITER_B}'s chain" in m
        for m in messages
    )
    assert any("jprev link of job k1's chain broken" in m for m in messages)
    assert any(f"wprev link of writer {WRITER_B}'s chain broken" in m for m in messages)


def test_a_jobs_last_record_removed_is_caught_by_its_rows_head(store: Path) -> None:
    """Row 13 ends both its job's and its writer's chain: only the job's row tells."""
    head = _record(store, 13)["hash"]
    _sql(store, "DELETE FROM audit WHERE id = 13")

    report = verify_log(store)

    assert _found(report) == [(12, "tampered")]
    assert report[0].message == (
        f"job k3: its row says 2 records ending in {head}, its chain has 1 ending in "
        f"{_record(store, 12)['hash']} (its last records were removed, or the row was edited)"
    )


def test_a_writers_record_of_no_job_removed_breaks_the_writers_chain(
    store: Path,
) -> None:
    """Writer b's spec record (row 3) is in no job's chain; writer b's chain misses it."""
    _sql(store, "DELETE FROM audit WHERE id = 3")

    report = verify_log(store)

    assert _found(report) == [(4, "tampered"), (4, "tampered")]
    assert all(
        p.message.startswith(f"job k2 (jseq 1), writer {WRITER_B} (wseq 2): ")
        for p in report
    )
    assert "wseq 2 where 1 was expected" in report[0].message + report[1].message


def test_reordered_rows_are_tampered_in_both_chains(store: Path) -> None:
    """Rows 8 and 9 swapped: each chain finds its later record committed first."""
    _sql(
        store,
        "UPDATE audit SET id = -8 WHERE id = 8",
        "UPDATE audit SET id = 8 WHERE id = 9",
        "UPDATE audit SET id = 9 WHERE id = -8",
    )

    report = verify_log(store)

    assert _found(report) == [(8, "tampered"), (8, "tampered")]
    assert {p.message.split(": ", 1)[1] for p in report} == {
        f"committed before the record ahead of it in writer {WRITER_B}'s chain (rows reordered)",
        "committed before the record ahead of it in job k1's chain (rows reordered)",
    }


def test_a_changed_head_in_a_jobs_row_is_tampered(store: Path) -> None:
    """The head the job's row keeps must be its chain's last hash."""
    _sql(
        store,
        "UPDATE jobs SET audit_head = 'sha256:' || printf('%064d', 0) WHERE key = 'k2'",
    )

    report = verify_log(store)

    assert _found(report) == [(11, "tampered")]
    assert report[0].message.startswith(
        "job k2: its row says 4 records ending in sha256:000"
    )


def test_duplicated_positions_are_named_in_both_chains(store: Path) -> None:
    """A copy of row 8 (the unique constraints dropped) repeats a wseq and a jseq."""
    _sql(
        store,
        "CREATE TABLE copy (id INTEGER PRIMARY KEY, writer, wseq, job, jseq, record, hash)",
        "INSERT INTO copy SELECT * FROM audit",
        "INSERT INTO copy SELECT 100, writer, wseq, job, jseq, record, hash FROM audit "
        "WHERE id = 8",
        "DROP TABLE audit",
        "ALTER TABLE copy RENAME TO audit",
    )

    report = verify_log(store)

    assert _found(report) == [(100, "tampered"), (100, "tampered")]
    assert {p.message.split(": ", 1)[1] for p in report} == {
        f"wseq 5 twice in writer {WRITER_B}'s chain (a record was duplicated)",
        "jseq 4 twice in job k1's chain (a record was duplicated)",
    }


def test_a_column_that_disagrees_with_its_record_is_tampered(store: Path) -> None:
    """Moving a row to another job by its column alone is caught by the record it holds."""
    _sql(store, "UPDATE audit SET job = 'k9' WHERE id = 13")

    report = verify_log(store)

    assert (13, "tampered") in _found(report)
    assert any(
        "column job differs from the record's (edited)" in p.message for p in report
    )
    assert any(p.message.startswith("job k3: its row says 2 records") for p in report)


def test_a_row_that_is_not_json_is_tampered(store: Path) -> None:
    """Garbage in place of a record is reported at its row, and the chains go on."""
    _sql(store, "UPDATE audit SET record = 'garbage' WHERE id = 6")

    report = verify_log(store)

    assert _found(report) == [(6, "tampered")]
    assert report[0].message == (
        f"job k2 (jseq 2), writer {WRITER_B} (wseq 3): not a JSON record (edited)"
    )


def test_a_row_whose_record_is_not_text_is_tampered_and_not_read(store: Path) -> None:
    """A number in place of a record: verify reports it, read_records skips it."""
    _sql(store, "UPDATE audit SET record = 42 WHERE id = 13")

    report = verify_log(store)

    assert (13, "tampered") in _found(report)
    assert "not a JSON record" in report[0].message
    assert len(list(read_records(store))) == 12


def test_a_finished_jobs_purged_row_is_not_tampering(store: Path) -> None:
    """The store deletes finished jobs' rows after a week; their chains end in completed."""
    _sql(store, "DELETE FROM jobs WHERE key = 'k1'")

    assert verify_log(store) == []


def test_a_live_jobs_deleted_row_is_tampered(store: Path) -> None:
    """Job k3 is still running: its row may not be missing."""
    _sql(store, "DELETE FROM jobs WHERE key = 'k3'")

    report = verify_log(store)

    assert _found(report) == [(13, "tampered")]
    assert report[0].message.startswith(
        "job k3: 2 records but no row in the jobs table"
    )


def test_a_jobs_row_whose_records_all_went_is_tampered(store: Path) -> None:
    """Job k3's records end writer a's chain; its row still says they were there."""
    _sql(store, "DELETE FROM audit WHERE job = 'k3'")

    report = verify_log(store)

    assert _found(report) == [(0, "tampered")]
    assert report[0].message.startswith("job k3: its row says 2 records")
    assert report[0].message.endswith("and the audit table has none (removed)")


# -- illegal and unchecked -------------------------------------------------------------


def test_an_illegal_move_written_into_the_store_is_illegal(
    tmp_path: Path, spec: Spec
) -> None:
    """Queued -> Done is not declared: illegal, named by job and writer, chains intact."""
    path = tmp_path / "jobs.db"

    async def main() -> None:
        store = SqliteJobStore(path)
        await store.open(WRITER_A, lease=30.0, now=0.0)
        try:
            await store.add(
                state(spec, "k1", "j1"),
                [
                    entry(spec, "submitted", "j1", dst="Queued"),
                    entry(spec, "transition", "j1", "Queued", "Done"),
                ],
                hold=False,
                now=0.0,
            )
        finally:
            await store.close()

    asyncio.run(main())

    report = verify_log(path)

    assert _found(report) == [(2, "illegal")]
    assert report[0].message == (
        f"job k1 (jseq 2), writer {WRITER_A} (wseq 2): "
        "illegal transition Queued -> Done in lifecycle job"
    )


def test_a_move_that_does_not_continue_its_job_is_illegal_per_job(
    tmp_path: Path, spec: Spec
) -> None:
    """Each job's moves are checked in its chain's order, whoever wrote them."""
    path = tmp_path / "jobs.db"
    asyncio.run(build_two_writers(path, spec))
    record = _record(path, 10)  # k2: Running -> Done, written as Queued -> Done
    record["from"] = "Queued"
    record["hash"] = record_hash(record)
    _rewrite(path, 10, record)
    _sql(path, "UPDATE audit SET hash = ? WHERE id = 10", params=(record["hash"],))

    report = verify_log(path)

    illegal = [p for p in report if p.kind == "illegal"]
    assert [(p.line, p.message.split(": ", 1)[1]) for p in illegal] == [
        (10, "illegal transition Queued -> Done in lifecycle job"),
        (10, "transition from Queued but the job was in Running"),
    ]


def test_without_spec_records_a_missing_spec_is_unchecked_only(
    tmp_path: Path, spec: Spec
) -> None:
    """No spec record and no spec file: the chains are intact, the moves unchecked."""
    path = tmp_path / "jobs.db"
    asyncio.run(build_two_writers(path, spec, spec_records=False))
    Path(spec.source).unlink()

    report = verify_log(path)

    assert (report.intact, report.checked) == (True, False)
    assert [p.message for p in report] == [
        (
            f"no spec with hash {spec.content_hash} (recorded as {spec.source!r}, "
            "not found or changed); pass it with --spec (5 moves not checked)"
        )
    ]


@pytest.mark.parametrize("found_by", ["its file", "specs="])
def test_without_spec_records_the_spec_is_found_otherwise(
    tmp_path: Path, spec: Spec, found_by: str
) -> None:
    """The spec's own file, or one passed in, checks every move of a store that records none."""
    path = tmp_path / "jobs.db"
    asyncio.run(build_two_writers(path, spec, spec_records=False))
    if found_by == "specs=":
        Path(spec.source).unlink()

    report = verify_log(path, specs=[spec] if found_by == "specs=" else ())

    assert (report.problems, report.checked) == ((), True)


def test_the_stores_spec_records_check_moves_when_the_file_is_gone(
    store: Path, spec: Spec
) -> None:
    """The spec recorded in the store itself serves when its file was removed."""
    Path(spec.source).unlink()

    assert verify_log(store) == []


@pytest.mark.parametrize("file_kept", [True, False])
def test_removed_spec_records_are_tampering_and_unchecked_only_without_the_spec(
    store: Path, spec: Spec, file_kept: bool
) -> None:
    """Deleted spec rows break writer chains; moves go unchecked only if the spec is gone too."""
    _sql(store, "DELETE FROM audit WHERE job IS NULL")
    if not file_kept:
        Path(spec.source).unlink()

    report = verify_log(store)

    assert {p.line for p in report if p.kind == "tampered"} == {2, 4}
    assert [p.kind for p in report if p.kind != "tampered"] == (
        [] if file_kept else ["unchecked"]
    )


def test_a_tampered_spec_record_is_reported_at_its_row(store: Path) -> None:
    """A spec document that no longer hashes to its spec_hash is tampered, named by writer."""
    record = _record(store, 3)
    record["detail"]["document"]["service"]["name"] = "forged"
    record["hash"] = record_hash(record)
    _rewrite(store, 3, record)
    _sql(store, "UPDATE audit SET hash = ? WHERE id = 3", params=(record["hash"],))

    report = verify_log(store)

    assert (3, "tampered") in _found(report)
    assert any(
        p.line == 3
        and p.message.startswith(
            f"writer {WRITER_B} (wseq 1): recorded spec does not hash"
        )
        for p in report
    )
