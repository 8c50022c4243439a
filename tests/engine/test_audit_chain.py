"""The audit log: hash chain, tamper detection, redaction, both sinks, legality."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.audit import (
    AuditEntry,
    JsonlAuditLog,
    Redactor,
    SqliteAuditLog,
    open_audit,
    read_records,
    verify_log,
)
from statemachines import build_machine, load_spec

OCDZ = load_spec("oneclickdz")
MOBILE = OCDZ.lifecycle("mobile_topup")


def _entry(
    kind: str = "transition", *, src: str | None = None, dst: str | None = None
) -> AuditEntry:
    return AuditEntry(
        kind=kind,
        service="oneclickdz",
        lifecycle="mobile_topup",
        job_id="66a1f0c2b3d4e5f6a7b8c9d0",
        spec_hash=OCDZ.content_hash,
        spec_source=OCDZ.source,
        from_state=src,
        to_state=dst,
        trigger="poll",
        http_status=200,
        observed=dst,
    )


def _write_log(path: Path) -> None:
    sink = open_audit(path)
    sink.append(_entry("submitted", dst="PENDING"))
    sink.append(_entry(src="PENDING", dst="HANDLING"))
    sink.append(_entry(src="HANDLING", dst="FULFILLED"))
    sink.append(_entry("completed", dst="FULFILLED"))
    sink.close()


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name", ["audit.jsonl", "audit.db"])
def test_intact_log_verifies_on_both_sinks(tmp_path: Path, name: str) -> None:
    """A log written by either sink verifies with no problem."""
    path = tmp_path / name
    _write_log(path)

    assert verify_log(path) == []
    assert [r["seq"] for r in read_records(path)] == [1, 2, 3, 4]


def test_both_sinks_write_the_same_records(tmp_path: Path) -> None:
    """JSON Lines and SQLite take the same records (bar time and hashes)."""
    _write_log(tmp_path / "a.jsonl")
    _write_log(tmp_path / "a.db")

    def strip(r: dict[str, object]) -> dict[str, object]:
        return {k: v for k, v in r.items() if k not in ("time", "hash", "prev")}

    assert [strip(dict(r)) for r in read_records(tmp_path / "a.jsonl")] == [
        strip(dict(r)) for r in read_records(tmp_path / "a.db")
    ]


def test_edited_record_is_detected(tmp_path: Path) -> None:
    """Changing a field of a record breaks its hash."""
    path = tmp_path / "audit.jsonl"
    _write_log(path)
    lines = _lines(path)
    record = json.loads(lines[2])
    record["to"] = "REFUNDED"
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    problems = verify_log(path)

    assert any(p.seq == 3 and "hash does not match" in p.message for p in problems)


def test_removed_record_is_detected(tmp_path: Path) -> None:
    """Deleting a record leaves a sequence gap and a broken link."""
    path = tmp_path / "audit.jsonl"
    _write_log(path)
    lines = _lines(path)
    del lines[1]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    problems = verify_log(path)

    assert any(p.seq == 3 and "sequence 3 where 2" in p.message for p in problems)
    assert any(
        p.seq == 3 and "previous-hash link broken" in p.message for p in problems
    )


def test_reordered_records_are_detected(tmp_path: Path) -> None:
    """Swapping two records breaks the chain at both."""
    path = tmp_path / "audit.jsonl"
    _write_log(path)
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    problems = verify_log(path)

    assert {p.seq for p in problems} >= {2, 3}


def test_torn_last_line_is_reported_and_appending_goes_on(tmp_path: Path) -> None:
    """A crash mid-write is reported by verify; the next record chains to the last valid one."""
    path = tmp_path / "audit.jsonl"
    _write_log(path)
    with path.open("ab") as handle:
        handle.write(b'{"seq": 5, "kind": "transi')

    sink = JsonlAuditLog(path)
    record = sink.append(_entry("resumed", dst="FULFILLED"))
    sink.close()
    problems = verify_log(path)

    assert record["seq"] == 5
    assert [(p.line, "torn" in p.message) for p in problems] == [(5, True)]


def test_reopened_log_continues_seq_and_chain(tmp_path: Path) -> None:
    """A sink opened on an existing log continues its numbering and chain."""
    path = tmp_path / "audit.db"
    _write_log(path)

    sink = SqliteAuditLog(path)
    sink.append(_entry("resumed", dst="FULFILLED"))
    sink.close()

    assert [r["seq"] for r in read_records(path)][-1] == 5
    assert verify_log(path) == []


def test_illegal_transition_is_reported_against_the_named_spec(tmp_path: Path) -> None:
    """Verify checks every move against the spec whose hash the record names."""
    path = tmp_path / "audit.jsonl"
    sink = open_audit(path)
    sink.append(_entry("submitted", dst="PENDING"))
    sink.append(_entry(src="PENDING", dst="REFUNDED"))  # skips HANDLING: not declared
    sink.close()

    problems = verify_log(path)

    assert [(p.seq, p.message) for p in problems] == [
        (2, "illegal transition PENDING -> REFUNDED in lifecycle mobile_topup")
    ]


def test_unknown_spec_hash_is_reported(tmp_path: Path) -> None:
    """A record naming a spec nobody can find fails verification."""
    path = tmp_path / "audit.jsonl"
    sink = open_audit(path)
    entry = _entry(src="PENDING", dst="HANDLING")
    sink.append(attrs.evolve(entry, spec_hash="sha256:" + "1" * 64, spec_source=""))
    sink.close()

    problems = verify_log(path)

    assert len(problems) == 1
    assert "no spec with hash" in problems[0].message


def test_secrets_card_codes_and_sas_signatures_never_reach_disk(tmp_path: Path) -> None:
    """The API key, OneClickDZ card codes and an Azure SAS signature are redacted."""
    key = "live-key-7f3a9c"
    redact = Redactor.for_spec(OCDZ, {key})
    azure = Redactor.for_spec(load_spec("azure-translator"), {key})
    body = {"data": {"card_code": "481516234200", "num_trans": "AT-2026-70011",
                     "cards": [{"value": "AAAA-BBBB-CCCC-DDDD", "serial": "700001"}],
                     "note": f"sent with {key}"}}  # fmt: skip
    path = tmp_path / "audit.jsonl"
    sink = open_audit(path, secrets=[key])
    sink.append(attrs.evolve(_entry("retry"), observed=redact.redact(body)))
    sink.append(
        attrs.evolve(_entry("retry"), detail=azure.redact({"link": "https://x.blob.core.windows.net/c?sv=2022&sig=SECRETSIG&se=2026"}))
    )  # fmt: skip
    sink.append(attrs.evolve(_entry("retry"), detail={"raw": f"Authorization: {key}"}))
    sink.close()

    raw = path.read_bytes()

    for secret in (
        key,
        "481516234200",
        "AT-2026-70011",
        "AAAA-BBBB-CCCC-DDDD",
        "SECRETSIG",
    ):
        assert secret.encode() not in raw
    assert b"[REDACTED]" in raw
    assert (
        body["data"]["card_code"] == "481516234200"
    )  # the caller's value is untouched
    assert verify_log(path) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(MOBILE.state_names), max_size=25))
def test_engine_style_logs_always_verify(
    tmp_path_factory: pytest.TempPathFactory, seen: list[str]
) -> None:
    """Random observations, written only when legal (as the engine does), always verify."""
    path = tmp_path_factory.mktemp("prop") / "audit.jsonl"
    machine = build_machine(MOBILE)
    state = MOBILE.initial
    sink = open_audit(path)
    sink.append(_entry("submitted", dst=state))
    for observed in seen:
        if observed != state and machine.is_legal(state, observed):
            sink.append(_entry(src=state, dst=observed))
            state = observed
    sink.close()

    records = list(read_records(path))

    assert verify_log(path) == []
    assert all(
        machine.is_legal(str(r["from"]), str(r["to"]))
        for r in records
        if r["kind"] == "transition"
    )
