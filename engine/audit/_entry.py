"""The entry the engine hands to a sink, and the kinds of entries there are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from statemachines import Spec

#: Every kind of record the engine writes. ``retry`` and ``retry_after`` are
#: the older names of ``retrying``: logs that hold them stay readable.
AUDIT_KINDS: Final = (
    "spec",
    "intent",
    "submitted",
    "lookup",
    "unresolved_submission",
    "transition",
    "item_transition",
    "retrying",
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
    "forgotten",
    "resumed",
    "progress",
    "chained",
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


def spec_entry(spec: Spec, document: Mapping[str, Any]) -> AuditEntry:
    """Return the ``spec`` entry for ``spec``: its parsed document and where it came from.

    Written once per spec and session before that spec's other records, it
    lets ``verify_log`` check every move even when the spec file has moved,
    changed or gone: the document is indexed by its content hash.
    ``document`` is the JSON document the spec was loaded from.
    """
    return AuditEntry(
        kind="spec",
        service=spec.name,
        lifecycle="",
        job_id="",
        spec_hash=spec.content_hash,
        spec_source=spec.source,
        detail={"document": document, "source": spec.source},
    )
