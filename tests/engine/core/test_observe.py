"""Observe rules: response → state, without a server."""

from __future__ import annotations

from typing import Any

from engine._core.observe import holds, observe
from statemachines import load_spec
from statemachines.spec import Condition, ObserveRule

MINDEE = load_spec("mindee").lifecycle("inference").poll.observe


def _job(status: str) -> dict[str, Any]:
    return {"job": {"id": "x", "status": status}}


def test_redirect_is_the_signal_for_processed() -> None:
    """Mindee's 302 means Processed, whatever the body says."""
    seen = observe(
        MINDEE, 302, {"location": "/r"}, _job("Processing"), default_policy="reject"
    )

    assert seen.state == "Processed"
    assert seen.raw == 302


def test_status_value_maps_to_state() -> None:
    """A 200 job body maps its status through the value map."""
    seen = observe(MINDEE, 200, {}, _job("Failed"), default_policy="reject")

    assert (seen.state, seen.raw, seen.unknown) == ("Failed", "Failed", None)


def test_unknown_value_is_reported_with_policy() -> None:
    """A value missing from the map is unknown, with the lifecycle's policy."""
    seen = observe(MINDEE, 200, {}, _job("Exploding"), default_policy="fail")

    assert (seen.state, seen.raw, seen.unknown) == (None, "Exploding", "fail")


def test_missing_value_is_unknown() -> None:
    """A body without the pointer's value is unknown (raw None)."""
    seen = observe(MINDEE, 200, {}, {"unexpected": True}, default_policy="reject")

    assert (seen.state, seen.raw, seen.unknown) == (None, None, "reject")


def test_skip_falls_through_to_the_next_rule() -> None:
    """on_unknown=skip tries the next rule."""
    rules = (
        ObserveRule(pointer="/a", mapping=(("x", "X"),), on_unknown="skip"),
        ObserveRule(pointer="/b", mapping=(("y", "Y"),)),
    )

    assert (
        observe(rules, 200, {}, {"a": "?", "b": "y"}, default_policy="reject").state
        == "Y"
    )


def test_several_fields_together() -> None:
    """An 'all' condition needs every field (GitHub-style status + conclusion)."""
    done_ok = Condition(
        kind="all",
        children=(
            Condition(kind="equals", pointer="/status", values=("completed",)),
            Condition(kind="in", pointer="/conclusion", values=("success", "neutral")),
        ),
    )
    rules = (
        ObserveRule(when=done_ok, state="Succeeded"),
        ObserveRule(
            pointer="/status", mapping=(("completed", "Failed"), ("queued", "Queued"))
        ),
    )

    ok = observe(
        rules,
        200,
        {},
        {"status": "completed", "conclusion": "neutral"},
        default_policy="reject",
    )
    bad = observe(
        rules,
        200,
        {},
        {"status": "completed", "conclusion": "failure"},
        default_policy="reject",
    )

    assert ok.state == "Succeeded"
    assert bad.state == "Failed"


def test_header_presence_and_exists_conditions() -> None:
    """Header presence and pointer existence conditions."""
    assert holds(
        Condition(kind="header", header="location"), 200, {"location": "/x"}, None
    )
    assert not holds(Condition(kind="header", header="location"), 200, {}, None)
    assert holds(Condition(kind="exists", pointer="/r", exists=True), 200, {}, {"r": 1})
    assert holds(
        Condition(kind="exists", pointer="/r", exists=False), 200, {}, {"r": None}
    )


def test_boolean_true_does_not_equal_one() -> None:
    """JSON true and 1 are different values for equals."""
    condition = Condition(kind="equals", pointer="/v", values=(1,))

    assert holds(condition, 200, {}, {"v": 1})
    assert holds(condition, 200, {}, {"v": 1.0})
    assert not holds(condition, 200, {}, {"v": True})


def test_any_condition() -> None:
    """An 'any' condition needs one child."""
    condition = Condition(
        kind="any",
        children=(
            Condition(kind="status", status=(201,)),
            Condition(kind="status", status=(202,)),
        ),
    )

    assert holds(condition, 202, {}, None)
    assert not holds(condition, 200, {}, None)


def test_a_value_condition_on_a_missing_member_does_not_hold() -> None:
    """equals/in on a pointer the body does not have is false, not an error."""
    condition = Condition(kind="equals", pointer="/v", values=(None,))

    assert not holds(condition, 200, {}, {"other": 1})


def test_a_fixed_state_rule_applies_when_its_condition_holds() -> None:
    """A rule with a fixed state gives it, raw value the HTTP status."""
    rules = (ObserveRule(when=Condition(kind="status", status=(410,)), state="Gone"),)

    seen = observe(rules, 410, {}, None, default_policy="reject")

    assert (seen.state, seen.raw, seen.unknown) == ("Gone", 410, None)


def test_a_response_no_rule_applies_to_is_unknown_by_the_lifecycles_policy() -> None:
    """Every rule's condition false (or skipped): unknown, raw None, default policy."""
    rules = (
        ObserveRule(when=Condition(kind="status", status=(410,)), state="Gone"),
        ObserveRule(pointer="/a", mapping=(("x", "X"),), on_unknown="skip"),
    )

    seen = observe(rules, 200, {}, {"a": "?"}, default_policy="fail")

    assert (seen.state, seen.raw, seen.unknown) == (None, None, "fail")


def test_a_rules_own_unknown_policy_wins_over_the_lifecycles() -> None:
    """on_unknown=fail on the rule applies even when the lifecycle rejects."""
    rules = (ObserveRule(pointer="/a", mapping=(("x", "X"),), on_unknown="fail"),)

    seen = observe(rules, 200, {}, {"a": "y"}, default_policy="reject")

    assert (seen.state, seen.raw, seen.unknown) == (None, "y", "fail")


def test_a_non_string_value_never_matches_a_map_key() -> None:
    """The JSON number 1 is not the map key "1"."""
    rules = (ObserveRule(pointer="/a", mapping=(("1", "One"),)),)

    seen = observe(rules, 200, {}, {"a": 1}, default_policy="reject")

    assert (seen.state, seen.raw) == (None, 1)
