"""Move a job or an item to the state a response shows: legal, inferred, illegal or unknown.

One function for jobs and items alike, under the lifecycle's own policy:
skipped states are inferred along the shortest legal path (or the jump is
illegal, by ``skipped_states``), an illegal move is refused or fails the job
(``illegal_transition``), and a value no rule maps is reported (the
observation's own policy, from the rule or ``unknown_state``). Every move goes
through the lifecycle's shared ``transitions`` machine.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from engine._core.observe import Observation
from engine._core.state import Record
from engine._errors import RemoteKind
from statemachines import Lifecycle, LifecycleMachine

__all__ = ["Advanced", "Stateful", "advance", "path_to"]


class Stateful(Protocol):
    """What the machine moves: anything with a mutable ``state``."""

    state: str


@attrs.frozen
class Advanced:
    """What applying one observation did.

    ``entered`` lists the states entered, in order (inferred ones first; empty
    when nothing changed or the move was refused). ``failure`` is set when the
    policy says the job must end: ``(kind, message)`` with kind
    ``illegal_transition`` or ``unknown_state``.
    """

    records: tuple[Record, ...]
    entered: tuple[str, ...] = ()
    failure: tuple[RemoteKind, str] | None = None


def path_to(
    machine: LifecycleMachine, lifecycle: Lifecycle, source: str, dest: str
) -> tuple[str, ...] | None:
    """Return the states to enter to go from ``source`` to ``dest``, or ``None`` if illegal.

    ``()`` when they are the same. With ``skipped_states: infer`` a jump over
    short states follows the shortest legal path; otherwise only a declared
    move is legal.
    """
    if source == dest:
        return ()
    if lifecycle.policy.skipped_states == "infer":
        return machine.path(source, dest)
    return (dest,) if machine.is_legal(source, dest) else None


def advance(
    machine: LifecycleMachine,
    lifecycle: Lifecycle,
    holder: Stateful,
    seen: Observation,
    *,
    trigger: str,
    http_status: int | None,
    item_id: str | None = None,
) -> Advanced:
    """Move ``holder`` (a job's state copy, or an item cursor) to what ``seen`` shows.

    Records ``transition`` (or ``item_transition`` when ``item_id`` is given)
    for each state entered, ``illegal_transition`` or ``unknown_state`` when
    the observation cannot be applied.
    """
    item: dict[str, Any] = (
        {"item_id": item_id, "item_lifecycle": lifecycle.name} if item_id else {}
    )
    source = holder.state
    if seen.state is None:
        policy = seen.unknown or lifecycle.policy.unknown_state
        record = Record(
            kind="unknown_state",
            from_state=source,
            trigger=trigger,
            http_status=http_status,
            observed=seen.raw,
            detail={"policy": policy},
            **item,
        )
        failure: tuple[RemoteKind, str] | None = None
        if policy == "fail":
            failure = ("unknown_state", f"unknown state value {_short(seen.raw)}")
        return Advanced((record,), failure=failure)
    path = path_to(machine, lifecycle, source, seen.state)
    if path is None:
        policy = lifecycle.policy.illegal_transition
        record = Record(
            kind="illegal_transition",
            from_state=source,
            to_state=seen.state,
            trigger=trigger,
            http_status=http_status,
            observed=seen.raw,
            detail={"policy": policy},
            **item,
        )
        failure = None
        if policy == "fail":
            failure = (
                "illegal_transition",
                f"illegal transition {source} -> {seen.state}",
            )
        return Advanced((record,), failure=failure)
    records = []
    kind = "item_transition" if item_id else "transition"
    for index, step in enumerate(path):
        inferred = index < len(path) - 1
        records.append(
            Record(
                kind=kind,
                from_state=holder.state,
                to_state=step,
                trigger="inferred" if inferred else trigger,
                http_status=http_status,
                observed=seen.raw,
                **item,
            )
        )
        machine.fire(holder, step)
    return Advanced(tuple(records), entered=path)


def _short(value: Any) -> str:
    """Return ``repr(value)`` cut to a readable length (a hostile server picks the value)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
