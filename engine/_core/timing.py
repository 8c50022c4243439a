"""When a job's next request is due: the one timing rule.

Schedule, backoff, jitter, the server's own hint (``Retry-After``), per-state
overrides, attempts and the deadline are combined here and nowhere else:

- a poll after an answer waits the schedule's delay for the state (interval,
  backoff by polls in that state, jitter), times the service's time scale;
- a retry after a transient failure waits the error policy's backoff for the
  number of consecutive failures;
- the first poll after a submit or an adoption waits the initial delay;
- a job's deadline and attempts are the spec's, unless the caller gave the
  job its own (``deadline``/``max_attempts`` at submit or track): those
  replace the lifecycle's, and a state's own still replace either;
- the schedule's jitter applies to each of these waits;
- in all three, a server hint the spec honours is a floor: the wait is the
  longer of the two, and the hint is clamped to the spec's ``retry_after``
  bounds first (a server asking for an hour gets the spec's maximum). The
  hint is the longest of ``Retry-After`` and the spec's declared wait hints
  (a rate-limit reset as epoch seconds or a delta, read when its condition
  on the headers holds);
- no wait runs past the job's deadline: the last one is shortened so that one
  request happens at the deadline (as Smithy's waiters do), and a job whose
  deadline has passed gives up instead of waiting.

Times are seconds on the driver's clock, which is epoch-anchored, so that an
HTTP-date hint compares with ``now`` directly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Literal, NamedTuple

from engine._core.observe import holds
from statemachines import Errors, Lifecycle, Schedule, WaitHint

__all__ = [
    "Plan",
    "at_or_before",
    "first_poll",
    "jittered",
    "next_poll",
    "next_retry",
    "parse_retry_after",
    "parse_wait",
    "poll_delay",
    "retry_delay",
    "server_hint",
    "start_deadline",
]


class Plan(NamedTuple):
    """When the next request is due, or why the job gives up instead."""

    due: float | None
    give_up: str | None = None


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Return the seconds a ``Retry-After`` value asks for, or ``None`` if unreadable.

    Accepts delta-seconds and HTTP-dates (RFC 9110 §10.2.3); a date in the
    past means 0. Negative, NaN and infinite numbers are unreadable.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until(date: str, now: float) -> float | None:
    # Imported when a date is met: email.utils imports socket, which the core
    # must not load (and most servers send seconds).
    import email.utils  # noqa: PLC0415

    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None  # RFC 9110 dates are GMT; a naive one is not an HTTP-date
    return max(0.0, when.timestamp() - now)


def parse_wait(
    kind: Literal["delta", "delta_ms", "epoch", "retry_after"],
    value: str | None,
    *,
    now: float,
) -> float | None:
    """Return the seconds a wait hint of ``kind`` asks for, or ``None`` if unreadable.

    ``delta``: seconds; ``delta_ms``: milliseconds; ``epoch``: the Unix time
    to wait until (one in the past means 0); ``retry_after``: as
    :func:`parse_retry_after`. Negative, NaN and infinite numbers are
    unreadable.
    """
    if kind == "retry_after":
        return parse_retry_after(value, now=now)
    try:
        number = float((value or "").strip())
    except ValueError:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    if kind == "epoch":
        return max(0.0, number - now)
    return number / 1000 if kind == "delta_ms" else number


def _declared(hint: WaitHint, headers: Mapping[str, str], now: float) -> float | None:
    """Return what one declared hint asks for, when its condition on the headers holds."""
    if hint.when is not None and not holds(hint.when, 0, headers, None):
        return None
    return parse_wait(hint.kind, headers.get(hint.header.lower()), now=now)


def server_hint(
    headers: Mapping[str, str], schedule: Schedule, *, scale: float, now: float
) -> float | None:
    """Return the wait the server asked for, clamped by the spec, or ``None``.

    The longest of ``Retry-After`` and the spec's declared hints that apply.
    ``None`` when the server asked nothing readable or the spec does not
    honour its hints. The bounds are the spec's (times ``scale``); the
    server's own figure is not scaled: it is already in real seconds.
    """
    bounds = schedule.retry_after
    if not bounds.honour or not headers:
        return None
    asked = parse_retry_after(headers.get("retry-after"), now=now)
    for hint in bounds.hints:
        wait = _declared(hint, headers, now)
        if wait is not None and (asked is None or wait > asked):
            asked = wait
    if asked is None:
        return None
    return min(max(asked, bounds.min * scale), bounds.max * scale)


def jittered(
    delay: float, schedule: Schedule, rng: random.Random, *, scale: float = 1.0
) -> float:
    """Apply the schedule's jitter to ``delay`` (already times ``scale``).

    Full jitter draws from ``[min, delay]``, ``min`` being the jitter's own
    (times ``scale``); a delay shorter than that minimum is drawn from
    ``[delay, delay]``: jitter never lengthens a wait.
    """
    jitter = schedule.jitter
    if jitter.kind == "full":
        return rng.uniform(min(jitter.min * scale, delay), delay)
    if jitter.kind == "proportional":
        return delay * (1.0 + rng.uniform(-jitter.ratio, jitter.ratio))
    return delay


def poll_delay(lifecycle: Lifecycle, state: str, polls_in_state: int) -> float:
    """Return the un-jittered, unscaled wait before the next poll.

    ``polls_in_state`` counts polls answered since the job entered ``state``
    (1 after the first). Per-state overrides replace the interval and backoff.
    """
    schedule = lifecycle.schedule
    interval = schedule.interval
    backoff = schedule.backoff
    override = schedule.for_state(state)
    if override is not None:
        interval = override.interval or interval
        backoff = override.backoff or backoff
    grow = polls_in_state - 1
    if backoff.kind == "fixed" or grow <= 0:
        return interval
    # Cap the exponent first so a long-lived job cannot overflow a float.
    grown = interval * backoff.factor ** min(grow, 64)
    cap = backoff.max_interval
    return min(grown, cap) if cap is not None else grown


def retry_delay(errors: Errors, failures: int) -> float:
    """Return the unscaled wait before transient retry number ``failures`` (1-based)."""
    policy = errors.retry_backoff
    exponent = min(max(failures - 1, 0), 64)
    return float(min(policy.initial * policy.factor**exponent, policy.max))


def at_or_before(now: float, delay: float, deadline: float | None) -> float:
    """Return ``now + delay``, shortened so that it is not after ``deadline``."""
    due = now + max(0.0, delay)
    if deadline is not None and due > deadline:
        return max(now, deadline)
    return due


def start_deadline(
    schedule: Schedule,
    state: str,
    *,
    now: float,
    scale: float,
    own: float | None = None,
) -> float | None:
    """Return when a job started (or adopted) in ``state`` at ``now`` gives up, if ever.

    ``own`` is the caller's deadline for this job, in seconds (it replaces
    the spec's and any state's own at the start). Without it, a state with
    its own deadline (a provisional state re-checked for hours) decides:
    that deadline is why the job waits there. Spec seconds are times
    ``scale``, the caller's too: they stand in for the spec's.
    """
    seconds = own
    if seconds is None:
        seconds = schedule.deadline
        override = schedule.for_state(state)
        if override is not None and override.deadline is not None:
            seconds = override.deadline
    return None if seconds is None else now + seconds * scale


def first_poll(
    lifecycle: Lifecycle,
    headers: Mapping[str, str],
    *,
    now: float,
    scale: float,
    deadline: float | None,
    rng: random.Random | None = None,
) -> float:
    """Return when the first poll is due after a submit (or an adoption: no headers).

    With ``rng``, the initial delay is jittered too: jobs submitted together
    should not poll in lockstep.
    """
    schedule = lifecycle.schedule
    delay = schedule.initial_delay * scale
    if rng is not None:
        delay = jittered(delay, schedule, rng, scale=scale)
    hint = server_hint(headers, schedule, scale=scale, now=now)
    if hint is not None:
        delay = max(delay, hint)
    return at_or_before(now, delay, deadline)


def next_poll(  # noqa: PLR0917 - the job's counters, spelled out so that callers pass plain values
    lifecycle: Lifecycle,
    state: str,
    polls: int,
    polls_in_state: int,
    deadline: float | None,
    headers: Mapping[str, str],
    *,
    now: float,
    scale: float,
    rng: random.Random,
    not_modified: int = 0,
    max_attempts: int | None = None,
) -> Plan:
    """Return when the next poll is due after an answer, or why to give up.

    Gives up when the spec's ``max_attempts`` (``max_attempts``: the job's
    own, given by the caller, in its place; a state's own in place of both)
    is used up, or the deadline has passed. ``not_modified`` counts the
    conditional polls answered ``304 Not Modified`` in the state: they grow
    the backoff like polls, but use no attempt.
    """
    schedule = lifecycle.schedule
    override = schedule.for_state(state)
    limit = schedule.max_attempts if max_attempts is None else max_attempts
    if override is not None and override.max_attempts is not None:
        if polls_in_state >= override.max_attempts:
            return Plan(None, f"{polls_in_state} polls in {state}")
    elif limit is not None and polls >= limit:
        return Plan(None, f"{polls} polls (max_attempts)")
    if deadline is not None and now >= deadline:
        return Plan(None, "deadline reached")
    delay = poll_delay(lifecycle, state, polls_in_state + not_modified) * scale
    delay = jittered(delay, schedule, rng, scale=scale)
    hint = server_hint(headers, schedule, scale=scale, now=now)
    if hint is not None:
        delay = max(delay, hint)
    return Plan(at_or_before(now, delay, deadline))


def next_retry(
    lifecycle: Lifecycle,
    failures: int,
    deadline: float | None,
    headers: Mapping[str, str],
    *,
    now: float,
    scale: float,
    rng: random.Random | None = None,
) -> Plan:
    """Return when a request that failed transiently is retried, or why to give up.

    The retry budget is the caller's to check (running out of it is an
    error, not a timeout); this gives up only when the deadline has passed.
    With ``rng``, the backoff is jittered by the schedule's jitter: after an
    outage, every job retrying at once is what jitter is for.
    """
    if deadline is not None and now >= deadline:
        return Plan(None, "deadline reached while retrying")
    delay = retry_delay(lifecycle.errors, failures) * scale
    if rng is not None:
        delay = jittered(delay, lifecycle.schedule, rng, scale=scale)
    hint = server_hint(headers, lifecycle.schedule, scale=scale, now=now)
    if hint is not None:
        delay = max(delay, hint)
    return Plan(at_or_before(now, delay, deadline))
