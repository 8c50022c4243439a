"""Frozen event classes the engine emits to hooks.

Events are built on the hot path and only by the engine, so they carry no
validators (STYLE 3.3). Every event names its job (service, lifecycle, job id),
the state it is in, the attempt, the last HTTP status and the next delay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final

import attrs

from statemachines import Outcome

if TYPE_CHECKING:
    from engine._core.state import JobResult

__all__ = [
    "EVENT_NAMES",
    "Completed",
    "Entered",
    "Errored",
    "Event",
    "HookFailed",
    "IllegalTransition",
    "ItemTransition",
    "Polled",
    "Retrying",
    "Submitted",
    "TimedOut",
    "TransitionEvent",
    "UnknownState",
]


@attrs.frozen(kw_only=True)
class Event:
    """Fields every event has."""

    name: ClassVar[str] = "event"
    service: str
    lifecycle: str
    job_id: str
    state: str
    attempt: int = 0
    http_status: int | None = None
    next_delay: float | None = None
    time: float = 0.0


@attrs.frozen(kw_only=True)
class Submitted(Event):
    """A job was submitted (or adopted by id: ``adopted`` is true)."""

    name: ClassVar[str] = "submitted"
    adopted: bool = False


@attrs.frozen(kw_only=True)
class Polled(Event):
    """A poll was answered and read (``observed`` is the raw value).

    ``progress`` is the fraction done (0..1) this answer reported, where the
    spec reads one (``poll.progress``); ``None`` when it said nothing.
    """

    name: ClassVar[str] = "polled"
    observed: Any = None
    changed: bool = False
    progress: float | None = None


@attrs.frozen(kw_only=True)
class Retrying(Event):
    """A request failed transiently; it is retried after ``delay`` seconds.

    ``failures`` counts consecutive transient failures, ``budget`` is the
    spec's retry budget: when ``failures`` passes it, the job ends errored.
    """

    name: ClassVar[str] = "retrying"
    kind: str
    error: str
    delay: float
    failures: int
    budget: int


@attrs.frozen(kw_only=True)
class TransitionEvent(Event):
    """The job moved ``source`` → ``dest`` (``inferred`` when a poll skipped it)."""

    name: ClassVar[str] = "transition"
    source: str
    dest: str
    trigger: str = "poll"
    inferred: bool = False


@attrs.frozen(kw_only=True)
class Entered(Event):
    """The job entered ``state`` (after the transition committed)."""

    name: ClassVar[str] = "entered"
    provisional: bool = False


@attrs.frozen(kw_only=True)
class Completed(Event):
    """The job reached a terminal state with ``outcome``; ``result`` is how it ended."""

    name: ClassVar[str] = "completed"
    outcome: Outcome | None
    result: JobResult | None = None


@attrs.frozen(kw_only=True)
class TimedOut(Event):
    """The job ran out of attempts or time; polling stopped."""

    name: ClassVar[str] = "timed_out"
    reason: str


@attrs.frozen(kw_only=True)
class Errored(Event):
    """The job ended with a classified remote error."""

    name: ClassVar[str] = "errored"
    kind: str
    code: str | None = None
    message: str = ""


@attrs.frozen(kw_only=True)
class IllegalTransition(Event):
    """A poll observed ``dest``, not a legal move from ``state`` (or an item's: ``item_id``)."""

    name: ClassVar[str] = "illegal_transition"
    dest: str
    observed: Any = None
    policy: str = "reject"
    item_id: str | None = None


@attrs.frozen(kw_only=True)
class UnknownState(Event):
    """A poll observed a value that maps to no state (of the job, or of item ``item_id``)."""

    name: ClassVar[str] = "unknown_state"
    observed: Any = None
    policy: str = "reject"
    item_id: str | None = None


@attrs.frozen(kw_only=True)
class ItemTransition(Event):
    """An item of the job (an Azure document) moved ``source`` → ``dest``."""

    name: ClassVar[str] = "item_transition"
    item_id: str
    item_lifecycle: str
    source: str
    dest: str
    inferred: bool = False


@attrs.frozen(kw_only=True)
class HookFailed(Event):
    """A hook raised; it was isolated and the engine went on."""

    name: ClassVar[str] = "hook_failed"
    hook: str
    event: str
    error: str


#: Every event name ``engine.on()`` accepts.
EVENT_NAMES: Final = (
    "submitted",
    "polled",
    "retrying",
    "transition",
    "entered",
    "completed",
    "timed_out",
    "errored",
    "illegal_transition",
    "unknown_state",
    "item_transition",
    "hook_failed",
)
