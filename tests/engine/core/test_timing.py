"""The one timing rule: schedule, backoff, jitter, Retry-After, attempts and the deadline."""

from __future__ import annotations

import email.utils
import random
from typing import Any

import pytest

from engine._core import timing
from statemachines import Lifecycle
from tests.engine.core.conftest import lifecycle_of, load, toy_document

#: An epoch-anchored "now": HTTP-dates compare with it directly.
NOW = 1_700_000_000.0


def _lifecycle(**schedule: Any) -> Lifecycle:
    """Return the toy lifecycle with ``schedule`` (no deadline unless given)."""
    document = toy_document()
    lifecycle_of(document)["schedule"] = {"interval": 2, **schedule}
    return load(document).lifecycle("job")


def _next(
    lifecycle: Lifecycle,
    *,
    state: str = "Running",
    polls: int = 1,
    in_state: int = 1,
    deadline: float | None = None,
    headers: dict[str, str] | None = None,
    scale: float = 1.0,
    rng: random.Random | None = None,
) -> timing.Plan:
    return timing.next_poll(
        lifecycle,
        state,
        polls,
        in_state,
        deadline,
        headers or {},
        now=NOW,
        scale=scale,
        rng=rng or random.Random(0),
    )


def _http_date(when: float) -> str:
    return email.utils.formatdate(when, usegmt=True)


# -- Retry-After -------------------------------------------------------------------


def test_retry_after_seconds_are_read() -> None:
    """Delta-seconds (RFC 9110) are the wait, fractions and padding allowed."""
    assert timing.parse_retry_after(" 7.5 ", now=NOW) == 7.5


def test_retry_after_http_date_is_seconds_from_now() -> None:
    """An HTTP-date gives the seconds between now and that date."""
    assert timing.parse_retry_after(_http_date(NOW + 30), now=NOW) == 30.0


def test_retry_after_date_in_the_past_means_now() -> None:
    """A date already gone asks for no wait at all (0, never negative)."""
    assert timing.parse_retry_after(_http_date(NOW - 3600), now=NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "  ",
        "soon",
        "-5",
        "nan",
        "inf",
        "-inf",
        "Wed, 32 Foo 2015 07:28:00 GMT",
        "Wed, 21 Oct 2015 07:28:00 -0000",
    ],
)
def test_unreadable_retry_after_is_no_hint(value: str | None) -> None:
    """Absent, garbage, negative, NaN, infinite or zone-less date: no hint at all."""
    assert timing.parse_retry_after(value, now=NOW) is None


def test_retry_after_is_a_floor_not_a_replacement() -> None:
    """A hint shorter than the schedule's interval does not shorten the wait."""
    plan = _next(_lifecycle(), headers={"retry-after": "1"})

    assert plan == timing.Plan(NOW + 2)


def test_retry_after_longer_than_the_interval_wins() -> None:
    """A server asking for longer than the interval gets its wait."""
    plan = _next(_lifecycle(), headers={"retry-after": "9"})

    assert plan == timing.Plan(NOW + 9)


def test_retry_after_is_clamped_to_the_specs_maximum_times_scale() -> None:
    """An hour asked is cut to the spec's max, scaled like every spec duration."""
    lifecycle = _lifecycle(retry_after={"min": 0, "max": 60})

    plan = _next(lifecycle, headers={"retry-after": "3600"}, scale=0.5)

    assert plan == timing.Plan(NOW + 30)


def test_retry_after_is_raised_to_the_specs_minimum_times_scale() -> None:
    """A 0 hint is raised to the spec's min (scaled); the server's figure is not scaled."""
    lifecycle = _lifecycle(interval=1, retry_after={"min": 20, "max": 60})

    assert timing.server_hint(
        {"retry-after": "0"}, lifecycle.schedule, scale=0.5, now=NOW
    ) == pytest.approx(10.0)
    assert timing.server_hint(
        {"retry-after": "15"}, lifecycle.schedule, scale=0.5, now=NOW
    ) == pytest.approx(15.0)


def test_retry_after_is_ignored_when_the_spec_does_not_honour_it() -> None:
    """honour=false: the schedule alone decides."""
    lifecycle = _lifecycle(retry_after={"honour": False})

    plan = _next(lifecycle, headers={"retry-after": "50"})

    assert plan == timing.Plan(NOW + 2)


def test_no_retry_after_header_is_no_hint() -> None:
    """A reply without the header gives no hint."""
    assert timing.server_hint({}, _lifecycle().schedule, scale=1.0, now=NOW) is None


# -- the schedule ----------------------------------------------------------------------


def test_fixed_interval_is_the_wait_times_scale() -> None:
    """A fixed schedule waits its interval (times the binding's scale)."""
    plan = _next(_lifecycle(), in_state=7, scale=0.25)

    assert plan == timing.Plan(NOW + 0.5)


def test_exponential_backoff_grows_with_polls_in_the_state() -> None:
    """Backoff multiplies the interval by factor^(polls in state - 1)."""
    lifecycle = _lifecycle(backoff={"kind": "exponential", "factor": 3})

    delays = [timing.poll_delay(lifecycle, "Running", n) for n in (0, 1, 2, 3)]

    assert delays == [2, 2, 6, 18]


def test_exponential_backoff_stops_at_its_cap() -> None:
    """max_interval caps the grown wait."""
    lifecycle = _lifecycle(
        backoff={"kind": "exponential", "factor": 10, "max_interval": 50}
    )

    assert timing.poll_delay(lifecycle, "Running", 3) == 50


def test_exponential_backoff_of_a_long_lived_job_does_not_overflow() -> None:
    """A million polls in a state grows by at most factor^64: a number, not an OverflowError."""
    lifecycle = _lifecycle(backoff={"kind": "exponential", "factor": 2})

    assert timing.poll_delay(lifecycle, "Running", 1_000_000) == 2 * 2.0**64


def test_a_states_own_interval_and_backoff_replace_the_schedules() -> None:
    """Per-state overrides replace interval and backoff in that state only."""
    lifecycle = _lifecycle(
        per_state={
            "Running": {
                "interval": 10,
                "backoff": {"kind": "exponential", "factor": 2},
            }
        }
    )

    assert timing.poll_delay(lifecycle, "Running", 2) == 20
    assert timing.poll_delay(lifecycle, "Queued", 2) == 2


def test_a_state_override_without_interval_keeps_the_schedules() -> None:
    """An override naming only max_attempts leaves the interval and backoff alone."""
    lifecycle = _lifecycle(per_state={"Running": {"max_attempts": 5}})

    assert timing.poll_delay(lifecycle, "Running", 3) == 2


def test_full_jitter_draws_between_zero_and_the_delay() -> None:
    """Full jitter: uniform in [0, delay], reproducible with a seeded Random."""
    schedule = _lifecycle(jitter={"kind": "full"}).schedule

    drawn = timing.jittered(10.0, schedule, random.Random(7))

    assert drawn == random.Random(7).uniform(0.0, 10.0)
    assert 0.0 <= drawn <= 10.0


def test_proportional_jitter_stays_within_its_ratio() -> None:
    """Proportional jitter: delay * (1 +- ratio)."""
    schedule = _lifecycle(jitter={"kind": "proportional", "ratio": 0.2}).schedule

    drawn = [timing.jittered(10.0, schedule, random.Random(seed)) for seed in range(50)]

    assert all(8.0 <= d <= 12.0 for d in drawn)
    assert len(set(drawn)) > 1


def test_no_jitter_leaves_the_delay_alone() -> None:
    """Jitter none: the delay as computed."""
    schedule = _lifecycle(jitter={"kind": "none"}).schedule

    assert timing.jittered(10.0, schedule, random.Random(1)) == 10.0


def test_jitter_is_applied_to_the_poll_wait() -> None:
    """The next poll's wait is the jittered schedule delay."""
    lifecycle = _lifecycle(jitter={"kind": "full"})

    plan = _next(lifecycle, rng=random.Random(3))

    assert plan == timing.Plan(NOW + random.Random(3).uniform(0.0, 2.0))


# -- attempts and the deadline ------------------------------------------------------------


def test_max_attempts_gives_up_after_that_many_polls() -> None:
    """The spec's max_attempts counts every poll answered; then the job gives up."""
    lifecycle = _lifecycle(max_attempts=3)

    assert _next(lifecycle, polls=2).due == NOW + 2
    assert _next(lifecycle, polls=3) == timing.Plan(None, "3 polls (max_attempts)")


def test_a_states_max_attempts_counts_polls_in_that_state() -> None:
    """A state's own max_attempts counts polls since entering it."""
    lifecycle = _lifecycle(per_state={"Running": {"max_attempts": 2}})

    assert _next(lifecycle, polls=50, in_state=1).due == NOW + 2
    assert _next(lifecycle, polls=50, in_state=2) == timing.Plan(
        None, "2 polls in Running"
    )


def test_a_states_max_attempts_replaces_the_global_one_there() -> None:
    """In a state with its own max_attempts, the global count does not apply."""
    lifecycle = _lifecycle(max_attempts=3, per_state={"Running": {"max_attempts": 5}})

    assert _next(lifecycle, polls=10, in_state=1).due == NOW + 2
    assert (
        _next(lifecycle, state="Queued", polls=10).give_up == "10 polls (max_attempts)"
    )


def test_a_state_override_without_max_attempts_keeps_the_global_count() -> None:
    """A state that only changes its interval still counts toward the global max_attempts."""
    lifecycle = _lifecycle(max_attempts=3, per_state={"Running": {"interval": 7}})

    assert _next(lifecycle, polls=3).give_up == "3 polls (max_attempts)"


def test_a_deadline_passed_gives_up() -> None:
    """At or after the deadline there is no next poll."""
    assert _next(_lifecycle(), deadline=NOW) == timing.Plan(None, "deadline reached")


def test_last_wait_is_shortened_to_the_deadline() -> None:
    """A wait that would end after the deadline ends at it: one last poll there."""
    plan = _next(_lifecycle(interval=10), deadline=NOW + 4)

    assert plan == timing.Plan(NOW + 4)


def test_a_wait_inside_the_deadline_is_kept() -> None:
    """A wait that ends before the deadline is not changed."""
    assert timing.at_or_before(NOW, 3.0, NOW + 10) == NOW + 3


def test_a_negative_delay_means_now() -> None:
    """No wait is negative."""
    assert timing.at_or_before(NOW, -5.0, None) == NOW


def test_a_deadline_already_gone_schedules_now_not_in_the_past() -> None:
    """A due time is never before now, even past the deadline."""
    assert timing.at_or_before(NOW, 3.0, NOW - 10) == NOW


# -- the first poll ------------------------------------------------------------------------


def test_first_poll_waits_the_initial_delay_times_scale() -> None:
    """After a submit without a hint, the first poll waits initial_delay (scaled)."""
    lifecycle = _lifecycle(initial_delay=4)

    due = timing.first_poll(lifecycle, {}, now=NOW, scale=0.5, deadline=None)

    assert due == NOW + 2


def test_first_poll_honours_a_longer_server_hint() -> None:
    """A submit's Retry-After longer than the initial delay is the first wait."""
    lifecycle = _lifecycle(initial_delay=4)

    due = timing.first_poll(
        lifecycle, {"retry-after": "10"}, now=NOW, scale=1.0, deadline=None
    )

    assert due == NOW + 10


def test_first_poll_is_not_after_the_deadline() -> None:
    """The first poll too happens at the latest at the deadline."""
    lifecycle = _lifecycle(initial_delay=40)

    due = timing.first_poll(lifecycle, {}, now=NOW, scale=1.0, deadline=NOW + 5)

    assert due == NOW + 5


# -- retries ---------------------------------------------------------------------------------


def test_retry_delay_doubles_up_to_its_maximum() -> None:
    """Transient retries back off by the error policy: initial * factor^(n-1), capped."""
    errors = _lifecycle().errors  # initial 1, factor 2, max 10

    assert [timing.retry_delay(errors, n) for n in (0, 1, 2, 3, 4, 5, 500)] == [
        1,
        1,
        2,
        4,
        8,
        10,
        10,
    ]


def test_retry_waits_the_backoff_times_scale() -> None:
    """A retry is due after the error policy's delay, scaled."""
    plan = timing.next_retry(_lifecycle(), 3, None, {}, now=NOW, scale=0.5)

    assert plan == timing.Plan(NOW + 2)


def test_retry_honours_a_longer_server_hint() -> None:
    """A 429's Retry-After is a floor on the retry's wait."""
    plan = timing.next_retry(
        _lifecycle(), 1, None, {"retry-after": "30"}, now=NOW, scale=1.0
    )

    assert plan == timing.Plan(NOW + 30)


def test_retry_is_shortened_to_the_deadline() -> None:
    """A retry happens at the latest at the deadline."""
    plan = timing.next_retry(_lifecycle(), 4, NOW + 1, {}, now=NOW, scale=1.0)

    assert plan == timing.Plan(NOW + 1)


def test_retry_past_the_deadline_gives_up() -> None:
    """No retry once the deadline has passed."""
    plan = timing.next_retry(_lifecycle(), 1, NOW - 1, {}, now=NOW, scale=1.0)

    assert plan == timing.Plan(None, "deadline reached while retrying")


def test_retries_are_jittered_by_the_schedules_jitter() -> None:
    """After an outage, retries spread out: the schedule's jitter applies to them too."""
    lifecycle = _lifecycle(jitter={"kind": "full"})

    dues = {
        timing.next_retry(
            lifecycle, 3, None, {}, now=NOW, scale=1.0, rng=random.Random(seed)
        ).due
        for seed in range(5)
    }

    assert len(dues) == 5
    assert all(d is not None and NOW <= d <= NOW + 4 for d in dues)


def test_the_first_poll_is_jittered_when_given_a_random_source() -> None:
    """Jobs submitted together do not all poll first at the same instant."""
    lifecycle = _lifecycle(
        initial_delay=10, jitter={"kind": "proportional", "ratio": 0.5}
    )

    dues = {
        timing.first_poll(
            lifecycle, {}, now=NOW, scale=1.0, deadline=None, rng=random.Random(seed)
        )
        for seed in range(5)
    }

    assert len(dues) == 5
    assert all(NOW + 5 <= d <= NOW + 15 for d in dues)
