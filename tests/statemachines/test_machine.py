"""Lifecycle → one shared transitions.Machine: legal moves pass, illegal ones are refused."""

from __future__ import annotations

import attrs
import pytest

from statemachines import (
    Lifecycle,
    Outcome,
    State,
    Transition,
    build_machine,
    load_builtin,
    load_document,
    load_spec,
)
from statemachines.errors import IllegalTransitionError
from statemachines.load import builtin_path
from statemachines.machine import trigger_name
from tests.statemachines.helpers import job_lifecycle, minimal_spec


@attrs.define
class Job:
    """A job record as the engine keeps it: slotted, with a ``state`` and nothing else."""

    state: str


def _mobile_topup() -> Lifecycle:
    return load_builtin("oneclickdz").lifecycle("mobile_topup")


class TestBuild:
    """One machine per lifecycle, shared by every job and holding none."""

    def test_same_lifecycle_gives_the_same_machine(self) -> None:
        """build_machine() is memoised: a lifecycle compiles once."""
        lifecycle = _mobile_topup()

        first, second = build_machine(lifecycle), build_machine(lifecycle)

        assert first is second
        assert first.machine is second.machine

    def test_equal_lifecycles_share_one_machine(self) -> None:
        """The same lifecycle loaded twice (name and path) shares one machine."""
        from_path = load_spec(str(builtin_path("mindee"))).lifecycle("inference")

        machine = build_machine(from_path)

        assert machine is build_machine(load_builtin("mindee").lifecycle("inference"))

    def test_machine_has_no_models(self) -> None:
        """The shared machine is built with model=None and keeps no model list."""
        compiled = build_machine(_mobile_topup())

        models = compiled.machine.models

        assert models == []

    def test_machine_starts_in_the_initial_state(self) -> None:
        """The machine's initial state is the lifecycle's initial state."""
        compiled = build_machine(_mobile_topup())

        initial = compiled.machine.initial

        assert initial == "PENDING"

    def test_only_declared_moves_become_events(self) -> None:
        """auto_transitions is off: events exist only for states with incoming moves."""
        compiled = build_machine(_mobile_topup())

        events = set(compiled.machine.events)

        assert events == {
            "to_HANDLING",
            "to_FULFILLED",
            "to_REFUNDED",
            "to_UNKNOWN_ERROR",
        }

    def test_legal_set_is_every_declared_pair(self) -> None:
        """.legal holds exactly the declared (source, dest) pairs."""
        compiled = build_machine(load_builtin("mindee").lifecycle("inference"))

        legal = compiled.legal

        assert legal == {("Processing", "Processed"), ("Processing", "Failed")}

    def test_duplicate_declared_move_is_compiled_once(self) -> None:
        """A move declared twice becomes one machine transition."""
        document = minimal_spec()
        job_lifecycle(document)["transitions"].append(
            {"from": "Queued", "to": "Running"}
        )
        lifecycle = load_document(document).lifecycle("job")

        compiled = build_machine(lifecycle)

        assert len(compiled.machine.events["to_Running"].transitions["Queued"]) == 1

    def test_trigger_name_prefixes_the_destination(self) -> None:
        """The event that moves a job into X is 'to_X'."""
        dest = "FULFILLED"

        name = trigger_name(dest)

        assert name == "to_FULFILLED"


class TestFire:
    """fire() moves a job through the shared machine, or refuses."""

    def test_legal_move_changes_the_job_state(self) -> None:
        """A declared move sets the slotted job's state."""
        compiled = build_machine(_mobile_topup())
        job = Job("PENDING")

        compiled.fire(job, "HANDLING")

        assert job.state == "HANDLING"

    def test_job_is_never_added_as_a_model(self) -> None:
        """Firing leaves machine.models empty and binds nothing onto the job."""
        compiled = build_machine(_mobile_topup())
        job = Job("HANDLING")

        compiled.fire(job, "UNKNOWN_ERROR")

        assert compiled.machine.models == []
        assert not hasattr(job, "to_FULFILLED")
        assert not hasattr(job, "trigger")

    def test_undeclared_move_is_refused_and_state_kept(self) -> None:
        """A move to a state that has an event, but not from here, is refused."""
        compiled = build_machine(_mobile_topup())
        job = Job("PENDING")

        with pytest.raises(IllegalTransitionError) as info:
            compiled.fire(job, "FULFILLED")

        assert job.state == "PENDING"
        assert (info.value.lifecycle, info.value.source, info.value.dest) == (
            "mobile_topup",
            "PENDING",
            "FULFILLED",
        )

    def test_move_into_a_state_without_incoming_moves_is_refused(self) -> None:
        """There is no 'to_PENDING' event (auto transitions are off): refused."""
        compiled = build_machine(_mobile_topup())
        job = Job("HANDLING")

        with pytest.raises(IllegalTransitionError):
            compiled.fire(job, "PENDING")

        assert job.state == "HANDLING"

    def test_move_out_of_a_terminal_state_is_refused(self) -> None:
        """A finished job cannot move again."""
        compiled = build_machine(_mobile_topup())
        job = Job("FULFILLED")

        with pytest.raises(IllegalTransitionError):
            compiled.fire(job, "REFUNDED")

        assert job.state == "FULFILLED"

    def test_machine_refusal_is_translated_to_illegal_transition(self) -> None:
        """If the machine itself refuses, the MachineError becomes IllegalTransitionError."""
        compiled = build_machine(_mobile_topup())
        # Claim a move the machine never compiled, so only transitions refuses it.
        lying = attrs.evolve(
            compiled, legal=compiled.legal | {("FULFILLED", "HANDLING")}
        )
        job = Job("FULFILLED")

        with pytest.raises(IllegalTransitionError) as info:
            lying.fire(job, "HANDLING")

        assert type(info.value.__cause__).__name__ == "MachineError"
        assert job.state == "FULFILLED"

    @pytest.mark.parametrize(
        ("source", "dest", "legal"),
        [("PENDING", "HANDLING", True), ("PENDING", "FULFILLED", False)],
    )
    def test_is_legal_answers_from_the_declared_moves(
        self, source: str, dest: str, *, legal: bool
    ) -> None:
        """is_legal() is True exactly for declared moves."""
        compiled = build_machine(_mobile_topup())

        answer = compiled.is_legal(source, dest)

        assert answer is legal


class TestPath:
    """path() finds the shortest legal route through non-terminal states."""

    @pytest.mark.parametrize(
        ("source", "dest", "expected"),
        [
            ("PENDING", "HANDLING", ("HANDLING",)),
            ("PENDING", "FULFILLED", ("HANDLING", "FULFILLED")),
            ("PENDING", "REFUNDED", ("HANDLING", "REFUNDED")),
            ("HANDLING", "UNKNOWN_ERROR", ("UNKNOWN_ERROR",)),
        ],
        ids=["direct", "two-steps", "shortest-of-two-routes", "to-provisional"],
    )
    def test_path_is_the_shortest_legal_route(
        self, source: str, dest: str, expected: tuple[str, ...]
    ) -> None:
        """The result excludes the source and ends with the destination."""
        compiled = build_machine(_mobile_topup())

        path = compiled.path(source, dest)

        assert path == expected

    def test_direct_move_is_preferred_over_a_longer_route(self) -> None:
        """Azure's document may jump straight to Cancelled; the batch goes via Cancelling."""
        spec = load_builtin("azure-translator")

        document_path = build_machine(spec.lifecycle("document")).path(
            "NotStarted", "Cancelled"
        )
        batch_path = build_machine(spec.lifecycle("batch")).path(
            "NotStarted", "Cancelled"
        )

        assert document_path == ("Cancelled",)
        assert batch_path == ("Cancelling", "Cancelled")

    @pytest.mark.parametrize(
        ("source", "dest"),
        [("HANDLING", "PENDING"), ("PENDING", "PENDING"), ("FULFILLED", "REFUNDED")],
        ids=["backwards", "to-itself", "out-of-terminal"],
    )
    def test_no_path_gives_none(self, source: str, dest: str) -> None:
        """Backwards moves, staying put and leaving a terminal state have no path."""
        compiled = build_machine(_mobile_topup())

        path = compiled.path(source, dest)

        assert path is None

    def test_path_never_passes_through_a_terminal_state(self) -> None:
        """A route that would cross a terminal state is refused, even if it exists."""
        # Built in Python: the loader's checks forbid moves out of terminal states.
        base = load_document(minimal_spec()).lifecycle("job")
        lifecycle = attrs.evolve(
            base,
            states=(*base.states, State(name="Archived", outcome=Outcome.SUCCESS)),
            transitions=(*base.transitions, Transition(source="Done", dest="Archived")),
        )
        compiled = build_machine(lifecycle)

        path = compiled.path("Running", "Archived")

        assert path is None

    def test_paths_are_memoised(self) -> None:
        """Asking twice for the same pair returns the same stored answer."""
        compiled = build_machine(_mobile_topup())
        first = compiled.path("PENDING", "REFUNDED")

        second = compiled.path("PENDING", "REFUNDED")

        assert second is first
