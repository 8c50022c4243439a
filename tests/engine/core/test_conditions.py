"""Conditions of spec language 2 on plain values: not, numbers, headers, arrays, error codes."""

from __future__ import annotations

from typing import Any

import pytest

from engine._core.observe import holds, observe
from statemachines.spec import Condition, ObserveRule

EC2: dict[str, Any] = {
    "Reservations": [
        {"Instances": [{"State": {"Name": "running"}}, {"State": {"Name": "pending"}}]},
        {"Instances": [{"State": {"Name": "running"}}]},
    ]
}
STATE_NAMES = "/Reservations/*/Instances/*/State/Name"


def _holds(
    condition: Condition,
    body: Any = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    code: str | None = None,
) -> bool:
    return holds(condition, status, headers or {}, body, code=code)


def _value(kind: str, value: Any, **fields: Any) -> Condition:
    values = tuple(value) if kind == "in" else (value,)
    return Condition(kind=kind, values=values, **fields)  # type: ignore[arg-type] # kind is checked by the schema


# -- not -------------------------------------------------------------------------------------


def test_not_holds_when_its_condition_does_not() -> None:
    """'not' negates its one condition."""
    ready = _value("equals", "ready", pointer="/status")
    negated = Condition(kind="not", children=(ready,))

    assert _holds(negated, {"status": "busy"}) is True
    assert _holds(negated, {"status": "ready"}) is False


def test_not_passes_the_error_code_on() -> None:
    """A negated error test reads the same error code."""
    negated = Condition(kind="not", children=(Condition(kind="error", values=("E",)),))

    assert _holds(negated, code="E") is False
    assert _holds(negated, code="F") is True


# -- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("lt", 9, True),
        ("lt", 10, False),
        ("le", 10, True),
        ("le", 11, False),
        ("gt", 11, True),
        ("gt", 10, False),
        ("ge", 10, True),
        ("ge", 9.5, False),
    ],
)
def test_numeric_comparisons_on_a_json_number(
    kind: str, value: float, expected: bool
) -> None:
    """lt, le, gt and ge compare the value at the pointer with the spec's number."""
    condition = _value(kind, 10, pointer="/n")

    assert _holds(condition, {"n": value}) is expected


@pytest.mark.parametrize("value", ["5", True, None, [1]])
def test_a_number_test_on_anything_but_a_number_does_not_hold(value: Any) -> None:
    """Text, booleans, null and arrays in a body are not numbers: the test fails."""
    condition = _value("lt", 10, pointer="/n")

    assert _holds(condition, {"n": value}) is False


def test_a_number_test_on_a_missing_value_does_not_hold() -> None:
    """No value at the pointer: no comparison holds."""
    assert _holds(_value("ge", 0, pointer="/n"), {}) is False


def test_a_number_test_against_a_boolean_limit_never_holds() -> None:
    """A limit that is not a number (only possible by hand) holds for nothing."""
    assert _holds(_value("lt", value=True, pointer="/n"), {"n": 0}) is False


# -- headers ---------------------------------------------------------------------------------


def test_a_header_number_test_reads_its_text_as_a_number() -> None:
    """x-ratelimit-remaining: 0 is 'le 0'; the spec's name may be any case."""
    condition = _value("le", 0, header="X-RateLimit-Remaining")

    assert _holds(condition, headers={"x-ratelimit-remaining": "0"}) is True
    assert _holds(condition, headers={"x-ratelimit-remaining": "12"}) is False


@pytest.mark.parametrize("text", ["", "none", "1e999x"])
def test_a_header_that_is_not_a_number_fails_a_number_test(text: str) -> None:
    """Header text that is not a number holds for no comparison."""
    condition = _value("le", 0, header="x-left")

    assert _holds(condition, headers={"x-left": text}) is False


def test_a_header_value_test_on_an_absent_header_does_not_hold() -> None:
    """A value test on a header the response lacks fails (exists: false holds)."""
    assert _holds(_value("equals", "0", header="x-left")) is False
    assert _holds(Condition(kind="exists", header="x-left", exists=False)) is True


def test_a_header_equals_and_in_compare_text() -> None:
    """A header's equals and in compare its text exactly."""
    headers = {"x-kind": "throttle"}

    assert _holds(_value("equals", "throttle", header="x-kind"), headers=headers)
    assert _holds(_value("in", ["a", "throttle"], header="x-kind"), headers=headers)
    assert not _holds(_value("equals", "Throttle", header="x-kind"), headers=headers)


# -- arrays ----------------------------------------------------------------------------------


def test_match_all_holds_when_every_element_passes() -> None:
    """pathAll: every instance of every reservation is running."""
    running = _value("equals", "running", pointer=STATE_NAMES, match="all")
    body = {"Reservations": [{"Instances": [{"State": {"Name": "running"}}]}] * 2}

    assert _holds(running, body) is True
    assert _holds(running, EC2) is False


def test_match_any_holds_when_one_element_passes() -> None:
    """pathAny: one pending instance is enough."""
    pending = _value("in", ["pending", "stopping"], pointer=STATE_NAMES, match="any")

    assert _holds(pending, EC2) is True
    assert (
        _holds(_value("equals", "gone", pointer=STATE_NAMES, match="any"), EC2) is False
    )


@pytest.mark.parametrize("match", ["all", "any"])
def test_an_empty_array_holds_for_neither_all_nor_any(match: str) -> None:
    """An empty list holds for neither, as botocore's pathAll and pathAny."""
    condition = _value("equals", "running", pointer=STATE_NAMES, match=match)

    assert _holds(condition, {"Reservations": []}) is False
    assert _holds(condition, {}) is False


def test_elements_without_the_value_are_left_out_of_a_value_test() -> None:
    """An element without the value (or null) neither passes nor fails 'all'."""
    body = {"items": [{"status": "ok"}, {}, {"status": None}]}

    assert _holds(_value("equals", "ok", pointer="/items/*/status", match="all"), body)


def test_a_number_test_over_every_element() -> None:
    """Numbers compare per element: all below the limit."""
    condition = _value("lt", 3, pointer="/items/*/tries", match="all")

    assert _holds(condition, {"items": [{"tries": 1}, {"tries": 2}]}) is True
    assert _holds(condition, {"items": [{"tries": 1}, {"tries": 3}]}) is False


def test_exists_over_every_element_counts_elements_without_the_value() -> None:
    """'exists' with 'all' asks that every element have the value."""
    has_error = Condition(kind="exists", pointer="/items/*/error", match="all")
    any_error = Condition(kind="exists", pointer="/items/*/error", match="any")
    body = {"items": [{"error": "x"}, {}]}

    assert _holds(has_error, body) is False
    assert _holds(any_error, body) is True


# -- error codes -----------------------------------------------------------------------------


def test_an_error_test_holds_for_one_of_its_codes() -> None:
    """The error matcher (botocore's): the service's error code is one of these."""
    missing = Condition(kind="error", values=("NotFound", "Gone"))

    assert _holds(missing, status=400, code="Gone") is True
    assert _holds(missing, status=400, code="Throttled") is False
    assert _holds(missing, status=400) is False


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [(200, None, False), (404, None, True), (200, "Oops", True)],
)
def test_error_true_holds_for_an_error_status_or_code(
    status: int, code: str | None, expected: bool
) -> None:
    """'error: true' holds for a status of 400 or more, or any error code; false is its opposite."""
    is_error = Condition(kind="error", exists=True)
    is_fine = Condition(kind="error", exists=False)

    assert _holds(is_error, status=status, code=code) is expected
    assert _holds(is_fine, status=status, code=code) is not expected


def test_all_and_any_pass_the_error_code_to_their_children() -> None:
    """Nested error tests see the code given to the outer condition."""
    code = Condition(kind="error", values=("E",))
    both = Condition(
        kind="all", children=(Condition(kind="status", status=(400,)), code)
    )
    either = Condition(
        kind="any", children=(Condition(kind="status", status=(500,)), code)
    )

    assert _holds(both, status=400, code="E") is True
    assert _holds(either, status=400, code="E") is True


def test_an_observe_rule_reads_the_error_code() -> None:
    """A rule 'state X when the error code is Y' applies to an error reply."""
    rules = (
        ObserveRule(when=Condition(kind="error", values=("NotFound",)), state="Gone"),
        ObserveRule(pointer="/status", mapping=(("ok", "Done"),)),
    )

    seen = observe(rules, 404, {}, None, default_policy="reject", code="NotFound")

    assert seen.state == "Gone"


# -- case-insensitive maps -------------------------------------------------------------------


def test_an_ignore_case_map_matches_whatever_the_case() -> None:
    """azure-core compares statuses ignoring case: 'SUCCEEDED' is 'Succeeded'."""
    rule = ObserveRule(
        pointer="/status", mapping=(("Succeeded", "Done"),), ignore_case=True
    )

    seen = observe((rule,), 200, {}, {"status": "SUCCEEDED"}, default_policy="reject")

    assert (seen.state, seen.raw) == ("Done", "SUCCEEDED")


def test_an_ignore_case_map_still_reports_an_unknown_value() -> None:
    """A value no key matches, in any case, is unknown."""
    rule = ObserveRule(
        pointer="/status", mapping=(("Succeeded", "Done"),), ignore_case=True
    )

    seen = observe((rule,), 200, {}, {"status": "Exploded"}, default_policy="reject")

    assert (seen.state, seen.unknown) == (None, "reject")


def test_a_map_stays_case_sensitive_by_default() -> None:
    """Without ignore_case, 'SUCCEEDED' is not 'Succeeded'."""
    rule = ObserveRule(pointer="/status", mapping=(("Succeeded", "Done"),))

    seen = observe((rule,), 200, {}, {"status": "SUCCEEDED"}, default_policy="fail")

    assert (seen.state, seen.unknown) == (None, "fail")


def test_an_ignore_case_map_looks_up_text_only() -> None:
    """A number is never looked up, case or not."""
    rule = ObserveRule(pointer="/status", mapping=(("1", "Done"),), ignore_case=True)

    seen = observe((rule,), 200, {}, {"status": 1}, default_policy="reject")

    assert seen.state is None
