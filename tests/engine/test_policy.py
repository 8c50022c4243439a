"""Schedule arithmetic and response classification, without a loop or a server."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from engine._policy import (
    clamp_retry_after,
    classify,
    jittered,
    next_poll_delay,
    parse_retry_after,
    retry_delay,
)
from statemachines import load_spec
from statemachines.spec import (
    Backoff,
    Errors,
    Jitter,
    RetryAfter,
    RetryBackoff,
    Schedule,
)


def test_retry_status_wins_over_acceptance() -> None:
    """A status listed as retryable is transient even if the request accepts it."""
    errors = Errors(retry_status=(429, 503), fatal_status=(404,))

    assert classify(429, errors, accepted=True) == "transient"


def test_fatal_status_is_fatal() -> None:
    """A status listed as fatal ends the job."""
    assert classify(404, Errors(), accepted=False) == "fatal"


def test_unlisted_5xx_is_transient_and_unlisted_4xx_fatal() -> None:
    """Statuses the spec does not list: 5xx retried, other failures fatal."""
    errors = Errors(retry_status=(), fatal_status=())

    assert classify(507, errors, accepted=False) == "transient"
    assert classify(418, errors, accepted=False) == "fatal"


def test_accepted_status_is_observed() -> None:
    """A status the request accepts (Mindee's 302) goes to the observe rules."""
    assert classify(302, Errors(), accepted=True) == "observe"


@pytest.mark.parametrize(
    ("value", "expected"), [("0", 0.0), ("7", 7.0), (" 2.5 ", 2.5), ("-3", 0.0)]
)
def test_retry_after_seconds_are_read(value: str, expected: float) -> None:
    """Retry-After in delta-seconds; negative means now."""
    assert parse_retry_after(value, now_wall=0.0) == expected


def test_retry_after_http_date_is_read_relative_to_now() -> None:
    """Retry-After as an HTTP-date becomes the seconds until that date."""
    now = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)

    assert parse_retry_after(header, now_wall=now.timestamp()) == pytest.approx(30.0)


def test_retry_after_date_in_the_past_means_now() -> None:
    """An HTTP-date already passed asks for no wait."""
    header = "Wed, 21 Oct 2015 07:28:00 GMT"

    assert (
        parse_retry_after(header, now_wall=datetime(2026, 1, 1, tzinfo=UTC).timestamp())
        == 0.0
    )


@pytest.mark.parametrize("value", [None, "", "soon", "nan", "inf"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    """A missing or unreadable Retry-After yields None (the backoff applies)."""
    assert parse_retry_after(value, now_wall=0.0) is None


def test_retry_after_is_clamped_by_the_spec_and_scaled() -> None:
    """A server's wait is clamped to the spec's bounds, which the time scale shrinks."""
    schedule = Schedule(retry_after=RetryAfter(min=1, max=60))

    assert clamp_retry_after(3600, schedule) == 60
    assert clamp_retry_after(0, schedule) == 1
    assert clamp_retry_after(3600, schedule, 0.01) == pytest.approx(0.6)


def test_exponential_backoff_grows_and_is_capped() -> None:
    """Exponential backoff multiplies by the factor per attempt up to max_interval."""
    spec = load_spec("azure-translator")
    lifecycle = spec.lifecycle("batch")

    delays = [next_poll_delay(lifecycle, "Running", n) for n in range(12)]

    assert delays[0] == 1
    assert delays[1] == pytest.approx(1.5)
    assert delays[2] == pytest.approx(2.25)
    assert max(delays) == 30
    assert delays == sorted(delays)


def test_per_state_interval_overrides_the_lifecycle_interval() -> None:
    """A provisional state is re-checked on its own, slower interval."""
    lifecycle = load_spec("oneclickdz").lifecycle("mobile_topup")

    assert next_poll_delay(lifecycle, "HANDLING", 3) == 5
    assert next_poll_delay(lifecycle, "UNKNOWN_ERROR", 3) == 3600


def test_huge_attempt_counts_do_not_overflow() -> None:
    """A long-lived job's backoff stays finite."""
    lifecycle = load_spec("azure-translator").lifecycle("batch")

    assert next_poll_delay(lifecycle, "Running", 10**9) == 30


def test_retry_delay_grows_from_initial_to_max() -> None:
    """Transient retries back off from initial by factor up to max."""
    errors = Errors(retry_backoff=RetryBackoff(initial=0.5, factor=2, max=3))

    assert [retry_delay(errors, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 3, 3]


def test_full_jitter_stays_within_zero_and_delay() -> None:
    """Full jitter draws uniformly in [0, delay]."""
    schedule = Schedule(jitter=Jitter(kind="full"))
    rng = random.Random(1)

    draws = [jittered(10.0, schedule, rng) for _ in range(500)]

    assert all(0 <= d <= 10 for d in draws)
    assert min(draws) < 2
    assert max(draws) > 8


def test_proportional_jitter_stays_within_ratio() -> None:
    """Proportional jitter keeps the delay within ±ratio."""
    schedule = Schedule(
        jitter=Jitter(kind="proportional", ratio=0.1), backoff=Backoff()
    )
    rng = random.Random(2)

    draws = [jittered(10.0, schedule, rng) for _ in range(500)]

    assert all(9 <= d <= 11 for d in draws)
    assert len({round(d, 6) for d in draws}) > 100


def test_no_jitter_is_exact() -> None:
    """Without jitter the delay is unchanged."""
    assert jittered(4.0, Schedule(), random.Random(3)) == 4.0
