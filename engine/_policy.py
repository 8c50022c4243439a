"""Pure decisions: classify a response, compute the next delay, read Retry-After.

No I/O, no clock: every function takes the numbers it needs, so the schedule
arithmetic is tested without a loop or a server.
"""

from __future__ import annotations

import email.utils
import math
import random
from typing import Literal

from statemachines import Errors, Lifecycle, Schedule

__all__ = [
    "Classification",
    "classify",
    "clamp_retry_after",
    "jittered",
    "next_poll_delay",
    "parse_retry_after",
    "retry_delay",
]

Classification = Literal["transient", "fatal", "observe"]


def classify(status: int, errors: Errors, *, accepted: bool) -> Classification:
    """Classify an HTTP status by the spec's error rules.

    Order: ``retry_status``, then ``fatal_status``, then statuses the request
    accepts (observed); any other 5xx is transient and any other status fatal.
    """
    if status in errors.retry_status:
        return "transient"
    if status in errors.fatal_status:
        return "fatal"
    if accepted:
        return "observe"
    return "transient" if status >= 500 else "fatal"


def parse_retry_after(value: str | None, *, now_wall: float) -> float | None:
    """Return the seconds a ``Retry-After`` value asks for, or ``None`` if unreadable.

    Accepts delta-seconds and HTTP-dates (RFC 9110 §10.2.3); a date in the past
    means 0 (now).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - now_wall)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def clamp_retry_after(seconds: float, schedule: Schedule, scale: float = 1.0) -> float:
    """Clamp a server-requested wait to the spec's ``retry_after`` bounds (times ``scale``).

    The server's own figure is not scaled: it is already in real seconds.
    """
    bounds = schedule.retry_after
    return min(max(seconds, bounds.min * scale), bounds.max * scale)


def jittered(delay: float, schedule: Schedule, rng: random.Random) -> float:
    """Apply the schedule's jitter to ``delay``."""
    jitter = schedule.jitter
    if jitter.kind == "full":
        return rng.uniform(0.0, delay)
    if jitter.kind == "proportional":
        return delay * (1.0 + rng.uniform(-jitter.ratio, jitter.ratio))
    return delay


def next_poll_delay(lifecycle: Lifecycle, state: str, attempt_in_state: int) -> float:
    """Return the un-jittered wait before the next poll.

    ``attempt_in_state`` counts polls made since entering ``state`` (0 right
    after entering it). Per-state overrides replace the interval and backoff.
    """
    schedule = lifecycle.schedule
    interval = schedule.interval
    backoff = schedule.backoff
    override = schedule.for_state(state)
    if override is not None:
        interval = override.interval or interval
        backoff = override.backoff or backoff
    if backoff.kind == "fixed" or attempt_in_state <= 0:
        return interval
    # Cap the exponent first so a long-lived job cannot overflow a float.
    grown = interval * backoff.factor ** min(attempt_in_state, 64)
    cap = backoff.max_interval
    return min(grown, cap) if cap is not None else grown


def retry_delay(errors: Errors, failures: int) -> float:
    """Return the wait before transient retry number ``failures`` (1-based)."""
    policy = errors.retry_backoff
    return min(
        policy.initial * policy.factor ** min(max(failures - 1, 0), 64), policy.max
    )
