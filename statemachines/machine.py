"""Lifecycle → one shared ``transitions.Machine``; the only importer of transitions.

One machine is built per lifecycle (``model=None``, ``auto_transitions=False``)
and shared by every job of that lifecycle. Jobs are never ``add_model``-ed:
transitions binds ~23 attributes (6.7 KB) to every added model and scans a
list on add/remove, which made 100,000 adds take 72 s (DESIGN). Instead the
engine fires ``machine.events[trigger].trigger(job)`` on any object with a
``state`` attribute, which costs nothing per job and ~7 µs per transition.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol

import attrs
from transitions import Machine, MachineError

from .errors import IllegalTransitionError
from .spec import Lifecycle

__all__ = ["LifecycleMachine", "Stateful", "build_machine", "trigger_name"]


class Stateful(Protocol):
    """Anything with a mutable ``state`` attribute (a job record)."""

    state: str


def trigger_name(dest: str) -> str:
    """Return the event name that moves a job into ``dest``."""
    return f"to_{dest}"


@attrs.frozen(eq=False)
class LifecycleMachine:
    """A compiled lifecycle: the shared machine plus O(1) legality lookups."""

    lifecycle: Lifecycle
    machine: Machine = attrs.field(repr=False)
    #: Every legal ``(source, dest)`` pair.
    legal: frozenset[tuple[str, str]]
    _successors: Mapping[str, tuple[str, ...]] = attrs.field(repr=False)
    _terminal: frozenset[str] = attrs.field(repr=False)
    _paths: dict[tuple[str, str], tuple[str, ...] | None] = attrs.field(
        factory=dict, repr=False
    )

    def is_legal(self, source: str, dest: str) -> bool:
        """Whether ``source`` → ``dest`` is a declared move."""
        return (source, dest) in self.legal

    def path(self, source: str, dest: str) -> tuple[str, ...] | None:
        """Return the shortest legal path from ``source`` to ``dest`` (excluding ``source``).

        Intermediate states are never terminal. ``None`` when there is none;
        a direct move gives ``(dest,)``. Results are memoised per pair.
        """
        key = (source, dest)
        if key in self._paths:
            return self._paths[key]
        found: tuple[str, ...] | None = None
        previous: dict[str, str] = {source: source}
        queue = deque([source])
        while queue and found is None:
            node = queue.popleft()
            if node != source and node in self._terminal:
                continue
            for nxt in self._successors.get(node, ()):
                if nxt in previous:
                    continue
                previous[nxt] = node
                if nxt == dest:
                    steps = [nxt]
                    while previous[steps[-1]] != source:
                        steps.append(previous[steps[-1]])
                    found = tuple(reversed(steps))
                    break
                queue.append(nxt)
        self._paths[key] = found
        return found

    def fire(self, job: Stateful, dest: str) -> None:
        """Move ``job`` into ``dest`` through the machine.

        Raises:
            IllegalTransitionError: if the move is not declared.
        """
        event = self.machine.events.get(trigger_name(dest))
        if event is None or (job.state, dest) not in self.legal:
            raise IllegalTransitionError(self.lifecycle.name, job.state, dest)
        try:
            event.trigger(job)
        except MachineError as exc:
            raise IllegalTransitionError(self.lifecycle.name, job.state, dest) from exc


@cache
def build_machine(lifecycle: Lifecycle) -> LifecycleMachine:
    """Compile ``lifecycle`` into one shared machine (memoised per lifecycle)."""
    machine: Any = Machine(
        model=None,
        states=list(lifecycle.state_names),
        initial=lifecycle.initial,
        auto_transitions=False,
        send_event=False,
        queued=False,
    )
    successors: dict[str, list[str]] = {name: [] for name in lifecycle.state_names}
    legal: set[tuple[str, str]] = set()
    for t in lifecycle.transitions:
        if (t.source, t.dest) in legal:
            continue
        legal.add((t.source, t.dest))
        successors[t.source].append(t.dest)
        machine.add_transition(trigger_name(t.dest), t.source, t.dest)
    return LifecycleMachine(
        lifecycle=lifecycle,
        machine=machine,
        legal=frozenset(legal),
        successors={k: tuple(v) for k, v in successors.items()},
        terminal=lifecycle.terminal_states,
    )
