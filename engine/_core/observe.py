"""Response → Observation by the spec's ordered observe rules (pure).

Rules are tried in order; the first that applies decides. A value-map rule
whose value is not in its map is *unknown* (handled by the lifecycle's policy
unless the rule says ``skip``); a response no rule applies to is unknown too.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs

from statemachines import (
    MISSING,
    Condition,
    ObserveRule,
    resolve_all,
    resolve_pointer,
)

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
    condition: Condition,
    status: int,
    headers: Mapping[str, str],
    body: Any,
    *,
    code: str | None = None,
) -> bool:
    """Whether ``condition`` holds for a response.

    ``code`` is the service's error code read from the response (see
    ``verdict.error_code``), for ``error`` conditions.
    """
    kind = condition.kind
    if kind == "status":
        return status in condition.status
    if kind == "header":
        # Reply headers are keyed in lower case; spec names may be any case.
        return condition.header is not None and condition.header.lower() in headers
    if kind == "all":
        return all(
            holds(c, status, headers, body, code=code) for c in condition.children
        )
    if kind == "any":
        return any(
            holds(c, status, headers, body, code=code) for c in condition.children
        )
    if kind == "not":
        return not holds(condition.children[0], status, headers, body, code=code)
    if kind == "error":
        if condition.values:
            return code is not None and code in condition.values
        return (status >= 400 or code is not None) == condition.exists
    if condition.header is not None:
        text = headers.get(condition.header.lower(), MISSING)
        return _passes(condition, text, header=True)
    if condition.match is not None:
        return _matches(condition, resolve_all(body, condition.pointer))
    return _passes(condition, resolve_pointer(body, condition.pointer))


#: The numeric tests, by condition kind.
_COMPARE: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def _passes(condition: Condition, value: Any, *, header: bool = False) -> bool:
    """Whether one value passes a value test (``equals``, ``in``, ``exists``, numbers)."""
    kind = condition.kind
    if kind == "exists":
        return (value is not MISSING and value is not None) == condition.exists
    if value is MISSING:
        return False
    if kind in {"equals", "in"}:
        return any(_same(value, v) for v in condition.values)
    number = _number(value, header=header)
    limit = _number(condition.values[0], header=False)
    if number is None or limit is None:
        return False
    return _COMPARE[kind](number, limit)


def _number(value: Any, *, header: bool) -> float | None:
    """Return ``value`` as a number, or ``None``: a JSON number, or a header's text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if header:
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _matches(condition: Condition, values: list[Any]) -> bool:
    """Combine a test over the values a wildcard pointer names (``match``).

    ``exists`` counts every element; the other tests leave out elements
    without a value (or null), as botocore's ``pathAll``/``pathAny`` do. No
    value left holds for neither ``all`` nor ``any``.
    """
    if condition.kind != "exists":
        values = [v for v in values if v is not MISSING and v is not None]
    results = [_passes(condition, v) for v in values]
    if condition.match == "all":
        return bool(results) and all(results)
    return any(results)


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
    code: str | None = None,
) -> Observation:
    """Apply ``rules`` to a response and return what it says.

    ``code`` is the service's error code, for rules that test it.
    """
    last_unknown: Observation | None = None
    for rule in rules:
        if rule.when is not None and not holds(
            rule.when, status, headers, body, code=code
        ):
            continue
        if rule.state is not None:
            return Observation(rule.state, status)
        raw = resolve_pointer(body, rule.pointer or "")
        if raw is MISSING:
            raw = None
        state = _mapped(rule, raw)
        if state is not None:
            return Observation(state, raw)
        if rule.on_unknown == "skip":
            continue
        policy = rule.on_unknown or default_policy
        last_unknown = Observation(None, raw, policy)
        break
    return last_unknown or Observation(None, None, default_policy)


def _mapped(rule: ObserveRule, raw: Any) -> str | None:
    """Return the state ``rule``'s map gives ``raw``, or ``None``; only text is looked up."""
    if not isinstance(raw, str):
        return None
    if rule.ignore_case:
        folded = raw.casefold()
        for value, state in rule.mapping:
            if value.casefold() == folded:
                return state
        return None
    for value, state in rule.mapping:
        if raw == value:
            return state
    return None
