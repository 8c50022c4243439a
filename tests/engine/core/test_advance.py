"""advance(): one move rule for jobs and items: legal, inferred, illegal, unknown, by policy."""

from __future__ import annotations

from typing import Any

from engine._core.advance import advance, path_to
from engine._core.binding import Binding
from engine._core.observe import Observation
from engine._core.state import Record
from tests.engine.core.conftest import (
    batch_document,
    binding,
    lifecycle_of,
    toy_document,
)


class _Holder:
    def __init__(self, state: str) -> None:
        self.state = state


def _policy(**policy: str) -> Binding:
    document = toy_document()
    lifecycle_of(document)["policy"] = policy
    return binding(document)


def _advance(
    b: Binding, source: str, seen: Observation, **kwargs: Any
) -> tuple[_Holder, Any]:
    holder = _Holder(source)
    moved = advance(
        b.machine, b.lifecycle, holder, seen, trigger="poll", http_status=200, **kwargs
    )
    return holder, moved


def test_path_to_the_same_state_is_empty(toy: Binding) -> None:
    """Staying put needs no move."""
    assert path_to(toy.machine, toy.lifecycle, "Running", "Running") == ()


def test_path_to_infers_the_states_skipped(toy: Binding) -> None:
    """With skipped_states=infer, a jump follows the shortest legal path."""
    assert path_to(toy.machine, toy.lifecycle, "Queued", "Done") == ("Running", "Done")


def test_path_to_without_inference_allows_only_declared_moves() -> None:
    """With skipped_states=illegal, only a declared move is a path."""
    b = _policy(skipped_states="illegal")

    assert path_to(b.machine, b.lifecycle, "Queued", "Running") == ("Running",)
    assert path_to(b.machine, b.lifecycle, "Queued", "Done") is None


def test_a_legal_move_is_recorded_and_applied(toy: Binding) -> None:
    """A declared move changes the state and records one transition."""
    holder, moved = _advance(toy, "Queued", Observation("Running", "running"))

    assert holder.state == "Running"
    assert moved.entered == ("Running",)
    assert moved.records == (
        Record(
            kind="transition",
            from_state="Queued",
            to_state="Running",
            trigger="poll",
            http_status=200,
            observed="running",
        ),
    )
    assert moved.failure is None


def test_skipped_states_are_entered_and_marked_inferred(toy: Binding) -> None:
    """Each state on the inferred path is recorded; all but the last are 'inferred'."""
    holder, moved = _advance(toy, "Queued", Observation("Done", "done"))

    assert holder.state == "Done"
    assert moved.entered == ("Running", "Done")
    assert [(r.from_state, r.to_state, r.trigger) for r in moved.records] == [
        ("Queued", "Running", "inferred"),
        ("Running", "Done", "poll"),
    ]


def test_no_change_records_nothing(toy: Binding) -> None:
    """The same state again is no move and no record."""
    holder, moved = _advance(toy, "Running", Observation("Running", "running"))

    assert (holder.state, moved.records, moved.entered) == ("Running", (), ())


def test_an_illegal_move_is_refused_under_reject(toy: Binding) -> None:
    """illegal_transition=reject: the state stays, the move is recorded, the job goes on."""
    holder, moved = _advance(toy, "Done", Observation("Running", "running"))

    assert holder.state == "Done"
    assert moved.failure is None
    assert moved.records == (
        Record(
            kind="illegal_transition",
            from_state="Done",
            to_state="Running",
            trigger="poll",
            http_status=200,
            observed="running",
            detail={"policy": "reject"},
        ),
    )


def test_an_illegal_move_fails_under_fail() -> None:
    """illegal_transition=fail: the move is recorded and the job must end."""
    b = _policy(illegal_transition="fail")

    holder, moved = _advance(b, "Done", Observation("Running", "running"))

    assert holder.state == "Done"
    assert moved.failure == ("illegal_transition", "illegal transition Done -> Running")
    assert moved.records[0].detail == {"policy": "fail"}


def test_an_unknown_value_is_reported_under_the_observations_policy(
    toy: Binding,
) -> None:
    """An unknown value carries its rule's policy; reject goes on, recorded."""
    _, moved = _advance(toy, "Running", Observation(None, "exploding", "reject"))

    assert moved.failure is None
    assert moved.records == (
        Record(
            kind="unknown_state",
            from_state="Running",
            trigger="poll",
            http_status=200,
            observed="exploding",
            detail={"policy": "reject"},
        ),
    )


def test_an_unknown_value_under_fail_ends_the_job(toy: Binding) -> None:
    """An observation whose policy is fail makes the job fail, naming the value."""
    _, moved = _advance(toy, "Running", Observation(None, "exploding", "fail"))

    assert moved.failure == ("unknown_state", "unknown state value 'exploding'")


def test_an_unknown_value_without_a_policy_takes_the_lifecycles() -> None:
    """An observation that carries no policy falls back on the lifecycle's unknown_state."""
    b = _policy(unknown_state="fail")

    _, moved = _advance(b, "Running", Observation(None, "?"))

    assert moved.failure == ("unknown_state", "unknown state value '?'")


def test_a_long_unknown_value_is_cut_in_the_message(toy: Binding) -> None:
    """A hostile server picks the value: the message shows at most 80 characters of it."""
    _, moved = _advance(toy, "Running", Observation(None, "x" * 10_000, "fail"))

    assert moved.failure is not None
    assert moved.failure[1] == "unknown state value '" + "x" * 76 + "..."


def test_item_moves_are_item_transitions_naming_the_item() -> None:
    """An item's move records item_transition with the item's id and lifecycle."""
    b = binding(batch_document(), "batch").item
    assert b is not None

    holder, moved = _advance(
        b, "Waiting", Observation("Working", "working"), item_id="d1"
    )

    assert holder.state == "Working"
    assert [(r.kind, r.item_id, r.item_lifecycle) for r in moved.records] == [
        ("item_transition", "d1", "doc")
    ]


def test_item_refusals_name_the_item() -> None:
    """An item's unknown value is recorded with the item's id and lifecycle."""
    b = binding(batch_document(), "batch").item
    assert b is not None

    _, moved = _advance(b, "Waiting", Observation(None, "?", "reject"), item_id="d1")

    assert [(r.kind, r.item_id, r.item_lifecycle) for r in moved.records] == [
        ("unknown_state", "d1", "doc")
    ]
