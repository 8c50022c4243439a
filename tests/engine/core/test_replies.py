"""Reading replies on plain values: error rules and codes, wait hints, jitter, paging stops."""

from __future__ import annotations

import random
from typing import Any

import pytest

from engine._core import step, timing
from engine._core.binding import Binding
from engine._core.paging import next_page
from engine._core.redact import Redactor
from engine._core.state import End, Phase
from engine._core.verdict import classify_reply, error_code, error_message, status_error
from engine._errors import RemoteError
from statemachines import Lifecycle
from statemachines.spec import (
    Condition,
    ErrorRule,
    Errors,
    ErrorSource,
    Jitter,
    Paging,
    RetryAfter,
    Schedule,
    WaitHint,
)
from tests.engine.core.conftest import (
    BASE,
    binding,
    job,
    lifecycle_of,
    load,
    reply,
    toy_document,
)

NOW = 1_700_000_000.0
RETRY_AFTER = Condition(kind="header", header="Retry-After")
RATE_LIMITED = Condition(
    kind="all", children=(Condition(kind="status", status=(403,)), RETRY_AFTER)
)
AMZN = Errors(
    code_from=(
        ErrorSource(header="x-amzn-ErrorType", pattern="^([^:]+)"),
        ErrorSource(pointer="/__type", pattern="#?([^#]+)$"),
        ErrorSource(pattern="<Code>([^<]+)</Code>"),
    ),
    message_from=(ErrorSource(pointer="/message"),),
)


def _rules(*rules: tuple[Condition, str], **errors: Any) -> Errors:
    return Errors(
        rules=tuple(ErrorRule(when=w, verdict=v) for w, v in rules),  # type: ignore[arg-type] # verdicts are checked by the schema
        **errors,
    )


# -- error rules -----------------------------------------------------------------------------


def test_a_403_with_retry_after_is_transient_and_one_without_stays_fatal() -> None:
    """A rule on status and header retries a rate limit; the status list decides the rest."""
    errors = _rules((RATE_LIMITED, "transient"))

    limited = reply(403, {}, {"Retry-After": "3"})
    denied = reply(403, {})

    assert classify_reply(limited, errors, accepted=False) == "transient"
    assert classify_reply(denied, errors, accepted=False) == "fatal"


def test_the_first_rule_that_holds_decides() -> None:
    """Rules are tried in order."""
    errors = _rules(
        (Condition(kind="status", status=(409,)), "observe"),
        (Condition(kind="status", status=(409, 410)), "fatal"),
    )

    assert classify_reply(reply(409, {}), errors, accepted=False) == "observe"
    assert classify_reply(reply(410, {}), errors, accepted=False) == "fatal"


def test_a_rule_may_test_the_error_code_in_an_xml_body() -> None:
    """The code found by a pattern on the body's text is what 'error' tests."""
    errors = _rules(
        (Condition(kind="error", values=("SlowDown",)), "transient"),
        code_from=(ErrorSource(pattern="<Code>([^<]+)</Code>"),),
    )
    xml = b"<Error><Code>SlowDown</Code><Message>later</Message></Error>"

    assert classify_reply(reply(400, xml), errors, accepted=False) == "transient"
    assert error_code(reply(400, xml), errors) == "SlowDown"


def test_a_rule_may_test_a_body_value() -> None:
    """Body tests read the error body as JSON."""
    errors = _rules(
        (Condition(kind="equals", pointer="/reason", values=("quota",)), "transient")
    )

    assert classify_reply(reply(403, {"reason": "quota"}), errors, accepted=False) == (
        "transient"
    )


def test_without_rules_classify_reply_is_the_status_classification() -> None:
    """No rule: today's retry_status / fatal_status / acceptance order, unchanged."""
    errors = Errors()

    assert classify_reply(reply(429), errors, accepted=False) == "transient"
    assert classify_reply(reply(403), errors, accepted=False) == "fatal"
    assert classify_reply(reply(200), errors, accepted=True) == "observe"


# -- error codes and messages ----------------------------------------------------------------


def test_an_error_code_is_read_from_a_header_first_when_listed_first() -> None:
    """x-amzn-ErrorType 'Code:https://…' gives 'Code' (the pattern's group)."""
    got = reply(400, {"__type": "other"}, {"x-amzn-ErrorType": "Throttling:http://x"})

    assert error_code(got, AMZN) == "Throttling"


def test_an_error_code_falls_back_to_the_next_source() -> None:
    """Without the header, the body's __type (namespace cut off) is the code."""
    got = reply(400, {"__type": "com.amazon#ResourceNotFoundException"})

    assert error_code(got, AMZN) == "ResourceNotFoundException"


def test_code_pointer_is_read_before_code_from() -> None:
    """code_pointer keeps its place: read first."""
    errors = Errors(code_pointers=("/code",), code_from=(ErrorSource(header="x-c"),))

    assert error_code(reply(400, {"code": "A"}, {"x-c": "B"}), errors) == "A"
    assert error_code(reply(400, {}, {"x-c": "B"}), errors) == "B"


def test_no_error_code_when_no_source_has_one() -> None:
    """No header, no JSON, no pattern match: no code."""
    got = reply(400, b"<html>oops</html>")

    assert error_code(got, AMZN) is None


def test_no_error_code_without_sources() -> None:
    """A spec that says nothing about codes reads none."""
    assert error_code(reply(400, {"code": "A"}), Errors()) is None


def test_a_pattern_without_a_group_keeps_the_whole_match() -> None:
    """A pattern with no group gives what it matched."""
    errors = Errors(code_from=(ErrorSource(header="x-c", pattern="E[0-9]+"),))

    assert error_code(reply(400, None, {"x-c": "code E42 here"}), errors) == "E42"


def test_an_empty_header_or_match_is_no_code() -> None:
    """An empty value is no code: the next source is tried."""
    errors = Errors(
        code_from=(
            ErrorSource(header="x-a"),
            ErrorSource(header="x-b", pattern="^(.*)$"),
            ErrorSource(header="x-c"),
        )
    )

    got = reply(400, None, {"x-a": "", "x-b": "", "x-c": "C"})

    assert error_code(got, errors) == "C"


def test_a_pointer_source_on_a_body_that_is_not_json_gives_nothing() -> None:
    """A pointer source reads JSON only."""
    errors = Errors(code_from=(ErrorSource(pointer="/code"),))

    assert error_code(reply(400, b"<x/>"), errors) is None


def test_an_error_message_is_read_from_message_from() -> None:
    """message_from is read after message_pointer, and shows in the status error."""
    got = reply(403, {"__type": "AccessDenied", "message": "no"}, url=f"{BASE}/j?s=1")

    error = status_error(got, AMZN, Redactor().text, retryable=False)

    assert (error.code, error.remote_message) == ("AccessDenied", "no")
    assert error_message(got, Errors()) is None


# -- wait hints ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "seconds"),
    [
        ("delta", "7", 7.0),
        ("delta", " 2.5 ", 2.5),
        ("delta_ms", "1500", 1.5),
        ("epoch", str(NOW + 30), 30.0),
        ("epoch", str(NOW - 30), 0.0),
        ("retry_after", "4", 4.0),
        ("delta", "soon", None),
        ("delta", "-1", None),
        ("delta", "nan", None),
        ("epoch", "inf", None),
        ("delta", None, None),
    ],
)
def test_parse_wait_reads_each_kind(
    kind: Any, value: str | None, seconds: float | None
) -> None:
    """Each kind is read (an epoch in the past means now); junk is unreadable."""
    assert timing.parse_wait(kind, value, now=NOW) == seconds


def _schedule(*hints: WaitHint, **bounds: Any) -> Schedule:
    return Schedule(retry_after=RetryAfter(hints=hints, **bounds))


RESET = WaitHint(
    header="X-RateLimit-Reset",
    kind="epoch",
    when=Condition(kind="le", header="x-ratelimit-remaining", values=(0,)),
)


def test_a_reset_header_is_honoured_when_its_condition_holds() -> None:
    """x-ratelimit-reset (epoch) counts when nothing is left."""
    headers = {"x-ratelimit-reset": str(NOW + 40), "x-ratelimit-remaining": "0"}

    assert timing.server_hint(headers, _schedule(RESET), scale=1, now=NOW) == 40


def test_a_reset_header_is_ignored_while_requests_are_left() -> None:
    """The same reset with requests left asks for nothing."""
    headers = {"x-ratelimit-reset": str(NOW + 40), "x-ratelimit-remaining": "5"}

    assert timing.server_hint(headers, _schedule(RESET), scale=1, now=NOW) is None


def test_the_longest_of_retry_after_and_the_hints_wins_clamped() -> None:
    """Retry-After and every hint that applies: the longest, clamped by min and max."""
    delta = WaitHint(header="x-wait", kind="delta")
    schedule = _schedule(delta, max=20)

    assert (
        timing.server_hint(
            {"retry-after": "5", "x-wait": "9"}, schedule, scale=1, now=NOW
        )
        == 9
    )
    assert (
        timing.server_hint(
            {"retry-after": "9", "x-wait": "5"}, schedule, scale=1, now=NOW
        )
        == 9
    )
    assert timing.server_hint({"x-wait": "90"}, schedule, scale=1, now=NOW) == 20
    assert timing.server_hint({"x-wait": "junk"}, schedule, scale=1, now=NOW) is None


def test_a_hint_sets_the_next_poll_through_the_one_timing_rule() -> None:
    """The poll wait is the longer of the schedule's and the hint's."""
    document = toy_document()
    lifecycle_of(document)["schedule"] = {
        "interval": 2,
        "retry_after": {"hints": [{"header": "x-wait", "kind": "delta"}]},
    }
    lifecycle: Lifecycle = load(document).lifecycle("job")

    plan = timing.next_poll(
        lifecycle,
        "Running",
        1,
        1,
        None,
        {"x-wait": "11"},
        scale=1,
        rng=random.Random(0),
        now=NOW,
    )

    assert plan.due == NOW + 11


# -- jitter minimum --------------------------------------------------------------------------


def test_full_jitter_with_a_minimum_draws_from_min_to_delay() -> None:
    """Smithy's waiters draw from [minDelay, delay]."""
    schedule = Schedule(jitter=Jitter(kind="full", min=2))
    rng = random.Random(1)

    draws = [timing.jittered(10, schedule, rng) for _ in range(200)]

    assert 2 <= min(draws) < 3
    assert 9 < max(draws) <= 10


def test_the_jitter_minimum_is_scaled_and_never_lengthens_a_wait() -> None:
    """The minimum is times the scale; a delay under it is kept whole."""
    schedule = Schedule(jitter=Jitter(kind="full", min=2))
    rng = random.Random(1)

    assert timing.jittered(0.5, schedule, rng) == 0.5
    scaled = [timing.jittered(1, schedule, rng, scale=0.1) for _ in range(100)]
    assert min(scaled) >= 0.2


# -- paging stops ----------------------------------------------------------------------------

HAS_MORE = Condition(kind="equals", pointer="/has_more", values=(False,))
PAGE_URL = f"{BASE}/docs?after=c1"


def _following(paging: Paging, body: Any, *, url: str = PAGE_URL) -> str | None:
    return next_page(paging, body, url=url, base_url=BASE, listed=2, count=2)


def test_a_stop_flag_ends_the_listing_even_with_a_cursor() -> None:
    """has_more: false is the last page, whatever cursor it carries."""
    paging = Paging(
        kind="cursor",
        cursor_param="after",
        next_pointers=("/next",),
        stop_when=HAS_MORE,
    )

    assert _following(paging, {"has_more": False, "next": "c2"}) is None
    assert (
        _following(paging, {"has_more": True, "next": "c2"}) == f"{BASE}/docs?after=c2"
    )


def test_a_stop_condition_may_read_the_pages_headers() -> None:
    """stop_when sees the page's status and headers too."""
    paging = Paging(
        kind="next_link",
        next_pointers=("/next",),
        stop_when=Condition(kind="equals", header="x-last", values=("1",)),
    )

    last = next_page(
        paging,
        {"next": "/docs?page=3"},
        url=PAGE_URL,
        base_url=BASE,
        listed=2,
        count=2,
        status=200,
        headers={"x-last": "1"},
    )

    assert last is None


def test_a_repeated_cursor_is_a_protocol_error() -> None:
    """A page giving back the cursor just sent would loop to max_pages: refused, not retried."""
    paging = Paging(kind="cursor", cursor_param="after", next_pointers=("/next",))

    with pytest.raises(RemoteError) as info:
        _following(paging, {"next": "c1"})

    assert (info.value.kind, info.value.retryable) == ("protocol", False)
    assert "c1" not in str(info.value)
    assert str(info.value) == (
        "the page at api.example.test/docs gives the same cursor as the page "
        "before: the listing would never end"
    )


def test_a_first_page_without_a_cursor_is_not_a_repeat() -> None:
    """The first page sent no cursor: any cursor it gives is new."""
    paging = Paging(kind="cursor", cursor_param="after", next_pointers=("/next",))

    assert _following(
        paging, {"next": "c1"}, url=f"{BASE}/docs?x=1&after=c0&after=c9"
    ) == (f"{BASE}/docs?x=1&after=c1")
    assert (
        _following(paging, {"next": "c1"}, url=f"{BASE}/docs")
        == f"{BASE}/docs?after=c1"
    )


def test_a_next_link_to_the_same_page_is_a_protocol_error() -> None:
    """A next link naming the page just read is refused."""
    paging = Paging(kind="next_link", next_pointers=("/next",))

    with pytest.raises(RemoteError) as info:
        _following(paging, {"next": "/docs?after=c1"})

    assert info.value.kind == "protocol"
    assert "next link" in str(info.value)


# -- through on_reply ------------------------------------------------------------------------


def _bound_with_error_rules() -> Binding:
    """The toy job, where an S3-style NotFound (XML or JSON) means Failed."""
    document = toy_document()
    lifecycle = lifecycle_of(document)
    lifecycle["errors"].update(
        rules=[
            {"when": {"error": "NotFound"}, "as": "observe"},
            {
                "when": {"all": [{"status": 403}, {"header": "retry-after"}]},
                "as": "transient",
            },
        ],
        code_from=[{"pattern": "<Code>([^<]+)</Code>"}],
    )
    lifecycle["poll"]["observe"].insert(
        0, {"when": {"error": "NotFound"}, "state": "Failed"}
    )
    return binding(document)


@pytest.mark.parametrize(
    "body", [b"<Error><Code>NotFound</Code></Error>", {"error": {"code": "NotFound"}}]
)
def test_an_error_reply_an_error_rule_observes_moves_the_job(body: Any) -> None:
    """An error the rules send to observe is read by the observe rules, XML or JSON."""
    b = _bound_with_error_rules()

    done = step.on_reply(
        b, job(b, state="Running"), reply(404, body), now=10.0, rng=random.Random(0)
    )

    assert (done.job.state, done.job.phase, done.job.error) == (
        "Failed",
        Phase.DONE,
        None,
    )


def test_a_rate_limited_403_is_retried_and_a_plain_one_ends_the_job() -> None:
    """The error rule makes a 403 with Retry-After a retry; a bare 403 stays fatal."""
    b = _bound_with_error_rules()
    running = job(b, state="Running")

    limited = step.on_reply(
        b, running, reply(403, {}, {"Retry-After": "5"}), now=10.0, rng=random.Random(0)
    )
    denied = step.on_reply(b, running, reply(403, {}), now=10.0, rng=random.Random(0))

    assert (limited.job.phase, limited.job.failures, limited.job.due) == (
        Phase.POLL,
        1,
        15.0,
    )
    assert (denied.job.phase, denied.job.end) == (Phase.DONE, End.ERRORED)


def test_an_error_rule_observing_a_submit_error_leaves_it_an_error() -> None:
    """Only a poll reads an error reply as a state: a submit's 404 NotFound stays fatal."""
    b = _bound_with_error_rules()
    submitting = step.new_submission(
        b, key="k1", inputs={"region": "eu", "api_version": "1"}, filters=None, now=0.0
    )
    got = reply(404, b"<Code>NotFound</Code>", url=f"{BASE}/regions/eu/jobs")

    done = step.on_reply(b, submitting, got, now=10.0, rng=random.Random(0))

    assert (done.job.phase, done.job.end, done.job.job_id) == (
        Phase.DONE,
        End.ERRORED,
        "",
    )
    assert done.job.error is not None
    assert (done.job.error["status"], done.job.error["code"]) == (404, "NotFound")
