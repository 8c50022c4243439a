"""Semantic rules the schema cannot state: each names the bad field and says what to do.

The one-file-per-rule cases live in tests/data/bad_specs (see test_load); these
tests cover the variants of each rule.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest

import statemachines
from statemachines import SpecError, load_builtin, load_document
from statemachines.checks import check_spec
from statemachines.spec import Spec
from tests.statemachines.helpers import job_lifecycle, minimal_spec

DECLARED = "Queued, Running, Done, Failed"


def _problems(document: Any) -> list[tuple[str, str]]:
    """Return the errors (not the warnings) loading ``document`` raises."""
    with pytest.raises(SpecError) as info:
        load_document(document)
    return [
        (p.pointer, p.message) for p in info.value.problems if p.severity == "error"
    ]


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


class TestReachableFromInitial:
    """Every state can be reached from the initial state by declared transitions."""

    def test_state_without_a_way_in_is_reported(self) -> None:
        """A state no transition leads into is an error at the state."""
        document = minimal_spec()
        lifecycle = job_lifecycle(document)
        lifecycle["states"]["Paused"] = {}
        lifecycle["transitions"].append({"from": "Paused", "to": "Running"})
        lifecycle["poll"]["observe"][0]["map"]["paused"] = "Paused"

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/states/Paused",
                (
                    "state 'Paused' cannot be reached from the initial state 'Queued'; "
                    "add a transition into it or remove it"
                ),
            )
        ]

    def test_states_reached_only_through_others_are_reachable(self) -> None:
        """A state reached over several moves (Queued → Running → Done) is fine."""
        document = minimal_spec()

        spec = load_document(document)

        assert check_spec(spec, "f") == []

    def test_island_cycle_is_reported_for_each_state(self) -> None:
        """Two states that lead only to each other and out, but that nothing enters."""
        document = minimal_spec()
        lifecycle = job_lifecycle(document)
        lifecycle["states"].update({"A": {}, "B": {}})
        lifecycle["transitions"] += [
            {"from": "A", "to": ["B", "Done"]},
            {"from": "B", "to": "A"},
        ]
        lifecycle["poll"]["observe"][0]["map"].update({"a": "A", "b": "B"})

        pointers = [pointer for pointer, _ in _problems(document)]

        assert pointers == ["/lifecycles/job/states/A", "/lifecycles/job/states/B"]

    def test_unreachable_is_not_guessed_with_two_initial_states(self) -> None:
        """With two initial states only that mistake is reported, not a reachability guess."""
        document = minimal_spec()
        job_lifecycle(document)["states"]["Failed"]["initial"] = True
        job_lifecycle(document)["transitions"] = [{"from": "Queued", "to": "Done"}]
        job_lifecycle(document)["states"]["Running"] = {"outcome": "failure"}

        messages = [message for _, message in _problems(document)]

        assert not any("cannot be reached" in m for m in messages)
        assert any(m.startswith("more than one initial state") for m in messages)


class TestProducedWarning:
    """A non-initial state that no response or cancel produces is a warning."""

    def test_intermediate_state_only_inferred_is_a_warning(self) -> None:
        """A state no observe rule names loads, with a warning at the state."""
        document = minimal_spec()
        del job_lifecycle(document)["poll"]["observe"][0]["map"]["running"]

        spec = load_document(document)

        assert [str(w) for w in spec.warnings] == [
            (
                "<document>: /lifecycles/job/states/Running: warning: no observe rule "
                "and no cancel leads to state 'Running', so a job only passes through "
                "it when a later state is observed"
            )
        ]
        assert spec.warnings[0].severity == "warning"

    def test_terminal_state_never_produced_is_a_warning(self) -> None:
        """A terminal state no rule names is a warning that no job can end there."""
        document = minimal_spec()
        del job_lifecycle(document)["poll"]["observe"][0]["map"]["failed"]

        spec = load_document(document)

        assert [(w.pointer, w.message) for w in spec.warnings] == [
            (
                "/lifecycles/job/states/Failed",
                (
                    "no observe rule and no cancel leads to state 'Failed', so no job "
                    "can ever end in it"
                ),
            )
        ]

    def test_a_fixed_rule_state_and_a_cancel_count_as_producing(self) -> None:
        """A rule's fixed 'state' and a cancel's 'leads_to' both produce states."""
        document = _with_cancel(
            minimal_spec(),
            **{"from": ["Running"], "leads_to": ["Cancelling", "Cancelled"]},
        )
        lifecycle = job_lifecycle(document)
        lifecycle["transitions"] += [
            {"from": "Running", "to": "Cancelling"},
            {"from": "Cancelling", "to": "Cancelled"},
        ]
        del lifecycle["poll"]["observe"][0]["map"]["failed"]
        lifecycle["poll"]["observe"].insert(
            0, {"when": {"status": 410}, "state": "Failed"}
        )

        spec = load_document(document)

        assert spec.warnings == ()

    def test_warnings_ride_along_with_errors(self) -> None:
        """When a spec has errors, its warnings are in the SpecError too, after errors."""
        document = minimal_spec()
        del job_lifecycle(document)["poll"]["observe"][0]["map"]["running"]
        job_lifecycle(document)["schedule"] = {"initial_delay": 9, "deadline": 1}

        with pytest.raises(SpecError) as info:
            load_document(document)

        assert [(p.pointer, p.severity) for p in info.value.problems] == [
            ("/lifecycles/job/schedule/deadline", "error"),
            ("/lifecycles/job/states/Running", "warning"),
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

    @pytest.mark.parametrize(
        "template",
        ["/jobs/{job_id", "/jobs/{}", "/jobs/{job_id!s:{job_id}}", "/{a,b}", "/{x:3}"],
    )
    def test_malformed_path_template_is_reported_at_the_path(
        self, template: str
    ) -> None:
        """A path outside RFC 6570's {name}/{+name} subset is a problem at that path."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["request"]["path"] = template

        found = _problems(document)

        assert [pointer for pointer, _ in found] == [
            "/lifecycles/job/poll/request/path"
        ]
        assert found[0][1].startswith(f"malformed template {template!r}: ")

    def test_malformed_query_template_is_reported_at_its_value(self) -> None:
        """A query value is a template too: '{?x}' is reported at that query key."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["request"]["query"] = {"q": "{?job_id}"}

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/poll/request/query/q",
                (
                    "malformed template '{?job_id}': operator '?' in '{?job_id}' is not "
                    "supported; a spec's templates use {name} and {+name} only"
                ),
            )
        ]

    def test_reserved_expansion_in_a_query_value_is_refused(self) -> None:
        """{+x} in a query value is a problem that names the simple form to use."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["request"]["query"] = {"id": "{+job_id}"}

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/poll/request/query/id",
                (
                    "reserved expansion {+job_id} is not allowed in a query value (the "
                    "engine encodes query values whole); write {job_id}"
                ),
            )
        ]

    def test_reserved_expansion_in_a_path_is_allowed(self) -> None:
        """{+x} in a path loads; its variable must still be known."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["request"]["path"] = "/files/{+job_id}"

        spec = load_document(document)

        assert spec.lifecycle("job").poll.request.path == "/files/{+job_id}"

    def test_unknown_reserved_variable_gets_a_hint(self) -> None:
        """An unknown {+field} gets the same did-you-mean as {field}."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["request"]["path"] = "/files/{+jobid}"

        found = _problems(document)

        assert found == [
            (
                "/lifecycles/job/poll/request/path",
                "unknown template field {jobid}; did you mean 'job_id'? Declared: item_id, job_id",
            )
        ]

    def test_path_must_start_with_a_slash_in_a_model_built_in_python(self) -> None:
        """check_spec reports a path that does not start with '/' (the schema does for files)."""
        spec = load_document(minimal_spec())
        job = spec.lifecycle("job")
        request = attrs.evolve(job.poll.request, path="jobs/{job_id}")
        job = attrs.evolve(job, poll=attrs.evolve(job.poll, request=request))

        problems = check_spec(attrs.evolve(spec, lifecycles=(job,)), "built.json")

        assert [(p.pointer, p.message) for p in problems] == [
            (
                "/lifecycles/job/poll/request/path",
                "a path must start with '/' (it follows the base URL): 'jobs/{job_id}'",
            )
        ]

    def test_no_statemachines_module_uses_string_formatter(self) -> None:
        """Templates are parsed by statemachines.template, never by string.Formatter."""
        package = Path(statemachines.__file__).parent

        users = [
            path.name
            for path in sorted(package.glob("*.py"))
            if "Formatter" in path.read_text(encoding="utf-8")
        ]

        assert users == []

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
            {"from": "Queued", "to": "Cancelled"},
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


def _with_submit(client_ref: dict[str, str] | None, *, lookup: bool) -> dict[str, Any]:
    doc = minimal_spec()
    lifecycle = job_lifecycle(doc)
    lifecycle["inputs"] = {"ref": {"in": "body"}}
    lifecycle["submit"] = {
        "request": {"method": "POST", "path": "/jobs"},
        "job_id": {"pointer": "/id"},
    }
    if client_ref is not None:
        lifecycle["submit"]["client_ref"] = client_ref
    if lookup:
        lifecycle["lookup"] = {
            "request": {"path": "/jobs/by-ref/{client_ref}"},
            "job_id": [{"pointer": "/id", "pattern": "^(?P<id>[a-z0-9]+)$"}],
        }
    return doc


class TestClientRefAndLookup:
    """A submission's client reference, and the lookup that finds it again."""

    def test_a_lookup_by_reference_builds_with_its_defaults(self) -> None:
        """client_ref names an input; lookup finds by {client_ref}; 404 means not found."""
        spec = load_document(_with_submit({"input": "ref"}, lookup=True))
        lifecycle = spec.lifecycle("job")

        assert lifecycle.submit is not None
        assert lifecycle.submit.client_ref is not None
        assert lifecycle.submit.client_ref.input == "ref"
        assert lifecycle.lookup is not None
        assert lifecycle.lookup.not_found_status == (404,)
        assert lifecycle.lookup.observe

    def test_a_header_reference_needs_no_input(self) -> None:
        """An Idempotency-Key header carries a generated reference."""
        spec = load_document(_with_submit({"header": "Idempotency-Key"}, lookup=False))
        submit = spec.lifecycle("job").submit

        assert submit is not None
        assert submit.client_ref is not None
        assert submit.client_ref.header == "Idempotency-Key"

    def test_a_reference_input_must_be_declared(self) -> None:
        """client_ref.input naming no input is reported at its pointer, with a hint."""
        with pytest.raises(SpecError) as info:
            load_document(_with_submit({"input": "reff"}, lookup=False))

        assert [(p.pointer, p.message) for p in info.value.problems] == [
            (
                "/lifecycles/job/submit/client_ref/input",
                "unknown input 'reff'; did you mean 'ref'? Declared: ref",
            )
        ]

    def test_a_lookup_without_a_reference_is_refused(self) -> None:
        """A lookup can only find a submission that carried a reference."""
        with pytest.raises(SpecError) as info:
            load_document(_with_submit(None, lookup=True))

        pointers = [p.pointer for p in info.value.problems]
        assert "/lifecycles/job/lookup" in pointers
        assert any("client_ref" in p.message for p in info.value.problems)
