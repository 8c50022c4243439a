"""Response → Observation by the spec's ordered observe rules (pure).

Rules are tried in order; the first that applies decides. A value-map rule
whose value is not in its map is *unknown* (handled by the lifecycle's policy
unless the rule says ``skip``); a response no rule applies to is unknown too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from statemachines import MISSING, Condition, ObserveRule, resolve_pointer

__all__ = ["Observation", "holds", "observe"]


@attrs.frozen
class Observation:
    """What a response says: a state, or an unknown raw value, and how to treat it."""

    state: str | None
    #: The raw value read (a status string, an HTTP status for status rules).
    raw: Any
    #: ``None`` when ``state`` is known; else "reject" or "fail" (policy to apply).
    unknown: Literal["reject", "fail"] | None = None


def holds(  # noqa: PLR0911 - one return per condition kind reads best
    condition: Condition, status: int, headers: Mapping[str, str], body: Any
) -> bool:
    """Whether ``condition`` holds for a response."""
    kind = condition.kind
    if kind == "status":
        return status in condition.status
    if kind == "header":
        # Reply headers are keyed in lower case; spec names may be any case.
        return condition.header is not None and condition.header.lower() in headers
    if kind == "all":
        return all(holds(c, status, headers, body) for c in condition.children)
    if kind == "any":
        return any(holds(c, status, headers, body) for c in condition.children)
    value = resolve_pointer(body, condition.pointer)
    if kind == "exists":
        return (value is not MISSING and value is not None) == condition.exists
    if value is MISSING:
        return False
    return any(_same(value, v) for v in condition.values)


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python: keep True from matching 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def observe(
    rules: tuple[ObserveRule, ...],
    status: int,
    headers: Mapping[str, str],
    body: Any,
    *,
    default_policy: Literal["reject", "fail"],
) -> Observation:
    """Apply ``rules`` to a response and return what it says."""
    last_unknown: Observation | None = None
    for rule in rules:
        if rule.when is not None and not holds(rule.when, status, headers, body):
            continue
        if rule.state is not None:
            return Observation(rule.state, status)
        raw = resolve_pointer(body, rule.pointer or "")
        if raw is MISSING:
            raw = None
        for value, state in rule.mapping:
            if raw == value and isinstance(raw, str):
                return Observation(state, raw)
        if rule.on_unknown == "skip":
            continue
        policy = rule.on_unknown or default_policy
        last_unknown = Observation(None, raw, policy)
        break
    return last_unknown or Observation(None, None, default_policy)
