"""Build what reads replies: conditions, observe rules, error sources and progress.

The reply-reading half of the model builder; ``_build`` assembles the lifecycle.
"""

from __future__ import annotations

from typing import Any, Literal

from ._build_base import Doc, as_list
from .spec import Condition, ErrorSource, ObserveRule, Progress

__all__ = ["condition", "error_sources", "observe_rule", "progress"]

_COMPARISONS: tuple[Literal["lt", "le", "gt", "ge"], ...] = ("lt", "le", "gt", "ge")


def condition(raw: Doc, at: str) -> Condition:
    if "status" in raw:
        return Condition(
            kind="status", status=tuple(as_list(raw["status"])), location=at
        )
    if "header" in raw and len(raw) == 1:
        return Condition(kind="header", header=raw["header"], location=at)
    for kind in ("all", "any"):
        if kind in raw:
            children = tuple(
                condition(c, f"{at}/{kind}/{i}") for i, c in enumerate(raw[kind])
            )
            return Condition(kind=kind, children=children, location=at)
    if "not" in raw:
        child = condition(raw["not"], f"{at}/not")
        return Condition(kind="not", children=(child,), location=at)
    if "error" in raw:
        return _error_condition(raw["error"], at)
    return _value_test(raw, at)


def _error_condition(value: Any, at: str) -> Condition:
    if isinstance(value, bool):
        return Condition(kind="error", exists=value, location=at)
    return Condition(kind="error", values=tuple(as_list(value)), location=at)


def _value_test(raw: Doc, at: str) -> Condition:
    """Build a value test on a header's text or on the value at a (wildcard) pointer."""
    source: dict[str, Any] = (
        {"header": raw["header"]} if "header" in raw else {"pointer": raw["pointer"]}
    )
    source["match"] = raw.get("match")
    if "equals" in raw:
        return Condition(kind="equals", values=(raw["equals"],), location=at, **source)
    if "in" in raw:
        return Condition(kind="in", values=tuple(raw["in"]), location=at, **source)
    for kind in _COMPARISONS:
        if kind in raw:
            return Condition(kind=kind, values=(raw[kind],), location=at, **source)
    return Condition(kind="exists", exists=raw["exists"], location=at, **source)


def observe_rule(raw: Doc, at: str) -> ObserveRule:
    return ObserveRule(
        when=condition(raw["when"], f"{at}/when") if "when" in raw else None,
        state=raw.get("state"),
        pointer=raw.get("pointer"),
        mapping=tuple(raw.get("map", {}).items()),
        on_unknown=raw.get("on_unknown"),
        description=raw.get("description", ""),
        ignore_case=raw.get("ignore_case", False),
        location=at,
    )


def error_sources(raw: Any, at: str) -> tuple[ErrorSource, ...]:
    if isinstance(raw, dict):
        return (_error_source(raw, at),)
    return tuple(_error_source(r, f"{at}/{i}") for i, r in enumerate(raw))


def _error_source(raw: Doc, at: str) -> ErrorSource:
    return ErrorSource(
        pointer=raw.get("pointer"),
        header=raw.get("header"),
        pattern=raw.get("pattern"),
        location=at,
    )


def progress(raw: Doc, at: str) -> Progress:
    return Progress(
        pointer=raw.get("pointer"),
        max_value=raw.get("max"),
        done=raw.get("done"),
        total=raw.get("total"),
        location=at,
    )
