"""Request bodies on every request, and values read from earlier responses, as plain values."""

from __future__ import annotations

import json
import random
from typing import Any

import attrs
import pytest

from engine._core import step, wire
from engine._core.binding import Binding, bind
from engine._core.paging import next_cursor
from engine._core.reply import Reply
from engine._core.state import JobState, Phase
from engine._errors import InputError, RemoteError
from statemachines import Body, Condition, Paging, Request, Value
from tests.engine.core.conftest import (
    BASE,
    batch_document,
    binding,
    job,
    lifecycle_of,
    reply,
    toy_document,
)

NOW = 10.0


def _on(b: Binding, state: JobState, got: Reply | RemoteError) -> step.Step:
    return step.on_reply(b, state, got, now=NOW, rng=random.Random(0))


# -- wire: bodies ---------------------------------------------------------------------------


class TestRenderBody:
    """A body template is filled from values; a lone expression keeps its type."""

    def test_a_lone_expression_keeps_its_json_type(self) -> None:
        """'{count}' with an integer gives the integer; a list or object stays one."""
        body = Body(
            kind="json",
            template={"n": "{count}", "tags": "{tags}", "on": "{flag}", "k": 1},
        )

        rendered = wire.render_body(
            body, {"count": 3, "tags": ["a", "b"], "flag": False}
        )

        assert rendered == (
            {"n": 3, "tags": ["a", "b"], "on": False, "k": 1},
            None,
        )

    def test_text_templates_are_filled_as_text_without_encoding(self) -> None:
        """'id-{x}' is text; the value goes in as it is (no percent-encoding)."""
        body = Body(kind="json", template=["id-{x}", "{x}/{y}", "plain"])

        assert wire.render_body(body, {"x": "a b", "y": 2}) == (
            ["id-a b", "a b/2", "plain"],
            None,
        )

    def test_members_and_elements_without_a_value_are_left_out(self) -> None:
        """An absent value drops its member or element; the rest is sent."""
        body = Body(
            kind="json",
            template={
                "page": "{cursor}",
                "q": "x-{cursor}",
                "list": ["{a}", "{cursor}"],
            },
        )

        assert wire.render_body(body, {"a": 1}) == ({"list": [1]}, None)

    def test_a_body_that_is_one_absent_value_is_no_body(self) -> None:
        """A body template that is only '{cursor}' sends nothing when there is none."""
        body = Body(kind="json", template="{cursor}")

        assert wire.render_body(body, {}) == (None, None)

    def test_a_form_sends_text_and_repeats_a_list(self) -> None:
        """Form fields are text (booleans as true/false); a list repeats the field."""
        body = Body(
            kind="form",
            template={
                "id": "{job_id}",
                "all": True,
                "n": 2,
                "tag": ["{t}", "x"],
                "c": "{c}",
            },
        )

        rendered = wire.render_body(body, {"job_id": "j1", "t": "a"})

        assert rendered == (
            None,
            {"id": "j1", "all": "true", "n": "2", "tag": ["a", "x"]},
        )

    def test_a_reserved_value_refused_in_a_body_is_an_input_error(self) -> None:
        """A {+x} (refused by checks in a spec file) still cannot carry '..'."""
        body = Body(kind="json", template={"p": "/a/{+x}"})

        with pytest.raises(InputError, match=r"'\.\.' path segment"):
            wire.render_body(body, {"x": ".."})

    def test_template_fields_include_the_bodys(self) -> None:
        """Fields a body uses are fields the request needs (so a job keeps them)."""
        request = Request(
            method="POST",
            path="/a/{x}",
            body=Body(kind="json", template={"b": ["{y}", "t-{z}"]}),
        )

        assert wire.template_fields(request) == {"x", "y", "z"}


# -- wire: values and body cursors ---------------------------------------------------------


class TestReadValues:
    """Values are read by pointer or header, cut by a pattern, and kept across replies."""

    def test_a_pointer_value_keeps_its_json_type_and_a_header_is_text(self) -> None:
        """A number read by pointer stays a number; a header is text."""
        declared = (
            Value(name="n", pointer="/count"),
            Value(name="loc", header="Operation-Location"),
        )
        got = reply(200, {"count": 7}, {"Operation-Location": "/ops/9"})

        assert wire.read_values(declared, got, None) == {"n": 7, "loc": "/ops/9"}

    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [("files/(?P<id>[^/]+)/x", "f-1"), ("files/([^/]+)", "f-1"), ("f-\\d", "f-1")],
    )
    def test_a_pattern_keeps_its_id_group_or_first_group_or_the_match(
        self, pattern: str, expected: str
    ) -> None:
        """'id' group, else the first group, else the whole match."""
        declared = (Value(name="f", pointer="/url", pattern=pattern),)

        got = reply(200, {"url": "https://x/files/f-1/x"})

        assert wire.read_values(declared, got, None) == {"f": expected}

    @pytest.mark.parametrize(
        "body",
        [{}, {"file": None}, {"file": ""}, {"file": "nomatch"}, b"not json"],
        ids=["absent", "null", "empty", "no-match", "unreadable"],
    )
    def test_a_value_the_reply_lacks_keeps_the_earlier_one(self, body: Any) -> None:
        """Absent, null, empty, unmatched or unreadable: the earlier value stays."""
        declared = (Value(name="f", pointer="/file", pattern="^f-"),)

        found = wire.read_values(declared, reply(200, body), {"f": "f-0"})

        assert found == {"f": "f-0"}

    def test_nothing_found_and_nothing_kept_is_none(self) -> None:
        """A job with no values keeps None (its snapshot stays small)."""
        declared = (Value(name="f", header="X-File"),)

        assert wire.read_values(declared, reply(200, {}), None) is None

    def test_next_cursor_is_the_first_non_empty_token(self) -> None:
        """The cursor for a body is read at the paging's pointers, in order."""
        paging = Paging(kind="cursor", next_pointers=("/a", "/b"))

        url = "http://h/lines"

        assert next_cursor(paging, {"a": "", "b": "t2"}, sent=None, url=url) == "t2"
        assert next_cursor(paging, {"a": 5}, sent=None, url=url) is None

    def test_next_cursor_stops_when_the_page_says_it_is_the_last(self) -> None:
        """stop_when ends a body-cursor listing whatever cursor the page carries."""
        last = Condition(kind="equals", pointer="/has_more", values=(False,))
        paging = Paging(kind="cursor", next_pointers=("/next",), stop_when=last)
        page = {"next": "t3", "has_more": False}

        assert next_cursor(paging, page, sent="t2", url="http://h/l") is None
        assert (
            next_cursor(paging, {**page, "has_more": True}, sent="t2", url="http://h/l")
            == "t3"
        )

    def test_a_cursor_given_back_is_a_protocol_error(self) -> None:
        """A page that repeats the cursor it was asked with would be read until max_pages."""
        paging = Paging(kind="cursor", next_pointers=("/next",))

        with pytest.raises(RemoteError, match="same cursor") as caught:
            next_cursor(paging, {"next": "t2"}, sent="t2", url="http://h/l")

        assert caught.value.kind == "protocol"
        assert not caught.value.retryable


# -- step: what each request sends ------------------------------------------------------------


def _toy(change: Any) -> Binding:
    document = toy_document()
    change(lifecycle_of(document))
    return binding(document)


def _post_poll(lifecycle: dict[str, Any]) -> None:
    lifecycle["poll"]["request"].update(
        method="POST", body={"json": {"id": "{job_id}", "region": "{region}"}}
    )


def test_a_poll_with_a_body_sends_it_filled() -> None:
    """A POST poll carries its body, filled from the job's id and inputs."""
    b = _toy(_post_poll)

    out = step.request_for(b, job(b))

    assert (out.method, out.json_body, out.data) == (
        "POST",
        {"id": "j1", "region": "eu"},
        None,
    )


def test_a_kept_poll_url_gets_the_body_too() -> None:
    """poll_request (the drivers' cached URL) builds the same body."""
    b = _toy(_post_poll)

    out = step.poll_request(b, job(b), "https://kept/url")

    assert (out.url, out.json_body) == (
        "https://kept/url",
        {"id": "j1", "region": "eu"},
    )


def test_a_body_that_cannot_be_built_is_a_protocol_error() -> None:
    """A body the job's values make unsendable is RemoteError(protocol), not InputError."""
    spec = _toy(_post_poll).spec
    lifecycle = spec.lifecycle("job")
    # A model built in Python: a spec file's checks refuse {+name} in a body.
    body = Body(kind="json", template="/a/{+region}")
    request = attrs.evolve(lifecycle.poll.request, body=body)
    lifecycle = attrs.evolve(
        lifecycle, poll=attrs.evolve(lifecycle.poll, request=request)
    )
    b = bind(
        attrs.evolve(spec, lifecycles=(lifecycle,)),
        "job",
        base_url=BASE,
        scale=1.0,
        auth=None,
        secrets=set(),
    )

    with pytest.raises(RemoteError, match="toy/job job j1: ") as info:
        step.request_for(b, job(b, inputs={"region": "..", "api_version": "1"}))

    assert (info.value.kind, info.value.retryable) == ("protocol", False)


def test_cancel_result_and_lookup_carry_their_bodies() -> None:
    """PATCH cancel, PUT result and POST lookup send their own filled bodies."""

    def change(lifecycle: dict[str, Any]) -> None:
        lifecycle["cancel"]["request"] = {
            "method": "PATCH",
            "path": "/regions/{region}/jobs/{job_id}",
            "body": {"json": {"status": "completed", "conclusion": "cancelled"}},
        }
        lifecycle["result"]["request"]["method"] = "PUT"
        lifecycle["result"]["request"]["body"] = {"form": {"job": "{job_id}"}}
        lifecycle["submit"]["client_ref"] = {"header": "Idempotency-Key"}
        lifecycle["lookup"] = {
            "request": {
                "method": "POST",
                "path": "/search",
                "body": {"json": {"ref": "{client_ref}"}},
            },
            "job_id": {"pointer": "/id"},
        }

    b = _toy(change)

    cancel = step.request_for(b, job(b, state="Running", phase=Phase.CANCEL))
    result = step.request_for(
        b, job(b, state="Done", phase=Phase.RESULT, result_link=f"{BASE}/r")
    )
    lookup = step.request_for(b, job(b, phase=Phase.LOOKUP, client_ref="ref-1"))

    assert (cancel.method, cancel.json_body) == (
        "PATCH",
        {"status": "completed", "conclusion": "cancelled"},
    )
    assert (result.method, result.data) == ("PUT", {"job": "j1"})
    assert (lookup.url, lookup.json_body) == (f"{BASE}/search", {"ref": "ref-1"})


def test_a_submit_body_template_replaces_the_inputs_body() -> None:
    """submit.request.body is sent instead of the body built from 'in: body' inputs."""

    def change(lifecycle: dict[str, Any]) -> None:
        lifecycle["inputs"]["text"]["in"] = "none"
        lifecycle["inputs"]["n"] = {"in": "none", "type": "integer"}
        lifecycle["submit"]["client_ref"] = {"header": "Idempotency-Key"}
        lifecycle["submit"]["request"]["body"] = {
            "json": {"doc": {"text": "{text}", "n": "{n}"}, "ref": "{client_ref}"}
        }

    b = _toy(change)
    values = {"region": "eu", "text": "hi", "n": 2}
    fresh = step.new_submission(
        b, key="k", inputs=values, filters=None, now=NOW, client_ref="r-1"
    )

    out = step.submit_request(b, fresh, values)

    assert out.json_body == {"doc": {"text": "hi", "n": 2}, "ref": "r-1"}
    assert (out.data, out.files) == (None, None)


def test_a_submit_body_template_without_a_client_ref_leaves_it_out() -> None:
    """Without a reference, '{client_ref}' is an absent value: its member is left out."""

    def change(lifecycle: dict[str, Any]) -> None:
        lifecycle["inputs"]["text"]["in"] = "none"
        lifecycle["submit"]["request"]["body"] = {"form": {"t": "{text}"}}

    b = _toy(change)
    values = {"region": "eu", "text": "hi"}
    fresh = step.new_submission(b, key="k", inputs=values, filters=None, now=NOW)

    out = step.submit_request(b, fresh, values)

    assert (out.json_body, out.data) == (None, {"t": "hi"})


def test_inputs_a_body_uses_are_kept_after_the_submit() -> None:
    """An 'in: none' input that a cancel body sends is kept in the job; others are not."""

    def change(lifecycle: dict[str, Any]) -> None:
        lifecycle["inputs"]["reason"] = {"in": "none"}
        lifecycle["cancel"]["request"]["body"] = {"json": {"why": "{reason}"}}

    b = _toy(change)

    assert "reason" in b.kept
    assert "text" not in b.kept


# -- step: items paged by a cursor in the body ------------------------------------------------


def _body_cursor_document() -> dict[str, Any]:
    document = batch_document()
    lifecycle_of(document, "batch")["items"].update(
        request={
            "method": "POST",
            "path": "/batches/{job_id}/docs",
            "body": {"json": {"token": "{cursor}", "size": 2}},
        },
        paging={"kind": "cursor", "next_pointer": "/next", "max_pages": 3},
    )
    return document


def _body_cursor_batch() -> Binding:
    return binding(_body_cursor_document(), "batch")


def _listing(b: Binding, **changes: Any) -> JobState:
    return job(
        b, state="Running", phase=Phase.ITEMS, page=f"{BASE}/batches/j1/docs", **changes
    )


def test_the_first_page_of_a_body_cursor_listing_sends_no_token() -> None:
    """No cursor yet: the token member is left out of the first page's body."""
    b = _body_cursor_batch()

    out = step.request_for(b, _listing(b))

    assert (out.method, out.json_body) == ("POST", {"size": 2})


def test_a_body_cursor_is_sent_back_to_the_same_url() -> None:
    """The page's cursor is kept and sent in the next page's body, at the same URL."""
    b = _body_cursor_batch()
    page = reply(
        200, {"value": [{"id": "d1"}], "next": "t2"}, url=f"{BASE}/batches/j1/docs"
    )

    done = _on(b, _listing(b), page)
    out = step.request_for(b, done.job)

    assert done.job.page_cursor == "t2"
    assert (out.url, out.json_body) == (
        f"{BASE}/batches/j1/docs",
        {"token": "t2", "size": 2},
    )


def test_a_page_without_a_cursor_ends_the_listing() -> None:
    """No next token: the listing ends and the cursor is dropped."""
    b = _body_cursor_batch()

    done = _on(b, _listing(b, page_cursor="t2"), reply(200, {"value": []}))

    assert (done.job.phase, done.job.page, done.job.page_cursor) == (
        Phase.POLL,
        None,
        None,
    )


def test_a_new_listing_and_a_cancel_drop_an_old_cursor() -> None:
    """A cursor belongs to one listing: a new one, or a cancel, starts without it."""
    document = _body_cursor_document()
    lifecycle_of(document, "batch")["cancel"] = {
        "request": {"method": "DELETE", "path": "/batches/{job_id}"},
        "from": ["Running"],
        "leads_to": ["Failed"],
    }
    b = binding(document, "batch")
    polling = job(b, state="Running", page_cursor="stale")

    listed = _on(b, polling, reply(200, {"status": "running"}))
    cancelling = step.request_cancel(b, _listing(b, page_cursor="t2"), now=NOW)

    assert listed.job.phase is Phase.ITEMS
    assert listed.job.page_cursor is None
    assert cancelling is not None
    assert cancelling.page_cursor is None


# -- step: values from earlier responses ---------------------------------------------------------


def _with_values(lifecycle: dict[str, Any]) -> None:
    lifecycle["values"] = {
        "upload": {"header": "X-Upload", "response": "submit"},
        "progress_url": {"pointer": "/progress", "response": "last"},
        "file": {"pointer": "/output_file_id", "response": "final"},
        "unused": {"pointer": "/x", "response": "final"},
    }
    lifecycle["poll"]["request"]["query"] = {"v": "{api_version}", "u": "{upload}"}
    lifecycle["result"]["request"] = {
        "path": "/files/{file}/content",
        "query": {"p": "{progress_url}"},
    }
    lifecycle["cancel"]["request"]["method"] = "POST"
    lifecycle["cancel"]["request"]["body"] = {"json": {"upload": "{upload}"}}


def test_a_binding_keeps_only_the_values_a_later_request_uses() -> None:
    """Values are grouped by the response they come from; unused ones are not read."""
    b = _toy(_with_values)

    assert {k: [v.name for v in vs] for k, vs in b.values_from.items()} == {
        "submit": ["upload"],
        "last": ["progress_url"],
        "final": ["file"],
    }


def test_values_are_read_from_the_submit_the_last_and_the_final_response() -> None:
    """Each value comes from its response, and later requests use them."""
    b = _toy(_with_values)
    values = {"region": "eu", "text": "t", "api_version": "1"}
    fresh = step.new_submission(b, key="k", inputs=values, filters=None, now=NOW)

    submitted = _on(b, fresh, reply(201, {"id": "j1"}, {"X-Upload": "u-1"}))
    polled = _on(b, submitted.job, reply(200, {"status": "running", "progress": "p/1"}))
    poll = step.request_for(b, polled.job)
    cancel = step.request_for(b, attrs.evolve(polled.job, phase=Phase.CANCEL))
    ended = _on(b, polled.job, reply(200, {"status": "done", "output_file_id": "f-9"}))

    assert submitted.job.values == {"upload": "u-1"}
    assert poll.url.endswith("/regions/eu/jobs/j1?v=1&u=u-1")
    assert cancel.json_body == {"upload": "u-1"}
    assert ended.job.values == {"upload": "u-1", "progress_url": "p/1", "file": "f-9"}
    assert ended.job.result_link == f"{BASE}/files/f-9/content?p=p%2F1"


def test_a_spec_without_values_reads_none() -> None:
    """Jobs of a lifecycle without values keep none."""
    b = binding()
    values = {"region": "eu"}
    fresh = step.new_submission(b, key="k", inputs=values, filters=None, now=NOW)

    submitted = _on(b, fresh, reply(201, {"id": "j1"}))
    ended = _on(b, submitted.job, reply(200, {"status": "done"}))

    assert (submitted.job.values, ended.job.values) == (None, None)


# -- the store snapshot ---------------------------------------------------------------------------


def test_values_and_a_body_cursor_survive_the_snapshot(toy: Binding) -> None:
    """to_json → JSON → from_json keeps a job's values and its page cursor."""
    kept = job(toy, values={"file": "f-9", "n": 3}, page_cursor="t2")

    again = JobState.from_json(json.loads(json.dumps(kept.to_json())))

    assert again == kept
    assert (again.values, again.page_cursor) == ({"file": "f-9", "n": 3}, "t2")


def test_a_snapshot_from_before_values_loads_without_them(toy: Binding) -> None:
    """A snapshot written before values and body cursors existed loads with none."""
    data = job(toy).to_json()
    del data["values"], data["page_cursor"]

    again = JobState.from_json(data)

    assert (again.values, again.page_cursor) == (None, None)


# -- step: header inputs ------------------------------------------------------------------------


def _tenant_header(lifecycle: dict[str, Any]) -> None:
    lifecycle["inputs"]["tenant"] = {"in": "header", "name": "X-Tenant"}
    lifecycle["inputs"]["dry"] = {
        "in": "header",
        "name": "X-Dry-Run",
        "type": "boolean",
    }
    lifecycle["submit"]["client_ref"] = {"header": "Idempotency-Key"}
    lifecycle["poll"]["conditional"] = True


def test_header_inputs_go_on_the_submit_and_every_later_request() -> None:
    """'in: header' inputs are sent as headers, on the submit and on each poll; kept."""
    b = _toy(_tenant_header)
    values = {"region": "eu", "text": "hi", "tenant": "acme", "dry": True}
    fresh = step.new_submission(
        b, key="k", inputs=values, filters=None, now=NOW, client_ref="r-1"
    )

    submit = step.submit_request(b, fresh, values)
    polled = job(
        b,
        inputs={"region": "eu", "api_version": "1", "tenant": "acme"},
        validators={"If-None-Match": '"v1"'},
    )
    poll = step.request_for(b, polled)

    assert {"tenant", "dry"} <= b.kept
    assert submit.headers == (
        ("X-Tenant", "acme"),
        ("X-Dry-Run", "true"),
        ("Idempotency-Key", "r-1"),
    )
    assert poll.headers == (("X-Tenant", "acme"), ("If-None-Match", '"v1"'))


def test_a_header_input_without_a_value_is_left_out() -> None:
    """An optional header input the caller did not give sends no header at all."""
    b = _toy(_tenant_header)

    assert step.request_for(b, job(b)).headers == ()
