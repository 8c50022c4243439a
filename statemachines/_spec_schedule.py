"""The spec model's timing: when to poll, how delays grow, which wait hints count."""

from __future__ import annotations

from typing import Literal

import attrs

from ._spec_base import loc as _loc
from ._spec_replies import Condition

__all__ = [
    "Backoff",
    "Jitter",
    "RetryAfter",
    "Schedule",
    "StateSchedule",
    "WaitHint",
]


@attrs.frozen(kw_only=True)
class Backoff:
    """How the polling interval grows."""

    kind: Literal["fixed", "exponential"] = "fixed"
    factor: float = 2.0
    max_interval: float | None = None
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Jitter:
    """Randomness added to delays."""

    kind: Literal["none", "full", "proportional"] = "none"
    ratio: float = 0.1
    #: Full jitter draws from ``[min, delay]`` (Smithy's ``minDelay``), not ``[0, delay]``.
    min: float = 0.0


@attrs.frozen(kw_only=True)
class WaitHint:
    """A header other than ``Retry-After`` that says how long to wait (a rate-limit reset)."""

    header: str
    #: ``delta`` seconds, ``delta_ms`` milliseconds, ``epoch`` Unix seconds,
    #: ``retry_after`` seconds or an HTTP-date.
    kind: Literal["delta", "delta_ms", "epoch", "retry_after"]
    #: Only read when this holds (a reset matters when nothing is left).
    when: Condition | None = None
    description: str = ""
    location: str = _loc()


@attrs.frozen(kw_only=True)
class RetryAfter:
    """How ``Retry-After`` and the spec's other wait hints are honoured and clamped."""

    honour: bool = True
    min: float = 0.0
    max: float = 300.0
    hints: tuple[WaitHint, ...] = ()


@attrs.frozen(kw_only=True)
class StateSchedule:
    """Schedule overrides while a job is in one state."""

    state: str
    interval: float | None = None
    deadline: float | None = None
    max_attempts: int | None = None
    backoff: Backoff | None = None
    description: str = ""
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Schedule:
    """When to poll and when to give up."""

    initial_delay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    interval: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    backoff: Backoff = Backoff()
    jitter: Jitter = Jitter()
    max_attempts: int | None = None
    deadline: float | None = None
    retry_after: RetryAfter = RetryAfter()
    per_state: tuple[StateSchedule, ...] = ()
    location: str = _loc()
    #: Pointer of each key as written (a key may come from ``defaults``).
    key_locations: tuple[tuple[str, str], ...] = attrs.field(
        default=(), eq=False, repr=False
    )

    def where(self, key: str) -> str:
        """Return the pointer of ``key`` in its file (defaults included)."""
        return dict(self.key_locations).get(key, f"{self.location}/{key}")

    def for_state(self, state: str) -> StateSchedule | None:
        """Return the overrides for ``state``, if any."""
        for override in self.per_state:
            if override.state == state:
                return override
        return None
