"""show and stats: the engine's new record kinds, re-tracked jobs, hostile values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs

from engine.audit import (
    AUDIT_KINDS,
    GENESIS,
    AuditEntry,
    build_record,
    format_stats,
    log_stats,
    show_log,
    spec_entry,
    verify_log,
)
from statemachines import load_spec
from statemachines.load import builtin_path

OCDZ = load_spec("oneclickdz")


def _entry(kind: str, dst: str | None = None, **changes: Any) -> AuditEntry:
    entry = AuditEntry(
        kind=kind,
        service="oneclickdz",
        lifecycle="mobile_topup",
        job_id="j1",
        spec_hash=OCDZ.content_hash,
        spec_source=OCDZ.source,
        to_state=dst,
    )
    return attrs.evolve(entry, **changes)


def _write(path: Path, *timed: tuple[float, AuditEntry]) -> Path:
    """Write a chained log whose records carry the given times (seconds after 12:00:00)."""
    prev, lines = GENESIS, []
    for seq, (at, entry) in enumerate(timed, 1):
        minutes, seconds = divmod(at, 60)
        stamp = f"2026-01-01T12:{int(minutes):02d}:{seconds:09.6f}Z"
        record = build_record(entry, seq=seq, prev=prev, time=stamp)
        lines.append(json.dumps(record, ensure_ascii=False))
        prev = record["hash"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _timeline(lines: list[str]) -> list[str]:
    """Drop the time and offset columns of show's job lines, keep everything else."""
    return [re.sub(r"^  \S+Z  \+\s*[\d.]+s  ", "", line) for line in lines]


def test_every_new_record_kind_is_known_and_the_old_ones_stay() -> None:
    """AUDIT_KINDS has the kinds the engine will write, and retry/retry_after still."""
    new = {"retrying", "forgotten", "intent", "unresolved_submission", "lookup", "spec"}

    assert new <= set(AUDIT_KINDS)
    assert {"retry", "retry_after", "submitted", "completed"} <= set(AUDIT_KINDS)
    assert len(set(AUDIT_KINDS)) == len(AUDIT_KINDS)


def test_show_describes_every_new_kind(tmp_path: Path) -> None:
    """Each new kind reads as a sentence, and a submission joins its job once its id is known."""
    document = json.loads(builtin_path("oneclickdz").read_text(encoding="utf-8"))
    ref = {"client_ref": "r-1"}
    path = _write(
        tmp_path / "a.jsonl",
        (0, spec_entry(OCDZ, document)),
        (1, _entry("intent", job_id="", detail=ref)),
        (2, _entry("lookup", job_id="j1", http_status=200, detail=ref)),
        (3, _entry("submitted", "PENDING", trigger="track")),
        (
            4,
            _entry(
                "retrying",
                http_status=503,
                detail={
                    "kind": "transport",
                    "error": "connection reset",
                    "delay": 2.5,
                    "failures": 2,
                    "budget": 5,
                },
            ),
        ),
        (5, _entry("forgotten", "PENDING")),
        (6, _entry("intent", job_id="", detail={"client_ref": "r-2"})),
        (7, _entry("unresolved_submission", job_id="", detail={"client_ref": "r-2"})),
    )

    lines = _timeline(show_log(path))

    assert lines == [
        "specs recorded in this log",
        (
            f"  2026-01-01T12:00:00.000000Z  spec oneclickdz {OCDZ.content_hash}"
            " from builtin:oneclickdz"
        ),
        "",
        "oneclickdz/mobile_topup job j1",
        "about to submit (client_ref r-1)",
        "looked up by client_ref r-1 HTTP 200: found job j1",
        "tracked in PENDING",
        (
            "retrying after a transport error: connection reset"
            " (failure 2 of 5; next in 2.5s) HTTP 503"
        ),
        "forgotten in PENDING: no longer tracked, whatever the service does next",
        "",
        "oneclickdz/mobile_topup submission r-2",
        "about to submit (client_ref r-2)",
        (
            "unresolved submission (client_ref r-2): the service may have created a job;"
            " check it by hand (it is never re-sent)"
        ),
        "",
    ]


def test_show_finds_a_submission_by_its_client_ref(tmp_path: Path) -> None:
    """Show --job takes a client reference for a submission that never got a job id."""
    path = _write(
        tmp_path / "a.jsonl",
        (0, _entry("submitted", "PENDING", trigger="submit")),
        (1, _entry("intent", job_id="", detail={"client_ref": "r-9"})),
    )

    assert _timeline(show_log(path, job="r-9")) == [
        "oneclickdz/mobile_topup submission r-9",
        "about to submit (client_ref r-9)",
        "",
    ]


def test_show_cuts_a_huge_observed_value_to_an_excerpt(tmp_path: Path) -> None:
    """A megabyte-long unknown state prints as a short excerpt, not a megabyte of terminal."""
    path = _write(
        tmp_path / "a.jsonl", (0, _entry("unknown_state", observed="x" * 1_000_000))
    )

    lines = show_log(path)

    assert max(len(line) for line in lines) < 300
    assert "x" * 100 in lines[1]


def test_show_and_stats_survive_a_detail_that_is_not_an_object(tmp_path: Path) -> None:
    """A record whose detail is a list is shown and counted, not an AttributeError."""
    odd = _entry("completed", "FULFILLED")
    path = _write(tmp_path / "a.jsonl", (0, attrs.evolve(odd, detail=["odd"])))  # type: ignore[arg-type]  # a hostile log's shape

    assert "completed: FULFILLED (None) after None polls" in show_log(path)[1]
    assert log_stats(path)[0].outcomes == (("None", 1),)


def test_stats_count_retries_old_and_new_and_every_way_a_job_ends(
    tmp_path: Path,
) -> None:
    """retrying, retry and retry_after are retries; forgotten and unresolved are outcomes."""
    path = _write(
        tmp_path / "a.jsonl",
        (0, _entry("submitted", "PENDING")),
        (1, _entry("retrying", detail={"delay": 1})),
        (2, _entry("retry", detail={"delay": 1})),
        (3, _entry("retry_after", detail={"delay": 1})),
        (4, _entry("forgotten", "PENDING")),
        (5, _entry("submitted", "PENDING", job_id="j2")),
        (
            6,
            _entry(
                "completed",
                "FULFILLED",
                job_id="j2",
                detail={"outcome": "success", "polls": 3},
            ),
        ),
        (7, _entry("intent", job_id="", detail={"client_ref": "r"})),
        (8, _entry("unresolved_submission", job_id="", detail={"client_ref": "r"})),
    )

    (stats,) = log_stats(path)

    assert (stats.jobs, stats.retries) == (2, 3)
    assert stats.outcomes == (
        ("forgotten", 1),
        ("success", 1),
        ("unresolved_submission", 1),
    )
    assert "retries: 3" in format_stats([stats])[0]


def test_stats_time_a_retracked_job_from_its_new_session(tmp_path: Path) -> None:
    """After a re-track, time in state runs from the new submitted record, not the old session."""
    path = _write(
        tmp_path / "a.jsonl",
        (0, _entry("submitted", "PENDING", trigger="submit")),
        (10, _entry("transition", "HANDLING", from_state="PENDING")),
        (20, _entry("transition", "FULFILLED", from_state="HANDLING")),
        (
            20,
            _entry("completed", "FULFILLED", detail={"outcome": "success", "polls": 2}),
        ),
        (500, _entry("submitted", "HANDLING", trigger="track")),
        (503, _entry("transition", "REFUNDED", from_state="HANDLING")),
        (
            503,
            _entry("completed", "REFUNDED", detail={"outcome": "failure", "polls": 1}),
        ),
    )

    (stats,) = log_stats(path)
    times = {t.state: (t.count, t.max) for t in stats.states}

    assert times == {"PENDING": (1, 10.0), "HANDLING": (2, 10.0)}
    assert verify_log(path) == []


def test_stats_leave_spec_records_out(tmp_path: Path) -> None:
    """A spec record is not a job: it adds no lifecycle row and no job."""
    document = json.loads(builtin_path("oneclickdz").read_text(encoding="utf-8"))
    path = _write(
        tmp_path / "a.jsonl",
        (0, spec_entry(OCDZ, document)),
        (1, _entry("submitted", "PENDING")),
    )

    assert [(s.lifecycle, s.jobs) for s in log_stats(path)] == [("mobile_topup", 1)]
