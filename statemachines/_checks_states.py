"""Semantic checks of a lifecycle's structure: its states, moves and schedule.

One initial state, every named state declared, terminal states final, every
state reachable and able to end, a success to reach, a cancel that follows
legal moves, and a schedule whose bounds agree.
"""

from __future__ import annotations

from collections import deque

from ._checks_base import Found, name_hint
from .errors import shorten
from .pointer import escape
from .spec import Lifecycle, Outcome

__all__ = [
    "cancel_path_legal",
    "has_success",
    "one_initial",
    "produced",
    "reach_terminal",
    "reachable_from_initial",
    "schedule_sound",
    "states_declared",
    "terminal_is_final",
]


def _num(value: float) -> str:
    # Ints print as they are: ":g" converts to float, and 10**400 overflows.
    return str(value) if isinstance(value, int) else f"{value:g}"


def _unknown_state(name: str, lifecycle: Lifecycle) -> str:
    return f"unknown state {shorten(name)!r}{name_hint(name, lifecycle.state_names)}"


def one_initial(lifecycle: Lifecycle) -> Found:
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


def states_declared(lifecycle: Lifecycle) -> Found:
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


def terminal_is_final(lifecycle: Lifecycle) -> Found:
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


def reach_terminal(lifecycle: Lifecycle) -> Found:
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


def reachable_from_initial(lifecycle: Lifecycle) -> Found:
    initial = [s.name for s in lifecycle.states if s.initial]
    if len(initial) != 1:
        return  # one_initial reports it; any choice here would be a guess
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


def has_success(lifecycle: Lifecycle) -> Found:
    if not any(s.outcome is Outcome.SUCCESS for s in lifecycle.states):
        yield (
            f"{lifecycle.location}/states",
            "no state has outcome 'success'; a job could never succeed",
        )


def schedule_sound(lifecycle: Lifecycle) -> Found:
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


def cancel_path_legal(lifecycle: Lifecycle) -> Found:
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


def produced(lifecycle: Lifecycle) -> Found:
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
