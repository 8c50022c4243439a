"""Semantic rules the schema cannot state: each names the bad field and says what to do.

The one-file-per-rule cases live in tests/data/bad_specs (see test_load); these
tests cover the variants of each rule.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest

from statemachines import SpecError, load_builtin, load_document
from statemachines.checks import check_spec
from statemachines.spec import Spec
from tests.statemachines.helpers import job_lifecycle, minimal_spec

DECLARED = "Queued, Running, Done, Failed"


def _problems(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        load_document(document)
    return [(p.pointer, p.message) for p in info.value.problems]


def _with_cancel(document: dict[str, Any], **cancel: Any) -> dict[str, Any]:
    lifecycle = job_lifecycle(document)
    lifecycle["states"]["Cancelling"] = {}
    lifecycle["states"]["Cancelled"] = {"outcome": "cancelled"}
    lifecycle["cancel"] = {
        "request": {"method": "DELETE", "path": "/jobs/{job_id}"},
        **cancel,
    }
    return document


@pytest.mark.parametrize("name", ["azure-translator", "mindee", "oneclickdz"])
def test_builtin_specs_are_sound(name: str) -> None:
    """No semantic rule fires on a built-in spec."""
    spec = load_builtin(name)

    problems = check_spec(spec, name)

    assert problems == []


class TestOneInitial:
    """Exactly one state is initial."""

    def test_each_extra_initial_state_is_reported(self) -> None:
        """With three initial states, the second and third are each reported."""
        document = minimal_spec()
        for name in ("Running", "Done"):
            job_lifecycle(document)["states"][name]["initial"] = True

        found = _problems(document)

        message = (
            "more than one initial state (Queued, Running, Done); keep exactly one"
        )
        # Problems come in pointer order: Done sorts before Running.
        assert found == [
            ("/lifecycles/job/states/Done/initial", message),
            ("/lifecycles/job/states/Running/initial", message),
        ]


class TestStatesDeclared:
    """Every state a spec names is declared in its lifecycle."""

    def test_unknown_source_in_a_from_list_points_at_the_item(self) -> None:
        """An undeclared state inside a 'from' list is reported at its list index."""
        document = minimal_spec()
        job_lifecycle(document)["transitions"].append(
            {"from": ["Queued", "Runing"], "to": "Failed"}
        )

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/transitions/2/from/1",
                f"unknown state 'Runing'; did you mean 'Running'? Declared: {DECLARED}",
            )
        ]

    def test_unknown_single_source_points_at_from(self) -> None:
        """An undeclared state as a plain 'from' is reported at 'from'."""
        document = minimal_spec()
        job_lifecycle(document)["transitions"].append({"from": "Qeued", "to": "Failed"})

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/transitions/2/from",
                f"unknown state 'Qeued'; did you mean 'Queued'? Declared: {DECLARED}",
            )
        ]

    def test_unknown_target_of_several_sources_is_reported_once(self) -> None:
        """A bad 'to' shared by a 'from' list gives one problem, not one per source."""
        document = minimal_spec()
        job_lifecycle(document)["transitions"].append(
            {"from": ["Queued", "Running"], "to": "Gone"}
        )

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/transitions/2/to",
                f"unknown state 'Gone'; did you mean 'Done'? Declared: {DECLARED}",
            )
        ]

    def test_unknown_state_of_an_observe_rule_is_reported_at_its_field(self) -> None:
        """A rule's fixed 'state' must be declared; it is reported at that field."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["observe"].insert(
            0, {"when": {"status": 404}, "state": "Faild"}
        )

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/poll/observe/0/state",
                f"unknown state 'Faild'; did you mean 'Failed'? Declared: {DECLARED}",
            )
        ]

    def test_message_without_a_close_match_still_separates_the_declared_list(
        self,
    ) -> None:
        """With no did-you-mean, punctuation still divides the name from 'Declared:'."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["observe"].insert(
            0, {"when": {"status": 404}, "state": "Zzz"}
        )

        [(_, message)] = _problems(document)

        assert re.fullmatch(
            rf"unknown state 'Zzz'[;.:] [Dd]eclared: {DECLARED}", message
        )

    def test_unknown_cancel_states_are_reported_where_named(self) -> None:
        """Undeclared states in cancel.from and cancel.leads_to are each reported."""
        document = _with_cancel(
            minimal_spec(),
            **{"from": ["Queud"], "leads_to": ["Cancelling", "Canceled"]},
        )
        job_lifecycle(document)["transitions"] += [
            {"from": "Queued", "to": "Cancelling"},
            {"from": "Cancelling", "to": "Cancelled"},
        ]

        found = _problems(document)

        unknown = [(p, m.split(";")[0]) for p, m in found if m.startswith("unknown")]
        assert unknown == [
            ("/lifecycles/job/cancel/from/0", "unknown state 'Queud'"),
            ("/lifecycles/job/cancel/leads_to/1", "unknown state 'Canceled'"),
        ]


class TestTerminalIsFinal:
    """Terminal states have no outgoing transitions."""

    def test_terminal_source_in_a_from_list_points_at_the_item(self) -> None:
        """A terminal state inside a 'from' list is reported at its list index."""
        document = minimal_spec()
        job_lifecycle(document)["transitions"].append(
            {"from": ["Running", "Failed"], "to": "Queued"}
        )

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/transitions/2/from/1",
                "terminal state 'Failed' (outcome failure) cannot have outgoing transitions",
            )
        ]


class TestReachTerminal:
    """Every non-terminal state can reach a terminal state."""

    def test_cycle_without_exit_is_reported_for_each_state(self) -> None:
        """Two states that only lead to each other are both reported."""
        document = minimal_spec()
        lifecycle = job_lifecycle(document)
        lifecycle["states"].update({"Ping": {}, "Pong": {}})
        lifecycle["transitions"] += [
            {"from": "Running", "to": "Ping"},
            {"from": "Ping", "to": "Pong"},
            {"from": "Pong", "to": "Ping"},
        ]

        found = _problems(document)

        assert [pointer for pointer, _ in found] == [
            "/lifecycles/job/states/Ping",
            "/lifecycles/job/states/Pong",
        ]


class TestScheduleSound:
    """Caps and deadlines are consistent with intervals and delays."""

    def test_per_state_cap_below_the_lifecycle_interval_is_reported(self) -> None:
        """A per-state backoff cap is checked against the lifecycle interval by default."""
        document = minimal_spec()
        job_lifecycle(document)["schedule"] = {
            "interval": 10,
            "per_state": {
                "Running": {"backoff": {"kind": "exponential", "max_interval": 8}}
            },
        }

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/schedule/per_state/Running/backoff/max_interval",
                "max_interval (8) must be >= interval (10)",
            )
        ]

    def test_per_state_cap_uses_the_per_state_interval(self) -> None:
        """A per-state interval below the cap makes the cap sound."""
        document = minimal_spec()
        job_lifecycle(document)["schedule"] = {
            "interval": 10,
            "per_state": {
                "Running": {
                    "interval": 4,
                    "backoff": {"kind": "exponential", "max_interval": 8},
                }
            },
        }

        spec = load_document(document)

        assert spec.lifecycle("job").schedule.for_state("Running") is not None

    def test_problem_inherited_from_defaults_points_into_defaults(self) -> None:
        """A bad cap written in defaults.schedule is reported where it is written."""
        document = minimal_spec()
        document["defaults"] = {
            "schedule": {"backoff": {"kind": "exponential", "max_interval": 1}}
        }

        found = _problems(document)

        assert found == [
            (
                "/defaults/schedule/backoff/max_interval",
                "max_interval (1) must be >= interval (5)",
            )
        ]


class TestRequestsResolvable:
    """Requests can be built: a path or a URL, and only known template fields."""

    def test_request_without_path_or_url_is_reported(self) -> None:
        """A request with neither 'path' nor 'url' is reported at the request."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["request"] = {"method": "GET"}

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/poll/request",
                "a request needs a 'path' template, a 'url' locator, or both",
            )
        ]

    def test_unknown_field_in_a_query_template_points_at_the_escaped_key(self) -> None:
        """A query value's template is checked; a '/' in its key is escaped as '~1'."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["request"]["query"] = {"api/version": "{jobid}"}

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/poll/request/query/api~1version",
                (
                    "unknown template field {jobid}; did you mean 'job_id'? "
                    "Declared: item_id, job_id"
                ),
            )
        ]

    def test_inputs_and_builtin_fields_are_known(self) -> None:
        """{job_id}, {item_id} and declared inputs may appear in templates."""
        document = minimal_spec()
        lifecycle = job_lifecycle(document)
        lifecycle["inputs"] = {"region": {"in": "path"}}
        lifecycle["poll"]["request"]["path"] = "/{region}/jobs/{job_id}/{item_id}"

        spec = load_document(document)

        assert (
            spec.lifecycle("job").poll.request.path
            == "/{region}/jobs/{job_id}/{item_id}"
        )

    def test_item_only_lifecycle_may_use_its_parents_inputs(self) -> None:
        """An item-only lifecycle's templates are not checked against its own inputs."""
        document = minimal_spec()
        lifecycle = job_lifecycle(document)
        lifecycle["item_only"] = True
        lifecycle["poll"]["request"]["path"] = "/{parent_input}/{item_id}"

        spec = load_document(document)

        assert spec.lifecycle("job").item_only is True

    def test_malformed_template_is_reported(self) -> None:
        """A path template that str.format cannot parse is a problem at that path."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["request"]["path"] = "/jobs/{job_id"

        found = _problems(document)

        assert [pointer for pointer, _ in found] == [
            "/lifecycles/job/poll/request/path"
        ]

    @pytest.mark.parametrize("where", ["submit", "poll"])
    def test_invalid_pattern_in_a_model_built_in_python(self, where: str) -> None:
        """check_spec reports a locator pattern Python cannot compile, at its pattern."""
        spec = _spec_with_pattern(where, "(")

        problems = check_spec(spec, "built.json")

        assert [(p.pointer, p.message) for p in problems] == [
            (
                f"{_locator_location(where)}/pattern",
                (
                    "invalid regular expression: missing ), unterminated subpattern at "
                    "position 0"
                ),
            )
        ]


def _locator_location(where: str) -> str:
    if where == "submit":
        return "/lifecycles/job/submit/job_id"
    return "/lifecycles/job/poll/request/url"


def _spec_with_pattern(where: str, pattern: str) -> Spec:
    """Load a spec with header locators, then swap in ``pattern`` as Python code could."""
    document = minimal_spec()
    lifecycle = job_lifecycle(document)
    lifecycle["submit"] = {
        "request": {"method": "POST", "path": "/jobs"},
        "job_id": {"header": "Location", "pattern": "/jobs/(.+)"},
    }
    lifecycle["poll"]["request"]["url"] = {"header": "Location", "pattern": "(.+)"}
    spec = load_document(document)
    job = spec.lifecycle("job")
    if where == "submit":
        assert job.submit is not None
        locator = attrs.evolve(job.submit.job_id[0], pattern=pattern)
        job = attrs.evolve(job, submit=attrs.evolve(job.submit, job_id=(locator,)))
    else:
        locator = attrs.evolve(job.poll.request.url[0], pattern=pattern)
        request = attrs.evolve(job.poll.request, url=(locator,))
        job = attrs.evolve(job, poll=attrs.evolve(job.poll, request=request))
    return attrs.evolve(spec, lifecycles=(job,))


class TestCancelPathLegal:
    """A cancel leads only through declared moves."""

    def test_cancel_chain_without_a_declared_move_is_reported(self) -> None:
        """A missing move between two leads_to states is reported at the later one."""
        document = _with_cancel(
            minimal_spec(),
            **{"from": ["Running"], "leads_to": ["Cancelling", "Cancelled"]},
        )
        job_lifecycle(document)["transitions"] += [
            {"from": "Running", "to": "Cancelling"},
            {"from": "Cancelling", "to": "Failed"},
        ]

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/cancel/leads_to/1",
                "no transition from 'Cancelling' to 'Cancelled'",
            )
        ]


class TestItemsLifecycle:
    """Items follow another lifecycle of the same spec."""

    def test_lifecycle_cannot_be_its_own_items_lifecycle(self) -> None:
        """Items naming their parent's own lifecycle are refused."""
        document = minimal_spec()
        job_lifecycle(document)["items"] = {
            "lifecycle": "job",
            "request": {"path": "/jobs/{job_id}/items"},
            "items_pointer": "/value",
            "id_pointer": "/id",
            "paging": {"kind": "skip", "skip_param": "$skip"},
        }

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/items/lifecycle",
                "a lifecycle cannot be its own items' lifecycle",
            )
        ]
