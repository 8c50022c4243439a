"""`statepoll audit verify`: 0 intact, 1 tampered, 2 cannot check (a spec not found)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from engine.audit import AuditEntry, open_audit, read_records, record_hash
from engine.cli import main
from statemachines import load_spec


def _run(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """An intact JSON Lines log of one Mindee job: submitted, processed, completed."""
    path = tmp_path / "audit.jsonl"
    spec = load_spec("mindee")
    base: dict[str, Any] = {"service": "mindee", "lifecycle": "inference", "job_id": "j-1",
            "spec_hash": spec.content_hash, "spec_source": spec.source}  # fmt: skip
    sink = open_audit(path)
    try:
        sink.append(
            AuditEntry(
                kind="submitted", to_state="Processing", trigger="submit", **base
            )
        )
        sink.append(AuditEntry(kind="transition", from_state="Processing",
                               to_state="Processed", trigger="poll", **base))  # fmt: skip
        sink.append(AuditEntry(kind="completed", to_state="Processed", **base))
    finally:
        sink.close()
    return path


def _rewrite(path: Path, edit: Any, *, rehash: bool) -> None:
    """Edit each record; with ``rehash``, recompute the chain so only the edit differs."""
    records = [dict(r) for r in read_records(path)]
    prev = records[0]["prev"]
    lines = []
    for record in records:
        edit(record)
        if rehash:
            record["prev"] = prev
            record["hash"] = record_hash(record)
            prev = record["hash"]
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _unknown_spec(record: dict[str, Any]) -> None:
    record["spec_hash"] = "sha256:" + "f" * 64
    record.pop("spec", None)


def test_intact_log_exits_0(log: Path) -> None:
    """An untouched log verifies: exit 0, 'intact'."""
    code, out, _ = _run("audit", "verify", log)

    assert code == 0
    assert out == f"{log}: intact\n"


def test_tampered_log_exits_1(log: Path) -> None:
    """A record edited after the fact: exit 1, NOT intact."""
    _rewrite(
        log,
        lambda r: r.update(to="Failed") if r["kind"] == "transition" else None,
        rehash=False,
    )

    code, _, err = _run("audit", "verify", log)

    assert code == 1
    assert "NOT intact" in err


def test_log_whose_spec_is_not_found_exits_2(log: Path) -> None:
    """An intact chain whose spec cannot be found: exit 2, 'cannot check: spec not found'."""
    _rewrite(log, _unknown_spec, rehash=True)

    code, _, err = _run("audit", "verify", log)

    assert code == 2
    assert err == (
        f"{log}: cannot check: spec not found (1 problem(s); pass the spec file with --spec)\n"
    )


def test_tampered_and_unchecked_is_tampered(log: Path) -> None:
    """A log both tampered and partly uncheckable exits 1: tampering wins."""
    _rewrite(log, _unknown_spec, rehash=True)
    _rewrite(
        log,
        lambda r: r.update(job_id="j-2") if r["kind"] == "completed" else None,
        rehash=False,
    )

    code, _, _ = _run("audit", "verify", log)

    assert code == 1


@attrs.frozen
class _Problem:
    """A verify problem as engine.audit had it: a message only."""

    message: str
