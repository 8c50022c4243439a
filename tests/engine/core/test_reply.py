"""Reply: a response read in full; its body parsed once, hostile bodies refused."""

from __future__ import annotations

import pytest

from engine._core.reply import Reply, parse_json, where
from engine._errors import RemoteError
from tests.engine.core.conftest import reply


def test_where_names_host_and_path_never_the_query() -> None:
    """Messages name host/path: a query can carry a token."""
    assert where("https://api.example.test/a/b?sig=secret#x") == "api.example.test/a/b"


def test_empty_body_parses_as_none() -> None:
    """A blank body is no JSON document: None, not an error."""
    assert (
        parse_json(b" \n", url="https://h.test/", status=204, content_type="?") is None
    )


def test_json_body_is_parsed() -> None:
    """A JSON body gives its value."""
    assert reply(200, {"a": [1]}).json() == {"a": [1]}


def test_malformed_body_is_a_protocol_error_naming_status_and_content_type() -> None:
    """Not JSON: RemoteError(protocol) with host/path, status and content type."""
    bad = reply(
        200, b"<html>", {"Content-Type": "text/html"}, url="https://h.test/p?k=v"
    )

    with pytest.raises(RemoteError) as info:
        bad.json()

    assert info.value.kind == "protocol"
    assert info.value.status == 200
    assert str(info.value) == "malformed JSON from h.test/p (HTTP 200, text/html)"


def test_malformed_body_without_content_type_says_so() -> None:
    """A reply without a content type is reported with '?'."""
    with pytest.raises(RemoteError, match=r"\(HTTP 502, \?\)"):
        reply(502, b"{", url="https://h.test/p").json()


def test_a_nesting_bomb_is_a_protocol_error() -> None:
    """A body nested deeper than the parser's stack is refused as malformed, not a crash."""
    bomb = b"[" * 100_000 + b"]" * 100_000

    with pytest.raises(RemoteError) as info:
        reply(200, bomb).json()

    assert info.value.kind == "protocol"


def test_body_is_parsed_once() -> None:
    """The parsed body is kept: a second call returns the same object."""
    got = reply(200, {"a": 1})

    first = got.json()

    assert got.json() is first


def test_a_parsed_body_can_be_given_up_front() -> None:
    """A driver that already parsed the body passes it in, and it is not parsed again."""
    got = Reply(
        200, {}, b"not json", "https://h.test/", _parsed={"x": 1}, _parsed_ok=True
    )

    assert got.json() == {"x": 1}


def test_where_names_a_url_too_broken_to_split_without_raising() -> None:
    """A message about a broken URL must not fail in turn."""
    from engine._core.reply import where

    assert where("http://[::1/x?sig=secret") == "an unparsable URL"
    assert (
        where("https://api.example.test/v2/jobs?sig=secret")
        == "api.example.test/v2/jobs"
    )
