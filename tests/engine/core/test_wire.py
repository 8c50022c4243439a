"""What goes on the wire: URLs, query merging, locators, bodies, pages, status classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine._core import wire
from engine._core.paging import next_page
from engine._core.redact import REDACTED, Redactor
from engine._core.verdict import classify, error_fields, status_error
from engine._errors import InputError, RemoteError
from statemachines import Errors, Lifecycle, Locator, Paging, Request
from tests.engine.core.conftest import BASE, lifecycle_of, load, reply, toy_document

POLL = Request(path="/regions/{region}/jobs/{job_id}", query=(("v", "{api_version}"),))
INPUTS = {"region": "eu", "api_version": "1"}


def _url(request: Request = POLL, **kwargs: Any) -> str:
    options: dict[str, Any] = {
        "inputs": INPUTS,
        "job_id": "j1",
        "query_inputs": (),
        "links": None,
        **kwargs,
    }
    return wire.build_url(BASE, request, **options)


# -- templates and URLs ------------------------------------------------------------------


def test_template_fields_lists_path_and_query_names() -> None:
    """Fields of the path and of every query template are what a request needs."""
    request = Request(path="/a/{x}/{+y}", query=(("q", "{z}-{x}"), ("k", "fixed")))

    assert wire.template_fields(request) == {"x", "y", "z"}


def test_a_path_value_is_one_encoded_segment() -> None:
    """A value with '/' or '?' cannot change the path or start a query."""
    assert wire.encode_path_value("a/b?c=d") == "a%2Fb%3Fc%3Dd"


@pytest.mark.parametrize(("value", "encoded"), [(".", "%2E"), ("..", "%2E%2E")])
def test_a_dot_segment_value_stays_literal(value: str, encoded: str) -> None:
    """A job id '.' or '..' is encoded so that no URL normaliser removes it."""
    assert wire.encode_path_value(value) == encoded


def test_expand_names_a_missing_field() -> None:
    """A template field without a value raises InputError naming it."""
    with pytest.raises(InputError, match="'region' is needed by path /regions"):
        wire.expand("/regions/{region}", {}, what="path /regions/{region}")


def test_build_url_fills_the_path_template_and_query() -> None:
    """Without a link, the path template is filled and the spec's query merged in."""
    assert _url() == f"{BASE}/regions/eu/jobs/j1?v=1"


def test_build_url_encodes_a_hostile_job_id() -> None:
    """A job id cannot climb out of its path segment."""
    assert _url(job_id="../admin") == f"{BASE}/regions/eu/jobs/..%2Fadmin?v=1"


def test_build_url_adds_query_inputs_under_their_wire_names() -> None:
    """An input declared 'in: query' is sent under its wire name when given."""
    document = toy_document()
    lifecycle_of(document)["inputs"]["tag"]["name"] = "label"
    lifecycle = load(document).lifecycle("job")
    query_inputs = [i for i in lifecycle.inputs if i.where == "query"]

    url = _url(inputs={**INPUTS, "tag": "a b"}, query_inputs=query_inputs)

    assert url == f"{BASE}/regions/eu/jobs/j1?v=1&label=a+b"


def test_a_query_input_not_given_is_not_sent() -> None:
    """An optional query input left out adds nothing."""
    lifecycle = load(toy_document()).lifecycle("job")
    query_inputs = [i for i in lifecycle.inputs if i.where == "query"]

    assert _url(query_inputs=query_inputs) == f"{BASE}/regions/eu/jobs/j1?v=1"


def test_a_link_wins_over_the_path_template() -> None:
    """A link already located is the URL; the spec's query is merged into it."""
    url = _url(link="https://api.example.test/op/9?sig=a%2Fb")

    assert url == "https://api.example.test/op/9?sig=a%2Fb&v=1"


def test_a_relative_link_is_joined_on_the_base_url() -> None:
    """A link without a host is relative to the spec's base URL."""
    assert _url(link="/op/9") == f"{BASE}/op/9?v=1"


def test_a_locator_reads_the_link_from_the_reply() -> None:
    """A request's url locator finds the link in the reply being handled."""
    request = Request(url=(Locator(pointer="/result_url"),), path="/fallback")

    url = _url(request, reply=reply(200, {"result_url": "/files/r1"}))

    assert url == f"{BASE}/files/r1"


def test_the_path_is_the_fallback_when_no_locator_finds_a_link() -> None:
    """A locator that finds nothing falls back on the path template."""
    request = Request(url=(Locator(pointer="/result_url"),), path="/jobs/{job_id}")

    assert _url(request, reply=reply(200, {})) == f"{BASE}/jobs/j1"


def test_no_link_and_no_path_is_a_protocol_error_that_is_not_retried() -> None:
    """Nothing to build a URL from: RemoteError(protocol), retrying cannot help."""
    request = Request(url=(Locator(pointer="/result_url"),))

    with pytest.raises(RemoteError) as info:
        _url(request, reply=reply(200, {}))

    assert (info.value.kind, info.value.retryable) == ("protocol", False)


def test_a_missing_path_input_is_an_input_error_naming_it() -> None:
    """A path template field without a value names the input and the path."""
    with pytest.raises(InputError, match="'region' is needed by path /regions/"):
        _url(inputs={"api_version": "1"})


def test_a_missing_query_input_is_an_input_error_naming_it() -> None:
    """A query template field without a value names the input."""
    with pytest.raises(InputError, match="'api_version' is needed by the query"):
        _url(inputs={"region": "eu"})


def test_a_non_scalar_input_cannot_fill_a_query_template() -> None:
    """Objects and arrays are never pasted into a query: the field has no value."""
    with pytest.raises(InputError, match="'api_version'"):
        _url(inputs={"region": "eu", "api_version": ["1", "2"]})


def test_extra_parameters_are_merged_last() -> None:
    """Extra parameters (paging, filters) join the spec's query."""
    assert _url(extra={"top": "5"}) == f"{BASE}/regions/eu/jobs/j1?v=1&top=5"


def test_a_malformed_link_is_a_protocol_error_not_a_value_error() -> None:
    """A link a server made up that is no URL ends as RemoteError(protocol), never retried."""
    with pytest.raises(RemoteError) as info:
        _url(link="http://[oops/x")

    assert (info.value.kind, info.value.retryable) == ("protocol", False)
    assert "oops" not in str(info.value)


# -- merge_query -----------------------------------------------------------------------------


def test_merge_query_keeps_opaque_pairs_byte_for_byte() -> None:
    """Pairs the URL already has are not decoded or re-encoded (tokens stay valid)."""
    url = "https://h.test/p?token=a%2Fb%3D%3D&x=1+2&raw=%7E"

    merged = wire.merge_query(url, {"api-version": "2024-05-01"})

    assert (
        merged
        == "https://h.test/p?token=a%2Fb%3D%3D&x=1+2&raw=%7E&api-version=2024-05-01"
    )


def test_merge_query_replaces_a_parameter_the_url_already_has() -> None:
    """A parameter set by the spec replaces the URL's own, even percent-encoded."""
    merged = wire.merge_query(
        "https://h.test/p?a%2Db=old&x=1&a-b=older", {"a-b": "new"}
    )

    assert merged == "https://h.test/p?x=1&a-b=new"


def test_merge_query_without_parameters_returns_the_url_unchanged() -> None:
    """Nothing to merge: the very same URL."""
    url = "https://h.test/p?&odd=%zz#f"

    assert wire.merge_query(url, {}) is url


def test_merge_query_keeps_the_fragment_last() -> None:
    """A fragment stays after the query."""
    assert wire.merge_query("https://h.test/p?a=1#frag", {"b": "2"}) == (
        "https://h.test/p?a=1&b=2#frag"
    )


def test_merge_query_sends_a_list_as_repeated_pairs() -> None:
    """A list value becomes one pair per element."""
    assert wire.merge_query("https://h.test/p", {"s": ["A", "B c"]}) == (
        "https://h.test/p?s=A&s=B+c"
    )


def test_merge_query_drops_empty_pairs() -> None:
    """'&&' and a bare '?' leave no empty pair behind."""
    assert wire.merge_query("https://h.test/p?a=1&&b=2", {"c": "3"}) == (
        "https://h.test/p?a=1&b=2&c=3"
    )
    assert wire.merge_query("https://h.test/p?", {"c": "3"}) == "https://h.test/p?c=3"


# -- locators -----------------------------------------------------------------------------


def test_locate_reads_a_header_whatever_its_case_in_the_spec() -> None:
    """Header locators match the driver's lower-case header keys."""
    got = reply(202, None, {"Operation-Location": "https://h.test/op/1"})

    assert wire.locate((Locator(header="Operation-LOCATION"),), got, None) == (
        "https://h.test/op/1"
    )


def test_locate_reads_a_pointer_and_gives_a_string() -> None:
    """A body value found at a pointer is returned as text (numbers too)."""
    assert (
        wire.locate(
            (Locator(pointer="/job/id"),), reply(200, {"job": {"id": 42}}), None
        )
        == "42"
    )


def test_locate_takes_the_named_group_id() -> None:
    """A pattern's group named 'id' is the value."""
    locator = Locator(header="location", pattern=r"/(?P<kind>\w+)/(?P<id>[^/?]+)")
    got = reply(202, None, {"Location": "https://h.test/batches/b-7?x=1"})

    assert wire.locate((locator,), got, None) == "b-7"


def test_locate_takes_the_first_group_without_a_named_one() -> None:
    """Without a group named 'id', the first group is the value."""
    locator = Locator(pointer="/link", pattern=r"jobs/(\d+)")

    assert wire.locate((locator,), reply(200, {"link": "/jobs/77/x"}), None) == "77"


def test_locate_takes_the_whole_match_without_groups() -> None:
    """A pattern without groups keeps what it matched."""
    locator = Locator(pointer="/link", pattern=r"\d+")

    assert wire.locate((locator,), reply(200, {"link": "job-77"}), None) == "77"


def test_locate_tries_the_next_locator_when_one_finds_nothing() -> None:
    """Missing, null, empty and unmatched values all fall through to the next locator."""
    locators = (
        Locator(pointer="/missing"),
        Locator(pointer="/null"),
        Locator(pointer="/empty"),
        Locator(pointer="/text", pattern=r"id=(\d+)"),
        Locator(pointer="/good"),
    )
    body = {"null": None, "empty": "", "text": "no id", "good": "found"}

    assert wire.locate(locators, reply(200, body), None) == "found"


def test_locate_gives_none_when_nothing_is_found() -> None:
    """No locator finds a value: None."""
    assert wire.locate((Locator(pointer="/x"),), reply(200, {}), None) is None


def test_locate_reads_submit_locators_from_the_kept_links() -> None:
    """A locator on the submit response reads what was kept from it, by its location."""
    locator = Locator(header="location", response="submit", location="/poll/url")

    assert wire.locate((locator,), None, {"/poll/url": "https://h.test/op/1"}) == (
        "https://h.test/op/1"
    )


def test_locate_without_a_reply_skips_last_response_locators() -> None:
    """Building a URL with no reply at hand skips locators on the last response."""
    locators = (
        Locator(pointer="/x"),
        Locator(header="h", response="submit", location="k"),
    )

    assert wire.locate(locators, None, None) is None


def _submit_links_lifecycle(**blocks: Any) -> Lifecycle:
    document = toy_document()
    lifecycle = lifecycle_of(document)
    lifecycle["poll"]["request"]["url"] = [
        {"header": "Operation-Location", "response": "submit"},
        {"pointer": "/next"},
    ]
    lifecycle.update(blocks)
    return load(document).lifecycle("job")


def test_submit_links_keeps_what_later_requests_locate_in_the_submit_response() -> None:
    """Values located on the submit response are kept by the locator's location."""
    lifecycle = _submit_links_lifecycle()
    got = reply(202, {"id": "j1"}, {"Operation-Location": "https://h.test/op/j1"})

    links = wire.submit_links(lifecycle, got)

    assert links == {"/lifecycles/job/poll/request/url/0": "https://h.test/op/j1"}


def test_submit_links_is_none_when_nothing_is_located() -> None:
    """A submit response without the located values keeps no links."""
    assert (
        wire.submit_links(_submit_links_lifecycle(), reply(202, {"id": "j1"})) is None
    )


def test_submit_links_reads_the_cancel_and_result_locators_too() -> None:
    """Every later request's submit locators are read, not only the poll's."""
    lifecycle = _submit_links_lifecycle(
        cancel={
            "request": {
                "method": "DELETE",
                "url": {"pointer": "/cancel", "response": "submit"},
            },
            "from": ["Queued", "Running"],
            "leads_to": ["Cancelling", "Cancelled"],
        }
    )

    links = wire.submit_links(lifecycle, reply(202, {"id": "j1", "cancel": "/c/j1"}))

    assert links == {"/lifecycles/job/cancel/request/url": "/c/j1"}


def test_submit_links_of_a_lifecycle_without_result_or_cancel() -> None:
    """A lifecycle with only a poll reads only the poll's locators."""
    lifecycle = _submit_links_lifecycle()
    lifecycle_without = load(_strip(toy_document(), "result", "cancel")).lifecycle(
        "job"
    )

    assert wire.submit_links(lifecycle_without, reply(202, {"id": "j1"})) is None
    assert lifecycle.result is not None


def _strip(document: dict[str, Any], *blocks: str) -> dict[str, Any]:
    for block in blocks:
        del lifecycle_of(document)[block]
    return document


# -- bodies -----------------------------------------------------------------------------------


def _form_lifecycle() -> Lifecycle:
    document = toy_document()
    lifecycle_of(document)["inputs"] = {
        "region": {"in": "path"},
        "text": {"in": "body", "name": "Text"},
        "note": {"in": "form"},
        "flag": {"in": "form"},
        "off": {"in": "form"},
        "tags": {"in": "form"},
        "count": {"in": "form"},
        "doc": {"in": "file", "name": "document"},
        "api_version": {"in": "none", "default": "1"},
    }
    return load(document).lifecycle("job")


def test_no_body_is_sent_for_body_none() -> None:
    """body: none sends nothing, whatever the inputs."""
    assert wire.encode_body(_form_lifecycle(), "none", {"text": "x"}) == (
        None,
        None,
        None,
    )


def test_json_body_has_the_body_inputs_under_their_wire_names() -> None:
    """A JSON body holds the body inputs given (path, form, file inputs stay out)."""
    values = {"region": "eu", "text": "hello", "note": "n"}

    assert wire.encode_body(_form_lifecycle(), "json", values) == (
        {"Text": "hello"},
        None,
        None,
    )


def test_form_body_encodes_values_as_text() -> None:
    """Form fields are text: booleans as true/false, lists element by element."""
    values = {
        "region": "eu",
        "text": "t",
        "note": "n",
        "flag": True,
        "off": False,
        "tags": ("a", 1),
        "count": 3,
        "doc": b"%PDF",
    }

    assert wire.encode_body(_form_lifecycle(), "form", values) == (
        None,
        {
            "Text": "t",
            "note": "n",
            "flag": "true",
            "off": "false",
            "tags": ["a", "1"],
            "count": "3",
        },
        None,
    )


def test_multipart_body_sends_bytes_as_a_file_part() -> None:
    """Bytes become an anonymous octet-stream part."""
    _, data, files = wire.encode_body(
        _form_lifecycle(), "multipart", {"doc": b"%PDF", "note": "n"}
    )

    assert data == {"note": "n"}
    assert files == {"document": ("upload", b"%PDF", "application/octet-stream")}


def test_multipart_body_passes_a_prepared_part_through() -> None:
    """A (name, content, type) tuple is sent as given."""
    part = ("a.png", b"\x89PNG", "image/png")

    _, _, files = wire.encode_body(_form_lifecycle(), "multipart", {"doc": part})

    assert files == {"document": part}


def test_multipart_body_reads_a_path(tmp_path: Path) -> None:
    """A path is read and sent under its file name."""
    path = tmp_path / "invoice.pdf"
    path.write_bytes(b"%PDF-1.7")

    _, _, files = wire.encode_body(_form_lifecycle(), "multipart", {"doc": str(path)})

    assert files == {
        "document": ("invoice.pdf", b"%PDF-1.7", "application/octet-stream")
    }


def test_multipart_body_without_files_has_no_file_parts() -> None:
    """No file input given: files is None, not an empty mapping."""
    assert wire.encode_body(_form_lifecycle(), "multipart", {"note": "n"}) == (
        None,
        {"note": "n"},
        None,
    )


# -- pages ------------------------------------------------------------------------------------


def _paging(kind: str, **fields: Any) -> Paging:
    return Paging(kind=kind, **fields)  # type: ignore[arg-type] # kind is checked by the schema


def _next_page(
    paging: Paging, body: Any, *, listed: int = 2, count: int = 2
) -> str | None:
    return next_page(
        paging,
        body,
        url=f"{BASE}/docs?top=2",
        base_url=BASE,
        listed=listed,
        count=count,
    )


def test_next_link_is_read_at_the_first_pointer_that_has_one() -> None:
    """next_link pointers are tried in order; a relative link is joined on the base URL."""
    paging = _paging("next_link", next_pointers=("/@nextLink", "/nextLink"))

    assert _next_page(paging, {"@nextLink": None, "nextLink": "/docs?skip=2"}) == (
        f"{BASE}/docs?skip=2"
    )


def test_no_next_link_means_the_last_page() -> None:
    """No link (or not a string) at any pointer: the listing ends."""
    paging = _paging("next_link", next_pointers=("/next",))

    assert _next_page(paging, {"next": 5}) is None


def test_a_malformed_next_link_is_a_protocol_error_not_a_value_error() -> None:
    """A next link that is no URL ends as RemoteError(protocol), never retried."""
    paging = _paging("next_link", next_pointers=("/next",))

    with pytest.raises(RemoteError) as info:
        _next_page(paging, {"next": "http://[oops/docs"})

    assert (info.value.kind, info.value.retryable) == ("protocol", False)


def test_skip_paging_asks_for_the_entries_after_those_listed() -> None:
    """A full page asks for the next one with skip = entries listed so far."""
    paging = _paging("skip", skip_param="$skip", page_size=2)

    assert _next_page(paging, {}, listed=4, count=2) == f"{BASE}/docs?top=2&%24skip=4"


def test_skip_paging_ends_on_a_short_page() -> None:
    """A page with fewer entries than the page size is the last."""
    paging = _paging("skip", skip_param="$skip", page_size=2)

    assert _next_page(paging, {}, count=1) is None


def test_skip_paging_ends_on_an_empty_page() -> None:
    """Without a page size, only an empty page ends the listing."""
    paging = _paging("skip", skip_param="$skip")

    assert _next_page(paging, {}, count=3, listed=3) == f"{BASE}/docs?top=2&%24skip=3"
    assert _next_page(paging, {}, count=0) is None


def test_skip_paging_without_a_parameter_reads_one_page() -> None:
    """No skip parameter declared: there is no way to ask for more."""
    assert _next_page(_paging("skip", page_size=2), {}) is None


def test_cursor_paging_sends_the_token_back() -> None:
    """A cursor found in the body is sent as the cursor parameter."""
    paging = _paging("cursor", next_pointers=("/cursor",), cursor_param="after")

    assert (
        _next_page(paging, {"cursor": "c/2=="})
        == f"{BASE}/docs?top=2&after=c%2F2%3D%3D"
    )


def test_cursor_paging_ends_without_a_token() -> None:
    """No token (or an empty or non-string one) ends the listing."""
    paging = _paging(
        "cursor", next_pointers=("/cursor", "/other"), cursor_param="after"
    )

    assert _next_page(paging, {"cursor": "", "other": 3}) is None


def test_cursor_paging_without_a_parameter_reads_one_page() -> None:
    """A token with nowhere to send it ends the listing."""
    paging = _paging("cursor", next_pointers=("/cursor",))

    assert _next_page(paging, {"cursor": "c2"}) is None


# -- classification ----------------------------------------------------------------------------

ERRORS = Errors(retry_status=(429, 503), fatal_status=(400, 500))


@pytest.mark.parametrize(
    ("status", "accepted", "verdict"),
    [
        (429, True, "transient"),
        (503, False, "transient"),
        (500, False, "fatal"),
        (400, True, "fatal"),
        (200, True, "observe"),
        (302, True, "observe"),
        (502, False, "transient"),
        (599, False, "transient"),
        (404, False, "fatal"),
        (204, False, "fatal"),
    ],
)
def test_classify_by_the_specs_lists_then_acceptance_then_class(
    status: int, accepted: bool, verdict: str
) -> None:
    """retry_status, then fatal_status, then accepted; other 5xx transient, the rest fatal."""
    assert classify(status, ERRORS, accepted=accepted) == verdict


# -- status errors -----------------------------------------------------------------------------

POINTED = Errors(
    code_pointers=("/error/inner/code", "/error/code"),
    message_pointers=("/error/message",),
)


def _status_error(
    status: int, body: Any, *, secrets: tuple[str, ...] = (), retryable: bool = False
) -> RemoteError:
    got = reply(status, body, url="https://api.example.test/jobs/j1?sig=abc")
    return status_error(
        got, POINTED, Redactor(secrets=secrets).text, retryable=retryable
    )


def test_status_error_reads_code_and_message_at_the_pointers() -> None:
    """The service's code and message (first pointer with a value) are carried and shown."""
    error = _status_error(
        403, {"error": {"inner": {"code": None}, "code": "Denied", "message": "no"}}
    )

    assert (error.kind, error.status, error.code, error.remote_message) == (
        "status",
        403,
        "Denied",
        "no",
    )
    assert str(error) == "HTTP 403 Denied from api.example.test/jobs/j1 (fatal): no"


def test_status_error_takes_the_retryable_flag_from_the_verdict() -> None:
    """The retryable flag is the verdict's, and the message says so."""
    error = _status_error(503, {"error": {"code": "Busy"}}, retryable=True)

    assert error.retryable
    assert str(error) == "HTTP 503 Busy from api.example.test/jobs/j1 (retryable)"


def test_status_error_turns_a_numeric_code_into_text() -> None:
    """A code that is a number is carried as text."""
    assert _status_error(400, {"error": {"code": 4001}}).code == "4001"


def test_status_error_without_a_readable_body_names_only_the_status() -> None:
    """An empty or malformed error body gives the status, host and path alone."""
    assert (
        str(_status_error(500, None))
        == "HTTP 500 from api.example.test/jobs/j1 (fatal)"
    )
    assert (
        str(_status_error(500, b"<html>"))
        == "HTTP 500 from api.example.test/jobs/j1 (fatal)"
    )


def test_status_error_redacts_an_echoed_secret() -> None:
    """A service echoing the key it received has it blanked in code, message and text."""
    error = _status_error(
        401,
        {"error": {"code": "bad-k3y", "message": "key k3y is invalid"}},
        secrets=("k3y",),
    )

    assert (error.code, error.remote_message) == (
        f"bad-{REDACTED}",
        f"key {REDACTED} is invalid",
    )
    assert "k3y" not in str(error)


def test_status_error_cuts_a_megabyte_message() -> None:
    """A hostile megabyte message is cut to a readable length."""
    error = _status_error(
        400, {"error": {"message": "x" * 1_000_000, "code": "c" * 500}}
    )

    assert error.remote_message == "x" * 297 + "..."
    assert error.code == "c" * 97 + "..."


def test_status_error_never_leaves_part_of_a_secret_at_the_cut() -> None:
    """A secret straddling the cut is blanked before the cut, not left half-visible."""
    echoed = "KEYKEYKEY-0123456789"
    error = _status_error(
        400, {"error": {"message": "x" * 290 + echoed}}, secrets=(echoed,)
    )

    assert error.remote_message is not None
    assert "KEY" not in error.remote_message


def test_error_fields_keep_the_classification_as_json() -> None:
    """A classified error is stored with every field a caller's error is rebuilt from."""
    error = RemoteError(
        "HTTP 404 from h/p (fatal)",
        kind="status",
        status=404,
        code="NotFound",
        remote_message="gone",
        retryable=False,
    )

    assert error_fields(error) == {
        "kind": "status",
        "status": 404,
        "code": "NotFound",
        "message": "HTTP 404 from h/p (fatal)",
        "remote_message": "gone",
        "retryable": False,
    }


def test_locate_finds_nothing_in_a_body_that_is_not_json() -> None:
    """A pointer locator on an unreadable body finds no value; the next locator is tried."""
    locators = (Locator(pointer="/link"), Locator(header="location"))
    got = reply(202, b"Accepted", {"Location": "/op/1"})

    assert wire.locate(locators, got, None) == "/op/1"


def test_a_value_a_reserved_expansion_refuses_is_an_input_error() -> None:
    """{+name} with a value that would climb out of its prefix is refused, naming why."""
    with pytest.raises(InputError, match=r"'\.\.' path segment"):
        wire.expand(
            "/files/{+name}", {"name": "a/../../etc"}, what="path /files/{+name}"
        )
