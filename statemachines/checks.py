"""Semantic rules the schema cannot state, each reported as a Problem.

Every rule runs on every lifecycle and reports every violation, so one
``statepoll validate`` run lists all the mistakes of a file.
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Callable, Iterator
from typing import Literal

from .errors import Problem, TemplateError, in_pointer_order, shorten
from .pointer import escape
from .spec import Lifecycle, Outcome, Request, Spec, Then
from .template import Template, Variable

__all__ = ["check_chain_target", "check_spec"]

_BUILTIN_FIELDS = ("job_id", "item_id")


def check_spec(spec: Spec, file: str) -> list[Problem]:
    """Return every semantic problem of ``spec`` (empty when it is sound).

    Errors and warnings together, in pointer order; only errors stop a load.
    """
    names = spec.lifecycle_names
    problems: list[Problem] = []
    for lifecycle in spec.lifecycles:
        for check in _CHECKS:
            problems.extend(
                Problem(file, pointer, message) for pointer, message in check(lifecycle)
            )
        for check in _WARNINGS:
            problems.extend(
                Problem(file, pointer, message, severity="warning")
                for pointer, message in check(lifecycle)
            )
        if lifecycle.items is not None:
            target = lifecycle.items.lifecycle
            at = f"{lifecycle.items.location}/lifecycle"
            if target not in names:
                problems.append(
                    Problem(
                        file,
                        at,
                        f"unknown lifecycle {shorten(target)!r}{_hint(target, names)}",
                    )
                )
            elif target == lifecycle.name:
                problems.append(
                    Problem(file, at, "a lifecycle cannot be its own items' lifecycle")
                )
    problems.extend(Problem(file, at, message) for at, message in _chains_sound(spec))
    return in_pointer_order(problems)


Found = Iterator[tuple[str, str]]


def _hint(name: str, declared: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, declared, n=1)
    did_you_mean = f"; did you mean {close[0]!r}?" if close else ""
    return f"{did_you_mean or ';'} Declared: {', '.join(declared)}"


def _num(value: float) -> str:
    # Ints print as they are: ":g" converts to float, and 10**400 overflows.
    return str(value) if isinstance(value, int) else f"{value:g}"


def _unknown_state(name: str, lifecycle: Lifecycle) -> str:
    return f"unknown state {shorten(name)!r}{_hint(name, lifecycle.state_names)}"


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
            (f"{rule.location}/map/{escape(value)}", state)
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


def _reached(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    """Return every state reachable from ``start`` along ``edges`` (itself included)."""
    seen = set(start)
    queue = deque(start)
    while queue:
        for nxt in edges[queue.popleft()] - seen:
            seen.add(nxt)
            queue.append(nxt)
    return seen


def _edges(lifecycle: Lifecycle, *, backwards: bool = False) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in lifecycle.state_names}
    for t in lifecycle.transitions:
        if t.source in edges and t.dest in edges:
            source, dest = (t.dest, t.source) if backwards else (t.source, t.dest)
            edges[source].add(dest)
    return edges


def _reach_terminal(lifecycle: Lifecycle) -> Found:
    # One search backwards from the terminal states, not one per state: a
    # hostile file may declare 100,000 states.
    leads_out = _reached(
        set(lifecycle.terminal_states), _edges(lifecycle, backwards=True)
    )
    for state in lifecycle.states:
        if state.name not in leads_out:
            yield (
                state.location,
                (
                    f"state {shorten(state.name)!r} cannot reach any terminal state"
                    " (a job there would be polled forever)"
                ),
            )


def _reachable_from_initial(lifecycle: Lifecycle) -> Found:
    initial = [s.name for s in lifecycle.states if s.initial]
    if len(initial) != 1:
        return  # _one_initial reports it; any choice here would be a guess
    reached = _reached(set(initial), _edges(lifecycle))
    for state in lifecycle.states:
        if state.name not in reached:
            yield (
                state.location,
                (
                    f"state {shorten(state.name)!r} cannot be reached from the "
                    f"initial state {shorten(initial[0])!r}; add a transition into it "
                    "or remove it"
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
    if lifecycle.lookup is not None:
        yield lifecycle.lookup.request
    yield lifecycle.poll.request
    if lifecycle.result is not None:
        yield lifecycle.result.request
    if lifecycle.cancel is not None:
        yield lifecycle.cancel.request
    if lifecycle.items is not None:
        yield lifecycle.items.request


def _requests_resolvable(lifecycle: Lifecycle) -> Found:
    known = {*_BUILTIN_FIELDS, *(i.name for i in lifecycle.inputs)}
    if lifecycle.submit is not None and lifecycle.submit.client_ref is not None:
        known.add("client_ref")
    for request in _requests(lifecycle):
        if request.path is None and not request.url:
            yield (
                request.location,
                "a request needs a 'path' template, a 'url' locator, or both",
            )
        templates: list[tuple[str, str, Literal["path", "query"]]] = []
        if request.path is not None:
            templates.append((f"{request.location}/path", request.path, "path"))
        templates.extend(
            (f"{request.location}/query/{escape(k)}", v, "query")
            for k, v in request.query
        )
        for at, text, where in templates:
            yield from _template_sound(text, at, where, known, lifecycle)
        for locator in request.url:
            if locator.pattern is not None:
                yield from _pattern_ok(locator.pattern, f"{locator.location}/pattern")
    for block in (lifecycle.submit, lifecycle.lookup):
        for locator in block.job_id if block is not None else ():
            if locator.pattern is not None:
                yield from _pattern_ok(locator.pattern, f"{locator.location}/pattern")


def _client_ref_sound(lifecycle: Lifecycle) -> Found:
    submit = lifecycle.submit
    ref = submit.client_ref if submit is not None else None
    if ref is not None and ref.input is not None:
        names = tuple(i.name for i in lifecycle.inputs)
        if ref.input not in names:
            yield (
                f"{ref.location}/input",
                f"unknown input {ref.input!r}{_hint(ref.input, names)}",
            )
    if lifecycle.lookup is not None and ref is None:
        yield (
            lifecycle.lookup.location,
            (
                "a lookup finds a submission by its client reference: "
                "declare submit.client_ref (an input or a header) to send one"
            ),
        )


def _template_sound(
    text: str,
    at: str,
    where: Literal["path", "query"],
    known: set[str],
    lifecycle: Lifecycle,
) -> Found:
    try:
        template = Template.parse(text)
    except TemplateError as exc:
        yield at, f"malformed {exc}"
        return
    if where == "path" and not text.startswith("/"):
        yield (
            at,
            f"a path must start with '/' (it follows the base URL): {shorten(text)!r}",
        )
    if where == "query":
        reserved = {
            p: None for p in template.parts if isinstance(p, Variable) and p.reserved
        }
        for variable in reserved:
            yield (
                at,
                (
                    f"reserved expansion {variable} is not allowed in a query value "
                    f"(the engine encodes query values whole); write {{{variable.name}}}"
                ),
            )
    for name in template.variables:
        # Item lifecycles also see their parent's inputs, unknown here.
        if name not in known and not lifecycle.item_only:
            hint = _hint(name, tuple(sorted(known)))
            yield at, f"unknown template field {{{name}}}{hint}"


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


def _produced(lifecycle: Lifecycle) -> Found:
    """Warn about states no response or cancel can put a job in."""
    produced = {s.name for s in lifecycle.states if s.initial}
    for rule in lifecycle.poll.observe:
        if rule.state is not None:
            produced.add(rule.state)
        produced.update(state for _, state in rule.mapping)
    if lifecycle.cancel is not None:
        produced.update(lifecycle.cancel.leads_to)
    for state in lifecycle.states:
        if state.name in produced:
            continue
        if state.terminal:
            fate = "so no job can ever end in it"
        else:
            fate = "so a job only passes through it when a later state is observed"
        yield (
            state.location,
            (
                f"no observe rule and no cancel leads to state {shorten(state.name)!r}, "
                f"{fate}"
            ),
        )


def _progress_sound(lifecycle: Lifecycle) -> Found:
    progress = lifecycle.poll.progress
    if progress is None:
        return
    at = progress.location
    counts = progress.done is not None or progress.total is not None
    if lifecycle.item_only:
        yield (
            at,
            (
                "progress is read on a job's polls; this lifecycle only tracks items "
                "(declare it on the job's lifecycle)"
            ),
        )
    if progress.pointer is not None and counts:
        yield at, "give pointer (a number out of max) or done and total, not both"
    elif progress.pointer is None and progress.max_value is not None:
        yield f"{at}/max", "max is what pointer's number is out of: add pointer"
    if progress.done is not None and progress.total is None:
        yield f"{at}/done", "done needs total beside it (the count in all)"
    if progress.total is not None and progress.done is None:
        yield f"{at}/total", "total needs done beside it (the count done)"
    if progress.done is not None and progress.done == progress.total:
        yield f"{at}/total", "done and total are the same pointer: always complete"
    if progress.pointer is None and not counts and progress.max_value is None:
        yield at, "give pointer (a number out of max, 100 by default) or done and total"


def _chains_sound(spec: Spec) -> Found:
    """Each ``then`` starts a lifecycle that can be submitted with what it is given."""
    names = spec.lifecycle_names
    targets: dict[str, set[str]] = {name: set() for name in names}
    for lifecycle in spec.lifecycles:
        for state in lifecycle.states:
            then = state.then
            if then is None:
                continue
            if state.outcome is not Outcome.SUCCESS:
                what = state.outcome.value if state.outcome else "not terminal"
                yield (
                    then.location,
                    (
                        f"only a success state can start another lifecycle ({state.name}: "
                        f"{what})"
                    ),
                )
            yield from _then_inputs_own(lifecycle, then)
            if _elsewhere(spec, then):
                continue  # checked when it is bound: see check_chain_target
            if then.lifecycle not in names:
                yield (
                    f"{then.location}/lifecycle",
                    (
                        f"unknown lifecycle {shorten(then.lifecycle)!r}"
                        f"{_hint(then.lifecycle, names)}"
                    ),
                )
                continue
            targets[lifecycle.name].add(then.lifecycle)
            yield from _then_target(spec.lifecycle(then.lifecycle), then)
    for lifecycle in spec.lifecycles:
        for state in lifecycle.states:
            then = state.then
            if then is None or then.lifecycle not in names or _elsewhere(spec, then):
                continue
            path = _chain_back(targets, then.lifecycle, lifecycle.name)
            if path is not None:
                loop = " -> ".join((lifecycle.name, *path))
                yield (
                    f"{then.location}/lifecycle",
                    f"the chain comes back ({loop}): a chain must end",
                )


def check_chain_target(then: Then, target: Spec) -> list[tuple[str, str]]:
    """Return what is wrong with ``then`` starting a lifecycle of ``target``, another spec.

    Each problem is ``(pointer, message)``, the pointer into the spec that
    holds ``then``: the lifecycle is unknown, has no submit, or is not given
    its required inputs.
    """
    names = target.lifecycle_names
    if then.lifecycle not in names:
        message = (
            f"unknown lifecycle {shorten(then.lifecycle)!r} of spec {target.name!r}"
            f"{_hint(then.lifecycle, names)}"
        )
        return [(f"{then.location}/lifecycle", message)]
    return list(_then_target(target.lifecycle(then.lifecycle), then))


def _elsewhere(spec: Spec, then: Then) -> bool:
    return then.spec is not None and then.spec != spec.name


def _then_inputs_own(lifecycle: Lifecycle, then: Then) -> Found:
    own = tuple(i.name for i in lifecycle.inputs)
    for source in then.inputs:
        if source.input is not None and source.input not in own:
            yield (
                f"{source.location}/input",
                (
                    f"unknown input {shorten(source.input)!r} of this lifecycle"
                    f"{_hint(source.input, own)}"
                ),
            )


def _then_target(target: Lifecycle, then: Then) -> Found:
    at = f"{then.location}/lifecycle"
    if target.item_only or target.submit is None:
        yield (
            at,
            f"lifecycle {target.name!r} has no submit: a chained job is submitted",
        )
        return
    declared = tuple(i.name for i in target.inputs)
    for source in then.inputs:
        if source.name not in declared:
            yield (
                source.location,
                (
                    f"unknown input {shorten(source.name)!r} of lifecycle "
                    f"{target.name!r}{_hint(source.name, declared)}"
                ),
            )
    given = {source.name for source in then.inputs}
    missing = [
        i.name
        for i in target.inputs
        if i.required and i.default is None and i.name not in given
    ]
    if missing:
        yield (
            then.location,
            (
                f"missing required input(s) of lifecycle {target.name!r}: "
                + ", ".join(missing)
            ),
        )


def _chain_back(
    targets: dict[str, set[str]], start: str, home: str
) -> tuple[str, ...] | None:
    """Return a path of chained lifecycles from ``start`` back to ``home``, if any."""
    paths: deque[tuple[str, ...]] = deque([(start,)])
    seen = {start}
    while paths:
        path = paths.popleft()
        if path[-1] == home:
            return path
        for target in sorted(targets[path[-1]]):
            if target not in seen:
                seen.add(target)
                paths.append((*path, target))
    return None


_CHECKS: tuple[Callable[[Lifecycle], Found], ...] = (
    _client_ref_sound,
    _one_initial,
    _states_declared,
    _terminal_is_final,
    _reach_terminal,
    _reachable_from_initial,
    _has_success,
    _schedule_sound,
    _requests_resolvable,
    _cancel_path_legal,
    _progress_sound,
)
_WARNINGS: tuple[Callable[[Lifecycle], Found], ...] = (_produced,)
