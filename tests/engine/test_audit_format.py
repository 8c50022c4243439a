"""What is not an audit log is refused with one clear AuditFormatError, by readers and sinks."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.audit import (
    AuditEntry,
    AuditFormatError,
    AuditWriteError,
    JsonlAuditLog,
    SqliteAuditLog,
    VerifyReport,
    log_stats,
    open_audit,
    read_records,
    show_log,
    verify_log,
)
from engine.stores import open_store
from statemachines import SpecError, StatepollError, load_spec

OCDZ = load_spec("oneclickdz")

READERS: dict[str, Callable[[str | Path], Any]] = {
    "verify": verify_log,
    "read": lambda path: list(read_records(path)),
    "show": show_log,
    "stats": log_stats,
}


def _entry() -> AuditEntry:
    return AuditEntry(
        kind="submitted",
        service="oneclickdz",
        lifecycle="mobile_topup",
        job_id="j1",
        spec_hash=OCDZ.content_hash,
        spec_source=OCDZ.source,
        to_state="PENDING",
        trigger="submit",
    )


def _job_store(path: Path) -> Path:
    async def create() -> None:
        store = open_store(path)
        await store.open("test", lease=30.0, now=0.0)
        await store.close()

    asyncio.run(create())
    return path


@pytest.mark.parametrize("reader", READERS)
def test_a_job_store_is_read_by_every_reader(tmp_path: Path, reader: str) -> None:
    """verify, read, show and stats read a job store's own audit table (empty here)."""
    path = _job_store(tmp_path / "jobs.db")

    assert READERS[reader](path) in ([], VerifyReport((), 0))


@pytest.mark.parametrize("reader", READERS)
def test_a_sqlite_store_url_is_read_like_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """sqlite:///relative and sqlite:////absolute name the store file, as SQLAlchemy writes them."""
    path = _job_store(tmp_path / "jobs.db")
    monkeypatch.chdir(tmp_path)

    for url in ("sqlite:///jobs.db", f"sqlite:///{path}"):
        assert READERS[reader](url) in ([], VerifyReport((), 0))


@pytest.mark.parametrize("reader", READERS)
def test_a_postgresql_store_that_cannot_be_reached_is_named_without_its_password(
    reader: str,
) -> None:
    """A postgresql:// URL where nothing listens: one AuditFormatError, no password in it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there

    with pytest.raises(AuditFormatError) as info:
        READERS[reader](f"postgresql://me:s3cret@127.0.0.1:{port}/jobs")

    assert "s3cret" not in str(info.value)
    assert str(info.value).startswith(
        f"postgresql://me@127.0.0.1:{port}/jobs: cannot open the job store: "
    )


@pytest.mark.parametrize("reader", READERS)
def test_a_url_of_another_scheme_is_refused(reader: str) -> None:
    """An http:// URL is neither a log nor a store."""
    with pytest.raises(AuditFormatError, match="unsupported store URL scheme 'http'"):
        READERS[reader]("http://example.test/audit.jsonl")


def test_a_job_store_without_an_audit_table_is_refused(tmp_path: Path) -> None:
    """A store of the first schema kept its audit elsewhere: said so, not read as empty."""
    path = tmp_path / "jobs.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE jobs (key TEXT PRIMARY KEY, snapshot TEXT)")
    db.commit()
    db.close()

    with pytest.raises(AuditFormatError) as info:
        verify_log(path)

    assert str(info.value) == (
        f"{path} is a job store without an audit table (written by an older "
        "statepoll: its audit log is the file given with --audit)"
    )


def test_an_audit_table_of_unknown_columns_is_refused(tmp_path: Path) -> None:
    """An audit table that is neither a log's nor a store's is not guessed at."""
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE audit (what TEXT)")
    db.commit()
    db.close()

    with pytest.raises(AuditFormatError, match="its audit table has unknown columns"):
        verify_log(path)


def test_a_store_whose_jobs_table_was_dropped_cannot_be_read(tmp_path: Path) -> None:
    """Without its jobs table a store's heads cannot be checked: an error, never "intact"."""
    path = _job_store(tmp_path / "jobs.db")
    db = sqlite3.connect(path)
    db.execute("DROP TABLE jobs")
    db.commit()
    db.close()

    with pytest.raises(AuditFormatError) as info:
        verify_log(path)

    assert str(info.value) == (
        f"{path}: cannot read the job store's audit table: no such table: jobs"
    )


def test_an_older_stores_log_table_beside_its_jobs_is_read_as_a_log(
    tmp_path: Path,
) -> None:
    """A log's audit table (seq, record, hash) in a file with a jobs table is a log."""
    path = tmp_path / "jobs.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE jobs (key TEXT PRIMARY KEY, snapshot TEXT)")
    db.commit()
    db.close()
    sink = SqliteAuditLog(path)
    sink.append(_entry())
    sink.close()

    assert [r["seq"] for r in read_records(path)] == [1]
    assert verify_log(path) == []


def test_an_sqlite_sink_refuses_a_job_store(tmp_path: Path) -> None:
    """--audit given the store's own file would add a second chain to its audit table."""
    path = _job_store(tmp_path / "jobs.db")

    with pytest.raises(
        AuditFormatError, match="is a job store: its audit table is written"
    ):
        open_audit(path)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("picture.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("random.db", bytes(range(256)) * 4),
        ("spec.json", OCDZ.source.encode()),
        ("list.jsonl", b'[{"seq": 1, "hash": "x"}]\n'),
    ],
)
def test_a_file_that_is_not_a_log_is_refused_by_every_reader(
    tmp_path: Path, reader: str, name: str, content: bytes
) -> None:
    """A binary file, a text file or JSON that is not a record is not an audit log."""
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(AuditFormatError, match="is not an audit log"):
        READERS[reader](path)


def test_an_sqlite_database_without_an_audit_table_is_refused(tmp_path: Path) -> None:
    """Some other SQLite database is named as such, not read as an empty log."""
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()

    with pytest.raises(AuditFormatError, match="without an audit table"):
        verify_log(path)


def test_the_format_error_is_a_statepoll_value_error() -> None:
    """Callers catch it as StatepollError or ValueError; it is not a SpecError."""
    assert issubclass(AuditFormatError, StatepollError)
    assert issubclass(AuditFormatError, ValueError)
    assert not issubclass(AuditFormatError, SpecError)


def test_read_records_refuses_at_the_call_not_at_the_first_record(
    tmp_path: Path,
) -> None:
    """The error comes from read_records() itself, before anything is iterated."""
    path = tmp_path / "picture.jsonl"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

    with pytest.raises(AuditFormatError):
        read_records(path)


def test_a_torn_first_record_is_a_log_with_a_torn_line(tmp_path: Path) -> None:
    """A crash during the very first write leaves a log that verify reports, not a refusal."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"seq": 1, "time": "2026-')

    problems = verify_log(path)

    assert [(p.line, p.kind, "torn" in p.message) for p in problems] == [
        (1, "tampered", True)
    ]


@pytest.mark.parametrize("name", ["audit.jsonl", "audit.db"])
def test_an_empty_file_is_an_empty_log(tmp_path: Path, name: str) -> None:
    """A log that was opened but never written to has no records and no problem."""
    path = tmp_path / name
    path.touch()

    assert list(read_records(path)) == []
    assert verify_log(path) == []


def test_an_sqlite_log_is_read_whatever_its_name(tmp_path: Path) -> None:
    """The format is told by the file's first bytes, not only by its suffix."""
    path = tmp_path / "audit.db"
    sink = open_audit(path)
    sink.append(_entry())
    sink.close()
    renamed = path.rename(tmp_path / "audit.log")

    sink = open_audit(renamed)
    sink.append(_entry())
    sink.close()

    assert [r["seq"] for r in read_records(renamed)] == [1, 2]
    assert verify_log(renamed) == []


def test_a_sink_refuses_to_append_to_a_file_that_is_not_a_log(tmp_path: Path) -> None:
    """--audit pointed at a notes file leaves the file alone and says why."""
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n", encoding="utf-8")

    with pytest.raises(AuditFormatError, match="not an audit log"):
        open_audit(path)

    assert path.read_text(encoding="utf-8") == "shopping list\n"


def test_a_jsonl_sink_refuses_an_sqlite_file(tmp_path: Path) -> None:
    """Appending JSON lines to a database would ruin it; the sink refuses."""
    path = tmp_path / "audit.db"
    open_audit(path).close()

    with pytest.raises(AuditFormatError, match="is an SQLite database"):
        JsonlAuditLog(path)


def test_an_sqlite_sink_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    """A text file named .db is not taken over as a database."""
    path = tmp_path / "audit.db"
    path.write_text("not a database\n", encoding="utf-8")

    with pytest.raises(AuditFormatError, match="not an SQLite database"):
        SqliteAuditLog(path)


@pytest.mark.parametrize("name", ["audit.jsonl", "audit.db"])
def test_a_directory_is_refused_by_sinks_and_readers(tmp_path: Path, name: str) -> None:
    """A directory given as the log is named as one, by both sinks and by verify."""
    path = tmp_path / name
    path.mkdir()

    with pytest.raises(AuditFormatError, match="is a directory, not an audit log"):
        open_audit(path)
    with pytest.raises(AuditFormatError, match="is a directory, not an audit log"):
        verify_log(path)


@pytest.mark.parametrize("name", ["audit.jsonl", "audit.db"])
def test_a_sink_in_a_missing_directory_raises_an_audit_write_error(
    tmp_path: Path, name: str
) -> None:
    """Both sinks report a path they cannot open as AuditWriteError naming the path."""
    path = tmp_path / "no-such-dir" / name

    with pytest.raises(AuditWriteError, match="cannot open audit log") as info:
        open_audit(path)

    assert str(path) in str(info.value)
    assert isinstance(info.value, OSError)


def test_a_line_nested_past_the_parsers_limit_is_reported_not_raised(
    tmp_path: Path,
) -> None:
    """100,000 '[' in a log line is a corrupted line for verify, not a RecursionError."""
    path = tmp_path / "audit.jsonl"
    sink = open_audit(path)
    sink.append(_entry())
    sink.close()
    with path.open("ab") as handle:
        handle.write(b"[" * 100_000 + b"\n")

    problems = verify_log(path)

    assert [(p.line, p.kind) for p in problems] == [(2, "tampered")]
    assert len(list(read_records(path))) == 1
