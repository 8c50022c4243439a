"""verify_log: tampered vs illegal vs unchecked, finding specs again, re-tracked jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from engine.audit import (
    AuditEntry,
    AuditSink,
    VerifyReport,
    open_audit,
    spec_entry,
    verify_log,
)
from engine.audit._records import canonical_json, content_digest
from statemachines import Spec, load_spec
from statemachines.load import builtin_path

OCDZ = load_spec("oneclickdz")
AZURE = load_spec("azure-translator")
UNKNOWN = "sha256:" + "1" * 64


def _entry(
    kind: str = "transition",
    src: str | None = None,
    dst: str | None = None,
    *,
    spec: Spec = OCDZ,
    job: str = "j1",
    trigger: str = "poll",
    **changes: Any,
) -> AuditEntry:
    entry = AuditEntry(
        kind=kind,
        service=spec.name,
        lifecycle="mobile_topup",
        job_id=job,
        spec_hash=spec.content_hash,
        spec_source=spec.source,
        from_state=src,
        to_state=dst,
        trigger=trigger,
    )
    return attrs.evolve(entry, **changes)


def _write(path: Path, *entries: AuditEntry) -> Path:
    sink: AuditSink = open_audit(path)
    for entry in entries:
        sink.append(entry)
    sink.close()
    return path


def _topup(
    spec: Spec = OCDZ, *, job: str = "j1", trigger: str = "submit"
) -> list[AuditEntry]:
    """One whole mobile top-up session."""
    return [
        _entry("submitted", dst="PENDING", spec=spec, job=job, trigger=trigger),
        _entry(src="PENDING", dst="HANDLING", spec=spec, job=job),
        _entry(src="HANDLING", dst="FULFILLED", spec=spec, job=job),
        _entry("completed", dst="FULFILLED", spec=spec, job=job),
    ]


def _own_spec(
    directory: Path, name: str = "my-ocdz.json"
) -> tuple[Spec, dict[str, Any]]:
    """A spec of the user's own: the OneClickDZ spec with another title, in a file."""
    document = json.loads(builtin_path("oneclickdz").read_text(encoding="utf-8"))
    document["service"]["title"] = "OneClickDZ, as a user copied it"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return load_spec(path), document


def _kinds(report: VerifyReport) -> list[tuple[int | None, str]]:
    return [(p.seq, p.kind) for p in report.problems]


# -- item 3: the report ---------------------------------------------------------------


def test_an_intact_log_gives_an_intact_checked_report(tmp_path: Path) -> None:
    """A clean log: no problem, intact, checked, and the number of records read."""
    report = verify_log(_write(tmp_path / "a.jsonl", *_topup()))

    assert (report.problems, report.intact, report.checked) == ((), True, True)
    assert report.records == 4


def test_each_problem_says_tampered_illegal_or_unchecked(tmp_path: Path) -> None:
    """An edited record is tampered, an undeclared move illegal, an unknown spec unchecked."""
    path = _write(
        tmp_path / "a.jsonl",
        _entry("submitted", dst="PENDING", trigger="submit"),
        _entry(src="PENDING", dst="REFUNDED"),
        _entry(src="PENDING", dst="HANDLING", job="j2", spec_hash=UNKNOWN),
        _entry("completed", dst="REFUNDED"),
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[3])
    record["detail"] = {"outcome": "success"}
    path.write_text(
        "\n".join([*lines[:3], json.dumps(record)]) + "\n", encoding="utf-8"
    )

    report = verify_log(path)

    assert _kinds(report) == [(2, "illegal"), (3, "unchecked"), (4, "tampered")]
    assert (report.intact, report.checked) == (False, False)


def test_only_unchecked_problems_leave_the_log_intact_but_not_checked(
    tmp_path: Path,
) -> None:
    """A log whose spec is missing is not called tampered: intact, not checked (exit 2)."""
    path = _write(
        tmp_path / "a.jsonl",
        *[attrs.evolve(e, spec_hash=UNKNOWN, spec_source="") for e in _topup()],
    )

    report = verify_log(path)

    assert (report.intact, report.checked) == (True, False)
    assert [p.kind for p in report] == ["unchecked"]


def test_unchecked_moves_are_reported_once_per_missing_spec_with_a_count(
    tmp_path: Path,
) -> None:
    """Three moves under one unknown spec give one problem naming the spec and the count."""
    entries = [
        attrs.evolve(e, spec_hash=UNKNOWN, spec_source="gone.json") for e in _topup()
    ]
    path = _write(
        tmp_path / "a.jsonl",
        *entries,
        _entry(src="x", dst="y", job="j2", spec_hash=UNKNOWN),
    )

    report = verify_log(path)

    assert len(report) == 1
    assert report[0].seq == 2
    assert report[0].message == (
        f"no spec with hash {UNKNOWN} (recorded as 'gone.json', not found or changed);"
        " pass it with --spec (3 moves not checked)"
    )


def test_continuity_is_checked_even_when_the_spec_is_missing(tmp_path: Path) -> None:
    """A move that does not start where the job stood is illegal, spec or no spec."""
    path = _write(
        tmp_path / "a.jsonl",
        *[
            attrs.evolve(e, spec_hash=UNKNOWN)
            for e in (
                _entry("submitted", dst="PENDING", trigger="submit"),
                _entry(src="HANDLING", dst="FULFILLED"),
            )
        ],
    )

    report = verify_log(path)

    assert _kinds(report) == [(2, "illegal"), (2, "unchecked")]
    assert report[0].message == "transition from HANDLING but the job was in PENDING"


def test_the_report_reads_as_the_list_of_its_problems(tmp_path: Path) -> None:
    """len, iteration, indexing, slicing and == [] behave as on the old list result."""
    path = _write(
        tmp_path / "a.jsonl",
        _entry(src="PENDING", dst="REFUNDED"),
        _entry(src="A", dst="B", job="j2"),
    )

    report = verify_log(path)

    assert len(report) == 2
    assert list(report) == list(report.problems)
    assert report[-1] is report.problems[-1]
    assert report[:1] == report.problems[:1]
    assert report == list(report.problems)
    assert report != []
    assert verify_log(_write(tmp_path / "b.jsonl", *_topup())) == []
    assert not verify_log(tmp_path / "b.jsonl")


def test_a_record_whose_seq_is_not_an_integer_is_tampered_with_no_seq(
    tmp_path: Path,
) -> None:
    """A seq of another type is reported as missing, never passed on as the problem's seq."""
    path = tmp_path / "a.jsonl"
    _write(path, *_topup()[:1])
    record = json.loads(path.read_text(encoding="utf-8"))
    record["seq"] = "1"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")

    report = verify_log(path)

    assert {p.seq for p in report} == {None}
    assert {p.kind for p in report} == {"tampered"}


# -- item 4: finding the spec again ---------------------------------------------------


def test_a_spec_recorded_in_the_log_checks_moves_whose_file_is_gone(
    tmp_path: Path,
) -> None:
    """A spec record (its document by content hash) is enough: the spec file may be deleted."""
    spec, document = _own_spec(tmp_path / "run")
    path = _write(tmp_path / "a.jsonl", spec_entry(spec, document), *_topup(spec))
    Path(spec.source).unlink()

    report = verify_log(path)

    assert (report.problems, report.checked) == ((), True)


def test_a_recorded_spec_really_judges_the_moves(tmp_path: Path) -> None:
    """The recorded spec is used: an undeclared move under it is illegal, not unchecked."""
    spec, document = _own_spec(tmp_path / "run")
    bad = _entry(src="PENDING", dst="REFUNDED", spec=spec)
    path = _write(
        tmp_path / "a.jsonl", spec_entry(spec, document), _topup(spec)[0], bad
    )
    Path(spec.source).unlink()

    assert _kinds(verify_log(path)) == [(3, "illegal")]


def test_a_spec_recorded_after_its_moves_still_serves_them(tmp_path: Path) -> None:
    """A spec record written in a later session checks the records before it."""
    spec, document = _own_spec(tmp_path / "run")
    path = _write(tmp_path / "a.jsonl", *_topup(spec), spec_entry(spec, document))
    Path(spec.source).unlink()

    assert verify_log(path).checked


def test_a_recorded_spec_that_does_not_hash_to_its_spec_hash_is_tampered(
    tmp_path: Path,
) -> None:
    """A spec record whose document is not the spec its hash names is tampering."""
    spec, document = _own_spec(tmp_path / "run")
    forged = {**document, "spec_version": "9.9"}
    path = _write(tmp_path / "a.jsonl", spec_entry(spec, forged), *_topup(spec))
    Path(spec.source).unlink()

    report = verify_log(path)

    assert _kinds(report) == [(1, "tampered"), (3, "unchecked")]
    assert report[0].message == (
        f"recorded spec does not hash to its spec_hash {spec.content_hash}"
    )


def test_a_recorded_spec_changed_by_redaction_is_unchecked_not_tampered(
    tmp_path: Path,
) -> None:
    """A document a sink redacted no longer hashes: said as 'cannot check', not as tampering."""
    spec, document = _own_spec(tmp_path / "run")
    secret = document["service"]["title"]
    sink = open_audit(tmp_path / "a.jsonl", secrets=[secret])
    sink.append(spec_entry(spec, document))
    for entry in _topup(spec):
        sink.append(entry)
    sink.close()
    Path(spec.source).unlink()

    report = verify_log(tmp_path / "a.jsonl")

    assert _kinds(report) == [(1, "unchecked"), (3, "unchecked")]
    assert report.intact


def test_a_recorded_spec_that_no_longer_loads_says_why_its_moves_are_unchecked(
    tmp_path: Path,
) -> None:
    """A recorded document that hashes right but fails today's checks leaves its moves unchecked."""
    document = {"spec_version": "1.0", "service": {"name": "oneclickdz"}}
    recorded = AuditEntry(
        kind="spec",
        service="oneclickdz",
        lifecycle="",
        job_id="",
        spec_hash=UNKNOWN,
        detail={"document": document, "source": "old.json"},
    )
    spec_hash = content_digest(canonical_json(document))
    moves = [
        attrs.evolve(e, spec_hash=spec_hash, spec_source="old.json") for e in _topup()
    ]
    path = _write(
        tmp_path / "a.jsonl", attrs.evolve(recorded, spec_hash=spec_hash), *moves
    )

    report = verify_log(path)

    assert _kinds(report) == [(3, "unchecked")]
    assert "the spec recorded in the log no longer loads" in report[0].message


def test_a_spec_recorded_by_a_relative_path_is_found_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec written as 'my-ocdz.json' beside the log is found when verify runs elsewhere."""
    run = tmp_path / "run"
    _own_spec(run)
    monkeypatch.chdir(run)
    spec = load_spec("my-ocdz.json")
    path = _write(run / "audit.jsonl", *_topup(spec))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    report = verify_log(path)

    assert spec.source == "my-ocdz.json"
    assert (report.problems, report.checked) == ((), True)


def test_a_spec_file_that_changed_since_is_not_used(tmp_path: Path) -> None:
    """The file at the recorded path holds another version: its moves stay unchecked."""
    spec, document = _own_spec(tmp_path / "run")
    path = _write(tmp_path / "a.jsonl", *_topup(spec))
    document["service"]["title"] = "changed since"
    Path(spec.source).write_text(json.dumps(document), encoding="utf-8")

    assert _kinds(verify_log(path)) == [(2, "unchecked")]


def test_a_spec_passed_by_hand_overrides_a_missing_file(tmp_path: Path) -> None:
    """--spec FILE (specs=) still serves when nothing else can be found."""
    spec, _ = _own_spec(tmp_path / "run")
    path = _write(tmp_path / "a.jsonl", *_topup(spec))
    moved = tmp_path / "moved.json"
    Path(spec.source).rename(moved)

    assert verify_log(path, specs=[load_spec(moved)]) == []


def test_spec_entry_is_a_spec_record_of_the_document_and_source() -> None:
    """spec_entry builds the record kind the verifier indexes, with no job attached."""
    document = json.loads(builtin_path("oneclickdz").read_text(encoding="utf-8"))

    entry = spec_entry(OCDZ, document)

    assert (entry.kind, entry.job_id, entry.spec_hash) == (
        "spec",
        "",
        OCDZ.content_hash,
    )
    assert entry.detail == {"document": document, "source": OCDZ.source}


# -- item 5: re-tracking a finished job -----------------------------------------------


@pytest.mark.parametrize("end", ["completed", "timed_out", "errored", "forgotten"])
def test_tracking_a_finished_job_again_starts_a_new_session(
    tmp_path: Path, end: str
) -> None:
    """Track of a job whose session ended is a new session: no 'completed twice'."""
    first = _topup()
    first[-1] = attrs.evolve(first[-1], kind=end)
    path = _write(tmp_path / "a.jsonl", *first, *_topup(trigger="track"))

    assert verify_log(path) == []


def test_a_new_session_starts_from_its_own_submitted_state(tmp_path: Path) -> None:
    """After a re-track the job stands where the new submitted record says, not where it ended."""
    path = _write(
        tmp_path / "a.jsonl",
        *_topup(),
        _entry("submitted", dst="HANDLING", trigger="track"),
        _entry(src="HANDLING", dst="REFUNDED"),
        _entry("completed", dst="REFUNDED"),
    )

    assert verify_log(path) == []


def test_a_second_completion_within_one_session_is_still_illegal(
    tmp_path: Path,
) -> None:
    """Without a new submitted record, completing again is a double completion."""
    path = _write(tmp_path / "a.jsonl", *_topup(), _entry("completed", dst="FULFILLED"))

    report = verify_log(path)

    assert [(p.seq, p.kind, p.message) for p in report] == [
        (5, "illegal", "job j1 completed twice")
    ]


def test_a_resumed_job_does_not_start_a_new_session(tmp_path: Path) -> None:
    """Only a submitted record starts a session: resumed after the end does not."""
    path = _write(
        tmp_path / "a.jsonl",
        *_topup()[:3],
        _entry("completed", dst="FULFILLED"),
        _entry("resumed", dst="FULFILLED", trigger="resume"),
        _entry("completed", dst="FULFILLED"),
    )

    assert [p.message for p in verify_log(path)] == ["job j1 completed twice"]


def test_items_start_again_from_their_initial_state_in_a_new_session(
    tmp_path: Path,
) -> None:
    """A re-tracked batch's documents move from NotStarted again, legally."""

    def batch(trigger: str) -> list[AuditEntry]:
        def e(kind: str, src: str | None, dst: str, **more: Any) -> AuditEntry:
            return _entry(
                kind,
                src,
                dst,
                spec=AZURE,
                job="b1",
                lifecycle=more.pop("lifecycle", "batch"),
                **more,
            )

        return [
            e("submitted", None, "NotStarted", trigger=trigger),
            e(
                "item_transition",
                "NotStarted",
                "Running",
                item_id="d1",
                lifecycle="document",
            ),
            e(
                "item_transition",
                "Running",
                "Succeeded",
                item_id="d1",
                lifecycle="document",
            ),
            e("transition", "NotStarted", "Running"),
            e("transition", "Running", "Succeeded"),
            e("completed", None, "Succeeded"),
        ]

    path = _write(tmp_path / "a.jsonl", *batch("submit"), *batch("track"))

    assert verify_log(path) == []
