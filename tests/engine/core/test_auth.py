"""OAuth2 client credentials decided on plain values: the request, redirects, answers, renewal."""

# ruff: noqa: S105, S106 - made-up credentials and variable names, none of them real

from __future__ import annotations

import base64
from typing import Any

import pytest

from engine._core.auth import (
    Grant,
    read_grant,
    token_error,
    token_redirect,
    token_request,
    token_url,
)
from engine._errors import RemoteError
from statemachines import OAuth2ClientCredentials
from tests.engine.core.conftest import reply

TOKEN_URL = "https://idp.example.test/oauth/token"
SECRET = "s3cr3t/+="  # characters that Basic's form-encoding must escape


def _auth(**changes: Any) -> OAuth2ClientCredentials:
    fields: dict[str, Any] = {
        "token_url": TOKEN_URL,
        "client_id_env": "ID",
        "client_secret_env": "SECRET",
        **changes,
    }
    return OAuth2ClientCredentials(**fields)


def _blank(text: str) -> str:
    return text.replace(SECRET, "[REDACTED]")


def _answer(status: int = 200, body: Any = None) -> Any:
    return reply(status, body, {"content-type": "application/json"}, url=TOKEN_URL)


def _grant(body: Any, *, now: float = 100.0, margin: float = 60.0) -> Grant:
    return read_grant(_answer(200, body), now=now, margin=margin, text=_blank)


def _refusal(status: int, body: Any) -> RemoteError:
    return token_error(_answer(status, body), _blank)


# -- where the endpoint is -----------------------------------------------------------------


def test_a_token_path_is_on_the_base_urls_host() -> None:
    """'/oauth/token' resolves against the base URL's scheme and host, not its path."""
    url = token_url(_auth(token_url="/oauth/token"), "http://127.0.0.1:81/v2/", None)

    assert url == "http://127.0.0.1:81/oauth/token"


def test_an_absolute_token_url_and_the_override_are_used_as_given() -> None:
    """The spec's absolute URL as is; the variable's value wins over it."""
    auth = _auth()

    assert token_url(auth, "https://api.example.test", None) == TOKEN_URL
    assert (
        token_url(auth, "https://api.example.test", "https://other.test/t")
        == "https://other.test/t"
    )


# -- what a token request carries ------------------------------------------------------------


def test_basic_client_auth_sends_the_form_encoded_pair_in_the_header() -> None:
    """RFC 6749 §2.3.1: id and secret form-encoded, joined by ':', base64; not in the form."""
    request = token_request(_auth(scope="a b"), "my id", SECRET)

    basic = base64.b64encode(b"my+id:s3cr3t%2F%2B%3D").decode()
    assert request.headers == (
        ("Accept", "application/json"),
        ("Authorization", f"Basic {basic}"),
    )
    assert request.form == (("grant_type", "client_credentials"), ("scope", "a b"))
    assert request.secrets == (SECRET, basic)


def test_form_client_auth_puts_id_and_secret_in_the_form_after_the_grant() -> None:
    """With 'form', no Authorization header; params follow in the spec's order."""
    request = token_request(
        _auth(client_auth="form", params=(("audience", "api"),)), "id", SECRET
    )

    assert request.headers == (("Accept", "application/json"),)
    assert request.form == (
        ("grant_type", "client_credentials"),
        ("client_id", "id"),
        ("client_secret", SECRET),
        ("audience", "api"),
    )
    assert request.secrets == (SECRET,)


def test_a_token_request_never_shows_its_secret_in_repr() -> None:
    """The request's repr (in a log or a traceback) holds neither the secret nor Basic."""
    request = token_request(_auth(), "id", SECRET)

    assert SECRET not in repr(request)
    assert "Basic" not in repr(request)


# -- redirects of the token request ----------------------------------------------------------


def test_a_non_redirect_answer_is_read_where_it_came_from() -> None:
    """A 200 or a 401 is no redirect."""
    assert token_redirect(_answer(200), TOKEN_URL) is None
    assert token_redirect(_answer(401), TOKEN_URL) is None


@pytest.mark.parametrize("status", [307, 308])
def test_a_same_origin_307_or_308_is_followed(status: int) -> None:
    """The POST and its form may go on to another path of the same origin."""
    moved = reply(status, headers={"location": "/v2/token"}, url=TOKEN_URL)

    assert token_redirect(moved, TOKEN_URL) == "https://idp.example.test/v2/token"


def test_a_redirect_to_another_host_never_gets_the_secret() -> None:
    """A 307 elsewhere is a fatal auth error naming both hosts, no query."""
    moved = reply(307, headers={"location": "https://evil.test/t?x=1"}, url=TOKEN_URL)

    with pytest.raises(RemoteError) as info:
        token_redirect(moved, TOKEN_URL)

    error = info.value
    assert (error.kind, error.status, error.retryable) == ("auth", 307, False)
    assert str(error) == (
        "token endpoint idp.example.test/oauth/token redirected to another host "
        "(evil.test/t); the client secret goes only to idp.example.test"
    )


@pytest.mark.parametrize(
    ("status", "headers"),
    [(302, {"location": "/v2/token"}), (307, {})],
    ids=["302-would-turn-to-get", "307-without-location"],
)
def test_a_redirect_that_loses_the_post_is_refused(
    status: int, headers: dict[str, str]
) -> None:
    """301/302/303 would drop the form; a 307 without Location leads nowhere."""
    moved = reply(status, headers=headers, url=TOKEN_URL)

    with pytest.raises(RemoteError) as info:
        token_redirect(moved, TOKEN_URL)

    assert (info.value.kind, info.value.retryable) == ("auth", False)
    assert f"answered HTTP {status}" in str(info.value)


# -- what the endpoint's answer means --------------------------------------------------------


def test_a_grant_is_renewed_a_margin_before_it_expires() -> None:
    """expires_in 3600 with a 60 s margin: expires at now+3600, renewed from now+3540."""
    grant = _grant({"access_token": "tok", "token_type": "bearer", "expires_in": 3600})

    assert (grant.token, grant.obtained) == ("tok", 100.0)
    assert (grant.expires_at, grant.refresh_at) == (3700.0, 3640.0)
    assert grant.header == ("Authorization", "Bearer tok")
    assert not grant.due(3639.9)
    assert grant.due(3640.0)


def test_a_short_lived_grant_is_renewed_at_half_its_life() -> None:
    """A 10 s token with a 60 s margin is renewed after 5 s, not on every request."""
    grant = _grant({"access_token": "tok", "expires_in": "10"})

    assert (grant.expires_at, grant.refresh_at) == (110.0, 105.0)


@pytest.mark.parametrize(
    "expires_in",
    [None, True, "soon", "nan", float("inf"), 10**400, [1]],
    ids=["absent", "bool", "word", "nan", "inf", "huge", "list"],
)
def test_a_grant_without_a_usable_lifetime_is_renewed_on_a_401_only(
    expires_in: Any,
) -> None:
    """Absent, a bool, a word, NaN, infinity, an int past float, a list: never due."""
    body = {"access_token": "tok"}
    if expires_in is not None:
        body["expires_in"] = expires_in

    grant = _grant(body)

    assert (grant.expires_at, grant.refresh_at) == (None, None)
    assert not grant.due(1e12)


def test_a_negative_lifetime_makes_a_grant_due_at_once() -> None:
    """expires_in below zero reads as zero: due now, used once while renewing."""
    grant = _grant({"access_token": "tok", "expires_in": -5})

    assert grant.due(100.0)


def test_a_grant_never_shows_its_token_in_repr() -> None:
    """The token is left out of the grant's repr."""
    grant = _grant({"access_token": "very-secret-token"})

    assert "very-secret-token" not in repr(grant)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"token_type": "Bearer"}, "no usable access_token"),
        ({"access_token": "two words"}, "no usable access_token"),
        ({"access_token": 12}, "no usable access_token"),
        (["tok"], "no usable access_token"),
        ({"access_token": "tok", "token_type": "mac"}, "token_type 'mac', not Bearer"),
        ({"access_token": "tok", "token_type": 1}, "token_type '1', not Bearer"),
    ],
    ids=["missing", "space", "number", "list", "mac", "number-type"],
)
def test_a_success_without_a_usable_bearer_token_is_fatal(
    body: Any, problem: str
) -> None:
    """No token, one a header cannot carry, or another token type: not retried."""
    with pytest.raises(RemoteError) as info:
        _grant(body)

    error = info.value
    assert (error.kind, error.status, error.retryable) == ("auth", 200, False)
    assert str(error) == (
        f"token endpoint idp.example.test/oauth/token answered HTTP 200 with {problem}"
    )


def test_a_success_that_is_not_json_is_fatal() -> None:
    """An HTML login page with a 200 is an auth error, not a token."""
    page = reply(200, b"<html>", {"content-type": "text/html"}, url=TOKEN_URL)

    with pytest.raises(RemoteError) as info:
        read_grant(page, now=0.0, margin=60.0, text=_blank)

    assert (info.value.kind, info.value.retryable) == ("auth", False)
    assert str(info.value) == (
        "token endpoint idp.example.test/oauth/token answered HTTP 200 without JSON"
    )


def test_an_error_answer_is_read_as_the_endpoints_refusal() -> None:
    """read_grant on a 401 raises what token_error makes of it."""
    with pytest.raises(RemoteError) as info:
        read_grant(
            _answer(401, {"error": "invalid_client"}), now=0, margin=0, text=_blank
        )

    assert (info.value.code, info.value.retryable) == ("invalid_client", False)


def test_a_refusal_names_code_and_description_with_secrets_blanked() -> None:
    """RFC 6749 §5.2's error and error_description, redacted, in the message and fields."""
    error = _refusal(
        400,
        {"error": "invalid_client", "error_description": f"bad secret {SECRET}"},
    )

    assert (error.kind, error.status, error.code) == ("auth", 400, "invalid_client")
    assert error.remote_message == "bad secret [REDACTED]"
    assert not error.retryable
    assert str(error) == (
        "token endpoint idp.example.test/oauth/token refused a token "
        "(HTTP 400 invalid_client: bad secret [REDACTED])"
    )


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (503, {"error": "invalid_client"}, True),
        (429, None, True),
        (408, b"", True),
        (425, None, True),
        (400, {"error": "temporarily_unavailable"}, True),
        (400, {"error": "invalid_scope"}, False),
        (403, b"<html>no</html>", False),
        (400, {"error": 7, "error_description": ["x"]}, False),
    ],
    ids=[
        "5xx",
        "429",
        "408",
        "425",
        "unknown-code",
        "rfc-code",
        "not-json",
        "odd-fields",
    ],
)
def test_a_refusal_is_retried_only_when_a_later_try_may_pass(
    status: int, body: Any, *, retryable: bool
) -> None:
    """Busy and server errors and unknown codes are transient; the RFC's codes are not."""
    error = _refusal(status, body)

    assert (error.kind, error.status, error.retryable) == ("auth", status, retryable)


def test_a_bare_refusal_says_only_its_status() -> None:
    """No body: the message ends at the status, no code."""
    error = _refusal(401, None)

    assert error.code is None
    assert str(error) == (
        "token endpoint idp.example.test/oauth/token refused a token (HTTP 401)"
    )
