"""The entry the engine hands to a sink, and the kinds of entries there are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

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
