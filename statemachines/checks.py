"""Semantic rules the schema cannot state, each reported as a Problem.

Every rule runs on every lifecycle and reports every violation, so one
``statepoll validate`` run lists all the mistakes of a file.
"""

from __future__ import annotations

import difflib
import re
import string
from collections import deque
from collections.abc import Callable, Iterator

from .errors import Problem
from .pointer import split_pointer
from .spec import Lifecycle, Outcome, Request, Spec

__all__ = ["check_spec"]

_BUILTIN_FIELDS = ("job_id", "item_id")


def check_spec(spec: Spec, file: str) -> list[Problem]:
    """Return every semantic problem of ``spec`` (empty when it is sound)."""
    names = spec.lifecycle_names
    problems: list[Problem] = []
    for lifecycle in spec.lifecycles:
        for check in _CHECKS:
            problems.extend(
                Problem(file, pointer, message) for pointer, message in check(lifecycle)
            )
        if lifecycle.items is not None:
            target = lifecycle.items.lifecycle
            at = f"{lifecycle.items.location}/lifecycle"
            if target not in names:
                problems.append(
                    Problem(
                        file, at, f"unknown lifecycle {target!r}{_hint(target, names)}"
                    )
                )
            elif target == lifecycle.name:
                problems.append(
                    Problem(file, at, "a lifecycle cannot be its own items' lifecycle")
                )
    return sorted(problems, key=lambda p: (split_pointer(p.pointer), p.message))


Found = Iterator[tuple[str, str]]


def _hint(name: str, declared: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, declared, n=1)
    did_you_mean = f"; did you mean {close[0]!r}?" if close else ""
    return f"{did_you_mean or ';'} Declared: {', '.join(declared)}"


def _num(value: float) -> str:
    # Ints print as they are: ":g" converts to float, and 10**400 overflows.
    return str(value) if isinstance(value, int) else f"{value:g}"


def _unknown_state(name: str, lifecycle: Lifecycle) -> str:
    return f"unknown state {name!r}{_hint(name, lifecycle.state_names)}"


def _one_initial(lifecycle: Lifecycle) -> Found:
    initial = [s for s in lifecycle.states if s.initial]
    if not initial:
        yield (
            f"{lifecycle.location}/states",
            'no initial state; mark exactly one state with "initial": true',
        )
    for extra in initial[1:]:
        others = ", ".join(s.name for s in initial)
        yield (
            f"{extra.location}/initial",
            f"more than one initial state ({others}); keep exactly one",
        )


def _states_declared(lifecycle: Lifecycle) -> Found:
    declared = set(lifecycle.state_names)
    named: list[tuple[str, str]] = []
    for t in lifecycle.transitions:
        # A transition's location points at its "to"; its "from" is a sibling.
        named.append((t.location, t.dest))
        named.append((t.source_location, t.source))
    for rule in lifecycle.poll.observe:
        if rule.state is not None:
            named.append((f"{rule.location}/state", rule.state))
        named.extend(
            (f"{rule.location}/map/{_escape(value)}", state)
            for value, state in rule.mapping
        )
    named.extend((o.location, o.state) for o in lifecycle.schedule.per_state)
    if lifecycle.cancel is not None:
        at = lifecycle.cancel.location
        named.extend(
            (f"{at}/from/{i}", s) for i, s in enumerate(lifecycle.cancel.from_states)
        )
        named.extend(
            (f"{at}/leads_to/{i}", s) for i, s in enumerate(lifecycle.cancel.leads_to)
        )
    seen: set[tuple[str, str]] = set()
    for at, name in named:
        if name not in declared and (at, name) not in seen:
            seen.add((at, name))
            yield at, _unknown_state(name, lifecycle)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _terminal_is_final(lifecycle: Lifecycle) -> Found:
    terminal = lifecycle.terminal_states
    for t in lifecycle.transitions:
        if t.source in terminal:
            at = t.source_location
            outcome = lifecycle.state(t.source).outcome
            yield (
                at,
                f"terminal state {t.source!r} (outcome {outcome}) cannot have outgoing transitions",
            )


def _graph(lifecycle: Lifecycle) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in lifecycle.state_names}
    for t in lifecycle.transitions:
        if t.source in graph and t.dest in graph:
            graph[t.source].add(t.dest)
    return graph


def _reach_terminal(lifecycle: Lifecycle) -> Found:
    graph = _graph(lifecycle)
    terminal = lifecycle.terminal_states
    for state in lifecycle.states:
        if state.terminal:
            continue
        seen = {state.name}
        queue = deque([state.name])
        while queue:
            for nxt in graph[queue.popleft()] - seen:
                seen.add(nxt)
                queue.append(nxt)
        if not seen & terminal:
            yield (
                state.location,
                (
                    f"state {state.name!r} cannot reach any terminal state"
                    " (a job there would be polled forever)"
                ),
            )


def _has_success(lifecycle: Lifecycle) -> Found:
    if not any(s.outcome is Outcome.SUCCESS for s in lifecycle.states):
        yield (
            f"{lifecycle.location}/states",
            "no state has outcome 'success'; a job could never succeed",
        )


def _schedule_sound(lifecycle: Lifecycle) -> Found:
    schedule = lifecycle.schedule
    cap = schedule.backoff.max_interval
    if cap is not None and cap < schedule.interval:
        yield (
            f"{schedule.backoff.location}/max_interval",
            f"max_interval ({_num(cap)}) must be >= interval ({_num(schedule.interval)})",
        )
    if schedule.deadline is not None and schedule.deadline < schedule.initial_delay:
        yield (
            schedule.where("deadline"),
            (
                f"deadline ({_num(schedule.deadline)}) must be >= "
                f"initial_delay ({_num(schedule.initial_delay)})"
            ),
        )
    for override in schedule.per_state:
        if override.backoff is not None and override.backoff.max_interval is not None:
            interval = override.interval or schedule.interval
            if override.backoff.max_interval < interval:
                yield (
                    f"{override.backoff.location}/max_interval",
                    (
                        f"max_interval ({_num(override.backoff.max_interval)}) "
                        f"must be >= interval ({_num(interval)})"
                    ),
                )


def _requests(lifecycle: Lifecycle) -> Iterator[Request]:
    if lifecycle.submit is not None:
        yield lifecycle.submit.request
    yield lifecycle.poll.request
    if lifecycle.result is not None:
        yield lifecycle.result.request
    if lifecycle.cancel is not None:
        yield lifecycle.cancel.request
    if lifecycle.items is not None:
        yield lifecycle.items.request


def _requests_resolvable(lifecycle: Lifecycle) -> Found:
    known = {*_BUILTIN_FIELDS, *(i.name for i in lifecycle.inputs)}
    for request in _requests(lifecycle):
        if request.path is None and not request.url:
            yield (
                request.location,
                "a request needs a 'path' template, a 'url' locator, or both",
            )
        templates: list[tuple[str, str]] = []
        if request.path is not None:
            templates.append((f"{request.location}/path", request.path))
        templates.extend(
            (f"{request.location}/query/{_escape(k)}", v) for k, v in request.query
        )
        for at, template in templates:
            try:
                fields = _fields(template)
            except ValueError as exc:
                yield at, f"malformed template {template!r}: {exc}"
                continue
            for field in fields:
                # Item lifecycles also see their parent's inputs, unknown here.
                if field not in known and not lifecycle.item_only:
                    hint = _hint(field, tuple(sorted(known)))
                    yield at, f"unknown template field {{{field}}}{hint}"
        for locator in request.url:
            if locator.pattern is not None:
                yield from _pattern_ok(locator.pattern, f"{locator.location}/pattern")
    if lifecycle.submit is not None:
        for locator in lifecycle.submit.job_id:
            if locator.pattern is not None:
                yield from _pattern_ok(locator.pattern, f"{locator.location}/pattern")


def _fields(template: str) -> list[str]:
    """Return the template's field names.

    Raises:
        ValueError: for a malformed template (an unclosed brace).
    """
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def _pattern_ok(pattern: str, at: str) -> Found:
    try:
        re.compile(pattern)
    except re.error as exc:
        yield at, f"invalid regular expression: {exc}"


def _cancel_path_legal(lifecycle: Lifecycle) -> Found:
    cancel = lifecycle.cancel
    if cancel is None:
        return
    legal = {(t.source, t.dest) for t in lifecycle.transitions}
    first = cancel.leads_to[0]
    for i, source in enumerate(cancel.from_states):
        if (source, first) not in legal:
            yield (
                f"{cancel.location}/from/{i}",
                f"no transition from {source!r} to {first!r}, where a cancel leads",
            )
    for i, (a, b) in enumerate(zip(cancel.leads_to, cancel.leads_to[1:], strict=False)):
        if (a, b) not in legal:
            yield (
                f"{cancel.location}/leads_to/{i + 1}",
                f"no transition from {a!r} to {b!r}",
            )


_CHECKS: tuple[Callable[[Lifecycle], Found], ...] = (
    _one_initial,
    _states_declared,
    _terminal_is_final,
    _reach_terminal,
    _has_success,
    _schedule_sound,
    _requests_resolvable,
    _cancel_path_legal,
)
