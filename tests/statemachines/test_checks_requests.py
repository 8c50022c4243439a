"""Request bodies and response values are checked where they are written, with what to do."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from statemachines import SpecError, load_document
from statemachines.checks import check_spec
from tests.statemachines.helpers import job_lifecycle, minimal_spec

JOB = "/lifecycles/job"


def _found(document: Any, severity: str = "error") -> list[tuple[str, str]]:
    """Return the problems of ``severity`` loading ``document`` gives (none: loads)."""
    try:
        load_document(document)
    except SpecError as exc:
        return [(p.pointer, p.message) for p in exc.problems if p.severity == severity]
    return []


def _warnings(document: Any) -> list[tuple[str, str]]:
    """Return the warnings of a spec that loads."""
    spec = load_document(document)
    return [(p.pointer, p.message) for p in spec.warnings]


def _spec(**lifecycle: Any) -> dict[str, Any]:
    """Return the minimal spec with ``lifecycle``'s entries set on its job lifecycle."""
    document = minimal_spec()
    job_lifecycle(document).update(lifecycle)
    return document


def _poll(**request: Any) -> dict[str, Any]:
    """Return the minimal spec's poll with ``request`` merged into its request."""
    poll = job_lifecycle(minimal_spec())["poll"]
    poll["request"].update(request)
    return dict(poll)


_SUBMIT = {"request": {"method": "POST", "path": "/jobs"}, "job_id": {"pointer": "/id"}}


def _with_items(body: Any, **paging: Any) -> dict[str, Any]:
    document = _spec(
        items={
            "lifecycle": "doc",
            "request": {"method": "POST", "path": "/jobs/{job_id}/docs", "body": body},
            "items_pointer": "/docs",
            "id_pointer": "/id",
            "paging": {"kind": "cursor", "next_pointer": "/next", **paging},
        }
    )
    document["lifecycles"]["doc"] = {
        "item_only": True,
        "states": {"New": {"initial": True}, "Ok": {"outcome": "success"}},
        "transitions": [{"from": "New", "to": "Ok"}],
        "poll": {
            "request": {"path": "/jobs/{job_id}/docs/{item_id}"},
            "observe": [{"pointer": "/status", "map": {"new": "New", "ok": "Ok"}}],
        },
    }
    return document


class TestBodies:
    """A body's templates are checked like a path's; a GET carries none."""

    def test_a_spec_with_bodies_on_every_kind_of_request_loads(self) -> None:
        """JSON and form bodies on submit, poll, items, result and cancel are valid."""
        document = _with_items({"json": {"page": "{cursor}", "n": 10}})
        lifecycle = job_lifecycle(document)
        lifecycle["submit"] = {
            **_SUBMIT,
            "request": {"method": "POST", "path": "/jobs", "body": {"form": {"a": 1}}},
        }
        lifecycle["poll"] = _poll(method="POST", body={"json": {"id": "{job_id}"}})
        lifecycle["result"] = {
            "request": {"method": "PUT", "path": "/r", "body": {"json": ["{job_id}"]}}
        }

        assert _found(document) == []

    def test_a_body_on_a_get_is_a_problem_at_the_request_body(self) -> None:
        """A GET poll with a body is refused where the body is."""
        document = _spec(poll=_poll(body={"json": {"id": "{job_id}"}}))

        assert _found(document) == [
            (
                f"{JOB}/poll/request/body",
                (
                    "a GET request carries no body; send it with POST, PUT, PATCH or "
                    "DELETE, or remove the body"
                ),
            )
        ]

    def test_an_unknown_field_in_a_body_points_at_its_string_with_a_hint(self) -> None:
        """A misspelt {jobid} deep in a body is reported at its pointer, with a did-you-mean."""
        body = {"json": {"a": [{"b": "x-{jobid}"}]}}
        document = _spec(poll=_poll(method="POST", body=body))

        assert _found(document) == [
            (
                f"{JOB}/poll/request/body/json/a/0/b",
                (
                    "unknown template field {jobid}; did you mean 'job_id'? "
                    "Declared: item_id, job_id"
                ),
            )
        ]

    def test_a_form_fields_template_is_checked(self) -> None:
        """Form fields are templates too, each at its own pointer."""
        body = {"form": {"ids": ["{job_id}", "{nope}"]}}
        document = _spec(poll=_poll(method="POST", body=body))

        pointers = [pointer for pointer, _ in _found(document)]

        assert pointers == [f"{JOB}/poll/request/body/form/ids/1"]

    def test_a_reserved_expansion_in_a_body_is_refused(self) -> None:
        """{+job_id} means a path; in a body the value goes in as it is."""
        document = _spec(poll=_poll(method="POST", body={"json": {"id": "{+job_id}"}}))

        assert _found(document) == [
            (
                f"{JOB}/poll/request/body/json/id",
                (
                    "reserved expansion {+job_id} is not allowed in a body (body values "
                    "go in as they are); write {job_id}"
                ),
            )
        ]

    def test_a_malformed_body_template_is_reported(self) -> None:
        """An unclosed expression in a body string is malformed."""
        document = _spec(poll=_poll(method="POST", body={"json": {"id": "{job_id"}}))

        [(pointer, message)] = _found(document)

        assert pointer == f"{JOB}/poll/request/body/json/id"
        assert message.startswith("malformed")

    def test_a_cursor_is_only_for_an_items_body(self) -> None:
        """{cursor} in a poll's body, or in an items path, is an unknown field."""
        document = _with_items({"json": {}})
        lifecycle = job_lifecycle(document)
        lifecycle["items"]["request"]["path"] = "/jobs/{job_id}/docs/{cursor}"
        lifecycle["poll"] = _poll(method="POST", body={"json": {"c": "{cursor}"}})

        pointers = [pointer for pointer, _ in _found(document)]

        assert pointers == [
            f"{JOB}/items/request/path",
            f"{JOB}/poll/request/body/json/c",
        ]

    def test_a_body_cursor_needs_cursor_paging(self) -> None:
        """An items body sending {cursor} with next_link paging is told to use 'cursor'."""
        document = _with_items({"json": {"page": "{cursor}"}}, kind="next_link")

        assert _found(document) == [
            (
                f"{JOB}/items/paging/kind",
                (
                    "the items request's body sends {cursor}, the token of cursor paging, "
                    "but paging.kind is 'next_link'; use 'cursor'"
                ),
            )
        ]

    @pytest.mark.parametrize(
        ("declared", "template"),
        [("multipart", {"json": {}}), ("none", {"json": {}}), ("form", {"json": {}})],
    )
    def test_a_submit_body_template_must_agree_with_submit_body(
        self, declared: str, template: dict[str, Any]
    ) -> None:
        """submit.body says how inputs are sent; a template replaces that, so they must agree."""
        request = {"method": "POST", "path": "/jobs", "body": template}
        document = _spec(submit={**_SUBMIT, "request": request, "body": declared})

        [(pointer, message)] = _found(document)

        assert pointer == f"{JOB}/submit/body"
        assert message.startswith(f"submit.body is {declared!r} but")

    def test_inputs_sent_in_the_body_clash_with_a_submit_body_template(self) -> None:
        """An 'in: body' input would be dropped by the template: declare it 'in: none'."""
        request = {"method": "POST", "path": "/jobs", "body": {"json": {"t": "{text}"}}}
        document = _spec(
            submit={**_SUBMIT, "request": request},
            inputs={"text": {"in": "body"}, "other": {"in": "none"}},
        )

        [(pointer, message)] = _found(document)

        assert pointer == f"{JOB}/inputs/text/in"
        assert "write {text} in it and declare the input 'in: none'" in message


class TestValues:
    """Values are named freely, read from a response a request always follows."""

    @pytest.mark.parametrize(
        ("kind", "response", "allowed"),
        [
            ("poll", "last", "submit"),
            ("poll", "final", "submit"),
            ("cancel", "last", "submit"),
            ("items", "final", "submit, last"),
        ],
    )
    def test_a_request_may_not_use_a_value_it_does_not_always_follow(
        self, kind: str, response: str, allowed: str
    ) -> None:
        """A poll cannot use the final response's value: it is sent before there is one."""
        document = _with_items({"json": {}}, kind="next_link")
        lifecycle = job_lifecycle(document)
        lifecycle["submit"] = _SUBMIT
        lifecycle["values"] = {"file": {"pointer": "/file", "response": response}}
        lifecycle["states"]["Cancelled"] = {"outcome": "cancelled"}
        lifecycle["cancel"] = {
            "request": {"method": "DELETE", "path": "/jobs/{job_id}"},
            "from": ["Running"],
            "leads_to": ["Cancelled"],
        }
        lifecycle["transitions"].append({"from": "Running", "to": "Cancelled"})
        lifecycle[kind]["request"]["path"] += "/{file}"

        assert _found(document) == [
            (
                f"{JOB}/{kind}/request/path",
                (
                    f"value {{file}} is read from the {response} response, which a "
                    f"{kind} request does not always follow; a {kind} request may use "
                    f"values from these responses: {allowed}"
                ),
            )
        ]

    def test_a_lookup_may_use_no_value(self) -> None:
        """A lookup is sent when the submit's answer was lost: no response precedes it."""
        document = _spec(
            submit={**_SUBMIT, "client_ref": {"header": "Idempotency-Key"}},
            lookup={
                "request": {"path": "/jobs/by-ref/{client_ref}/{v}"},
                "job_id": {"pointer": "/id"},
            },
            values={"v": {"pointer": "/v", "response": "submit"}},
            result={"request": {"path": "/r/{v}"}},
        )

        [(pointer, message)] = _found(document)

        assert pointer == f"{JOB}/lookup/request/path"
        assert message.endswith("none (no response precedes it)")

    def test_final_values_are_for_the_result_and_items_listed_at_the_end(
        self,
    ) -> None:
        """A result path and an at_end items body may use a final value."""
        document = _with_items({"json": {"f": "{file}"}}, kind="next_link")
        lifecycle = job_lifecycle(document)
        lifecycle["items"]["refresh"] = "at_end"
        lifecycle["values"] = {"file": {"pointer": "/file", "response": "final"}}
        lifecycle["result"] = {"request": {"path": "/files/{file}/content"}}

        assert _found(document) == []
        assert _warnings(document) == []

    @pytest.mark.parametrize(
        ("name", "message"),
        [
            (
                "job_id",
                "'job_id' is a template field the engine fills; name the value otherwise",
            ),
            (
                "cursor",
                "'cursor' is a template field the engine fills; name the value otherwise",
            ),
            (
                "region",
                "'region' is also an input's name; one name, one meaning: rename one of them",
            ),
        ],
    )
    def test_a_value_cannot_take_a_name_already_meaning_something(
        self, name: str, message: str
    ) -> None:
        """Values, inputs and the engine's own fields share one namespace."""
        document = _spec(
            inputs={"region": {"in": "none"}},
            values={name: {"pointer": "/x"}},
            result={"request": {"path": f"/r/{{{name}}}"}},
        )

        assert (f"{JOB}/values/{name}", message) in _found(document)

    def test_a_values_pattern_must_compile(self) -> None:
        """A value's pattern Python cannot compile (a model built in Python) is reported."""
        document = _spec(
            values={"v": {"header": "Location", "pattern": "(.+)"}},
            result={"request": {"path": "/r/{v}"}},
        )
        spec = load_document(document)
        job = spec.lifecycle("job")
        value = attrs.evolve(job.values[0], pattern="(")
        spec = attrs.evolve(spec, lifecycles=(attrs.evolve(job, values=(value,)),))

        problems = [(p.pointer, p.message[:26]) for p in check_spec(spec, "x.json")]

        assert problems == [(f"{JOB}/values/v/pattern", "invalid regular expression")]

    def test_a_submit_value_needs_a_submit(self) -> None:
        """A lifecycle only tracked by id has no submit response to read."""
        document = _spec(
            values={"v": {"pointer": "/v", "response": "submit"}},
            result={"request": {"path": "/r/{v}"}},
        )

        assert _found(document) == [
            (
                f"{JOB}/values/v/response",
                "the lifecycle has no submit, so there is no submit response to read",
            )
        ]

    def test_a_value_no_request_uses_is_a_warning(self) -> None:
        """A value nothing uses is never read: the spec is told so."""
        document = _spec(values={"v": {"pointer": "/v"}})

        assert _warnings(document) == [
            (
                f"{JOB}/values/v",
                "no request's template uses value {v}, so it is never read",
            )
        ]


class TestConditional:
    """Conditional polling sends a validator, and something other than attempts ends it."""

    @pytest.mark.parametrize(
        "given", [True, {"etag": False}, {"last_modified": False}, {}]
    )
    def test_conditional_polling_loads(self, given: Any) -> None:
        """true, or an object enabling at least one validator, is valid."""
        poll = _poll()
        poll["conditional"] = given

        assert _found(_spec(poll=poll, schedule={"deadline": 60})) == []

    def test_conditional_polling_without_any_validator_is_a_problem(self) -> None:
        """Both validators off: nothing would be sent back."""
        poll = _poll()
        poll["conditional"] = {"etag": False, "last_modified": False}

        assert _found(_spec(poll=poll)) == [
            (
                f"{JOB}/poll/conditional",
                (
                    "conditional polling with neither etag nor last_modified sends "
                    "no validator; enable one, or remove 'conditional'"
                ),
            )
        ]

    @pytest.mark.parametrize(
        "schedule",
        [{"max_attempts": 5}, {"per_state": {"Running": {"max_attempts": 5}}}],
    )
    def test_attempts_alone_cannot_end_a_conditional_poll(
        self, schedule: dict[str, Any]
    ) -> None:
        """304s use no attempt: without a deadline the spec is warned."""
        poll = _poll()
        poll["conditional"] = True

        assert _warnings(_spec(poll=poll, schedule=schedule)) == [
            (
                f"{JOB}/poll/conditional",
                (
                    "a '304 Not Modified' uses no attempt, so max_attempts cannot end a "
                    "job whose service never changes its answer; set schedule.deadline"
                ),
            )
        ]

    def test_an_unbounded_conditional_poll_is_not_warned_about_attempts(self) -> None:
        """With neither attempts nor a deadline, 304s change nothing about the bound."""
        poll = _poll()
        poll["conditional"] = True

        assert _warnings(_spec(poll=poll)) == []
