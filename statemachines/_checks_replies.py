"""Semantic checks of how replies are read: conditions, value maps and errors.

Each condition tests only what its use can see, a ``*`` token stands for
every element only with ``match``, error codes are read before they are
tested, a case-blind map is unambiguous, and the error sources' patterns
compile.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from ._checks_base import Found, pattern_ok
from .errors import shorten
from .pointer import WILDCARD, escape, has_wildcard
from .spec import Condition, Lifecycle

__all__ = [
    "conditions_sound",
    "error_codes_observed",
    "literal_stars",
    "maps_sound",
    "replies_sound",
]

#: Where a condition is used decides what it may test.
Use = Literal["observe", "errors", "paging", "hint"]
_VALUE_TESTS = frozenset({"equals", "in", "exists", "lt", "le", "gt", "ge"})
_HEADER_ONLY = (
    "a wait hint's condition reads headers only: test a header's presence or value"
)


def _conditions(lifecycle: Lifecycle) -> Iterator[tuple[Condition, Use]]:
    """Yield every condition of ``lifecycle``, nested ones included, with its use."""
    found: list[tuple[Condition, Use]] = [
        (rule.when, "observe") for rule in lifecycle.poll.observe if rule.when
    ]
    found.extend((rule.when, "errors") for rule in lifecycle.errors.rules)
    if lifecycle.items is not None and lifecycle.items.paging.stop_when is not None:
        found.append((lifecycle.items.paging.stop_when, "paging"))
    found.extend(
        (hint.when, "hint")
        for hint in lifecycle.schedule.retry_after.hints
        if hint.when is not None
    )
    while found:
        condition, use = found.pop()
        yield condition, use
        found.extend((child, use) for child in condition.children)


def conditions_sound(lifecycle: Lifecycle) -> Found:
    for condition, use in _conditions(lifecycle):
        at = condition.location
        kind = condition.kind
        if (
            use == "hint"
            and condition.header is None
            and kind not in {"header", "all", "any", "not"}
        ):
            yield at, _HEADER_ONLY
        elif kind == "error":
            yield from _error_condition_sound(condition, use, lifecycle)
        elif kind in _VALUE_TESTS and condition.header is not None:
            yield from _header_values_text(condition)
        elif condition.match is not None and not has_wildcard(condition.pointer):
            yield (
                f"{at}/match",
                (
                    f"'match' needs a '{WILDCARD}' token in the pointer to stand for "
                    f"every element (e.g. /items/{WILDCARD}/status): "
                    f"{shorten(condition.pointer)!r} names one value"
                ),
            )


def _error_condition_sound(
    condition: Condition, use: Use, lifecycle: Lifecycle
) -> Found:
    at = f"{condition.location}/error"
    if use == "paging":
        yield (
            at,
            "a page's error code is not read: test the page's status or body instead",
        )
    elif condition.values and not lifecycle.errors.reads_code:
        yield (
            at,
            (
                "the service's error code is never read: say where it is with "
                "errors.code_pointer or errors.code_from"
            ),
        )


def _header_values_text(condition: Condition) -> Found:
    if condition.kind not in {"equals", "in"}:
        return
    for i, value in enumerate(condition.values):
        if not isinstance(value, str):
            at = condition.location + (
                "/equals" if condition.kind == "equals" else f"/in/{i}"
            )
            yield (
                at,
                (
                    f"a header's value is text: compare with a string such as "
                    f"'{value}', or use lt, le, gt or ge for numbers"
                ),
            )


def literal_stars(lifecycle: Lifecycle) -> Found:
    """Warn about a '*' token that is read as a member name (no 'match')."""
    for condition, _use in _conditions(lifecycle):
        if (
            condition.kind in _VALUE_TESTS
            and condition.header is None
            and condition.match is None
            and has_wildcard(condition.pointer)
        ):
            yield (
                f"{condition.location}/pointer",
                (
                    f"'{WILDCARD}' is read as a member named '{WILDCARD}' here; add "
                    '"match": "all" or "any" to test every element'
                ),
            )


def error_codes_observed(lifecycle: Lifecycle) -> Found:
    """Warn about an observe rule testing an error code no error reply reaches."""
    errors = lifecycle.errors
    observed = any(rule.verdict == "observe" for rule in errors.rules) or any(
        status >= 400 and status not in errors.fatal_status + errors.retry_status
        for status in lifecycle.poll.request.expect_status
    )
    if observed:
        return
    for rule in lifecycle.poll.observe:
        tests = [rule.when] if rule.when is not None else []
        while tests:
            condition = tests.pop()
            tests.extend(condition.children)
            if condition.kind == "error" and condition.exists:
                yield f"{condition.location}/error", _unobserved(condition)


def _unobserved(condition: Condition) -> str:
    # The advice names this rule's own code: a rule observing every error
    # would stop 5xx and 429 from being retried.
    narrow = (
        f'{{"error": "{condition.values[0]}"}}'
        if condition.values
        else '{"status": 404}'
    )
    return (
        "an error reply is never observed here: add an errors rule such as "
        f'{{"when": {narrow}, "as": "observe"}} so that this rule sees it'
    )


def maps_sound(lifecycle: Lifecycle) -> Found:
    for rule in lifecycle.poll.observe:
        if not rule.ignore_case:
            continue
        if not rule.mapping:
            yield (
                f"{rule.location}/ignore_case",
                "ignore_case applies to a value map, and this rule has none",
            )
        first: dict[str, tuple[str, str]] = {}
        for value, state in rule.mapping:
            seen = first.setdefault(value.casefold(), (value, state))
            if seen[1] != state:
                yield (
                    f"{rule.location}/map/{escape(value)}",
                    (
                        f"{shorten(value)!r} and {shorten(seen[0])!r} are the same "
                        f"ignoring case but lead to different states "
                        f"({shorten(state)}, {shorten(seen[1])})"
                    ),
                )


def replies_sound(lifecycle: Lifecycle) -> Found:
    """Jitter's minimum and the error sources' patterns."""
    jitter = lifecycle.schedule.jitter
    if jitter.min and jitter.kind != "full":
        yield (
            f"{lifecycle.schedule.where('jitter')}/min",
            (
                f"min applies to full jitter (drawn from [min, delay]), not to "
                f"{jitter.kind!r}: set kind to 'full' or remove min"
            ),
        )
    errors = lifecycle.errors
    for source in (*errors.code_from, *errors.message_from):
        if source.pattern is not None:
            yield from pattern_ok(source.pattern, f"{source.location}/pattern")
