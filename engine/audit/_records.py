"""Audit records: the entry the engine hands over, the record on disk, its hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from ._redact import scrub

AUDIT_KINDS: Final = (
    "submitted",
    "transition",
    "item_transition",
    "retry",
    "retry_after",
    "gave_up",
    "illegal_transition",
    "unknown_state",
    "cancel_requested",
    "hook_failed",
    "completed",
    "timed_out",
    "errored",
    "resumed",
)

#: ``prev`` of the first record.
GENESIS: Final = "sha256:" + "0" * 64


@attrs.frozen(kw_only=True)
class AuditEntry:
    """What the engine hands to a sink (the sink adds seq, time and hashes)."""

    kind: str
    service: str
    lifecycle: str
    job_id: str
    spec_hash: str
    spec_source: str = ""
    item_id: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    trigger: str | None = None
    attempt: int = 0
    http_status: int | None = None
    observed: Any = attrs.field(default=None, hash=False)
    detail: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """Return the hash of a record: sha256 of its canonical JSON without ``hash``."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return "sha256:" + hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_record(
    entry: AuditEntry, seq: int, prev: str, secrets: Sequence[str]
) -> dict[str, Any]:
    """Return the record for ``entry`` at ``seq`` chained to ``prev``, hash included."""
    record: dict[str, Any] = {
        "seq": seq,
        "time": _now(),
        "kind": entry.kind,
        "service": entry.service,
        "lifecycle": entry.lifecycle,
        "job_id": entry.job_id,
        "item_id": entry.item_id,
        "from": entry.from_state,
        "to": entry.to_state,
        "trigger": entry.trigger,
        "attempt": entry.attempt,
        "http_status": entry.http_status,
        "observed": entry.observed,
        "spec_hash": entry.spec_hash,
        "spec": entry.spec_source,
        "detail": dict(entry.detail),
        "prev": prev,
    }
    # Secrets are scrubbed before hashing: the hash covers what is on disk.
    record = scrub(record, secrets)
    # Round-trip so that the hash covers exactly what a reader will parse.
    record = json.loads(json.dumps(record, ensure_ascii=False, default=str))
    record["hash"] = record_hash(record)
    return record
