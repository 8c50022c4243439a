"""The spec model's graph: outcomes, states, transitions and chained lifecycles."""

from __future__ import annotations

import enum
from typing import Any, Literal

import attrs

from ._spec_base import loc as _loc

__all__ = ["Outcome", "State", "Then", "ThenInput", "Transition"]


class Outcome(enum.StrEnum):
    """How a terminal state ends a job."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    PARTIAL = "partial"


@attrs.frozen(kw_only=True)
class State:
    """A state of a lifecycle; terminal when it has an outcome."""

    name: str
    initial: bool = False
    outcome: Outcome | None = None
    provisional: bool = False
    description: str = ""
    then: Then | None = None
    location: str = _loc()

    @property
    def terminal(self) -> bool:
        """Whether the job ends here."""
        return self.outcome is not None


@attrs.frozen(kw_only=True)
class ThenInput:
    """Where one input of a chained job comes from: exactly one of the three.

    ``pointer`` reads this job's result (``source="response"``: its final
    poll response), ``input`` names one of this job's own inputs, ``value``
    is fixed (``has_value`` tells a fixed ``null`` from none).
    """

    name: str
    pointer: str | None = None
    source: Literal["result", "response"] = "result"
    input: str | None = None
    # JSON values (lists, objects) do not hash; equality still compares them.
    value: Any = attrs.field(default=None, hash=False)
    has_value: bool = False
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Then:
    """A chained lifecycle, started when a job ends in a success state.

    ``spec`` names another spec (by service name) whose lifecycle it is;
    ``None``: this spec's.
    """

    lifecycle: str
    spec: str | None = None
    inputs: tuple[ThenInput, ...] = ()
    description: str = ""
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Transition:
    """One legal move, ``source`` → ``dest``."""

    source: str
    dest: str
    description: str = ""
    #: Where the destination is named (``…/to`` or ``…/to/1``).
    location: str = _loc()
    #: Where the source is named (``…/from`` or ``…/from/0``).
    source_location: str = _loc()
