"""service.auth kinds: the schema's shapes, the model built, the checks beyond the schema."""

# ruff: noqa: S105, S106 - made-up credentials and variable names, none of them real

from __future__ import annotations

from typing import Any

import pytest

from statemachines import (
    Auth,
    AwsSigV4,
    OAuth2ClientCredentials,
    Spec,
    SpecError,
    load_document,
)
from tests.statemachines.helpers import job_lifecycle, minimal_spec

OAUTH2: dict[str, Any] = {
    "kind": "oauth2_client_credentials",
    "token_url": "https://idp.example.com/oauth/token",
    "client_id_env": "DEMO_CLIENT_ID",
    "client_secret_env": "DEMO_CLIENT_SECRET",
}
SIGV4: dict[str, Any] = {
    "kind": "aws_sigv4",
    "service": "execute-api",
    "region": "eu-west-1",
}


def _with_auth(auth: dict[str, Any]) -> dict[str, Any]:
    document = minimal_spec()
    document["service"]["auth"] = auth
    return document


def _load(auth: dict[str, Any]) -> Spec:
    return load_document(_with_auth(auth))


def _problems(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(SpecError) as info:
        load_document(document)
    return [(p.pointer, p.severity, p.message) for p in info.value.problems]


# -- the schema ----------------------------------------------------------------------------


def test_a_header_auth_may_name_its_kind() -> None:
    """'kind': 'header' is the default shape spelled out: same model as without it."""
    spec = _load({"kind": "header", "header": "X-Key", "env": "DEMO_KEY"})

    assert spec.service.auth == Auth(header="X-Key", env="DEMO_KEY")
    assert spec.service.auth.kind == "header"


def test_an_unknown_kind_is_refused_with_the_kinds() -> None:
    """A misspelt kind lists the three kinds there are."""
    found = _problems(_with_auth({**OAUTH2, "kind": "oauth2"}))

    assert found == [
        (
            "/service/auth/kind",
            "error",
            "'oauth2' is not one of ['header', 'oauth2_client_credentials', 'aws_sigv4']",
        )
    ]


@pytest.mark.parametrize("field", ["token_url", "client_id_env", "client_secret_env"])
def test_oauth2_needs_its_endpoint_and_both_variables(field: str) -> None:
    """Each of token_url, client_id_env and client_secret_env is required."""
    auth = dict(OAUTH2)
    del auth[field]

    found = _problems(_with_auth(auth))

    assert found == [
        (f"/service/auth/{field}", "error", f"required property '{field}' is missing")
    ]


def test_a_field_of_another_kind_is_refused() -> None:
    """A header auth's 'header' on an aws_sigv4 auth is an unknown property."""
    found = _problems(_with_auth({**SIGV4, "header": "X-Key"}))

    assert [(p, s) for p, s, _ in found] == [("/service/auth/header", "error")]
    assert "unknown property 'header'" in found[0][2]


def test_a_secret_cannot_be_written_into_the_spec() -> None:
    """client_secret itself is no field: only the variable that holds it."""
    found = _problems(_with_auth({**OAUTH2, "client_secret": "s3cr3t"}))

    assert [(p, s) for p, s, _ in found] == [("/service/auth/client_secret", "error")]


# -- the model -----------------------------------------------------------------------------


def test_oauth2_builds_with_its_defaults() -> None:
    """Basic client auth, a 60 s refresh margin, no scope and no extra parameters."""
    spec = _load(OAUTH2)

    assert spec.service.auth == OAuth2ClientCredentials(
        token_url="https://idp.example.com/oauth/token",
        client_id_env="DEMO_CLIENT_ID",
        client_secret_env="DEMO_CLIENT_SECRET",
        location="/service/auth",
    )
    assert spec.service.auth.kind == "oauth2_client_credentials"
    assert (spec.service.auth.client_auth, spec.service.auth.refresh_margin) == (
        "basic",
        60.0,
    )


def test_oauth2_builds_every_field() -> None:
    """Scope, params (in order), form client auth, margin and the URL override are kept."""
    spec = _load(
        {
            **OAUTH2,
            "token_url": "/oauth/token",
            "token_url_env": "DEMO_TOKEN_URL",
            "scope": "jobs:read jobs:write",
            "params": {"audience": "https://api.example.com", "resource": "r"},
            "client_auth": "form",
            "refresh_margin": 5,
        }
    )

    auth = spec.service.auth
    assert isinstance(auth, OAuth2ClientCredentials)
    assert auth.token_url == "/oauth/token"
    assert auth.token_url_env == "DEMO_TOKEN_URL"
    assert auth.scope == "jobs:read jobs:write"
    assert auth.params == (("audience", "https://api.example.com"), ("resource", "r"))
    assert (auth.client_auth, auth.refresh_margin) == ("form", 5)


def test_aws_sigv4_builds_its_region_and_variable() -> None:
    """The signing name, the fixed region and the region's variable are kept."""
    spec = _load({**SIGV4, "region_env": "AWS_REGION"})

    assert spec.service.auth == AwsSigV4(
        service="execute-api",
        region="eu-west-1",
        region_env="AWS_REGION",
        location="/service/auth",
    )
    assert spec.service.auth.kind == "aws_sigv4"


def test_a_negative_refresh_margin_is_refused_by_the_model() -> None:
    """The model itself refuses a margin below zero (the schema does too)."""
    with pytest.raises(ValueError, match="refresh_margin"):
        OAuth2ClientCredentials(
            token_url="/t", client_id_env="A", client_secret_env="B", refresh_margin=-1
        )


# -- the checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://idp.example.com/oauth/token",
        "/oauth/token",
        "http://127.0.0.1:8080/token",
        "http://localhost/token",
    ],
)
def test_a_sound_token_url_loads_without_a_word(url: str) -> None:
    """https, a path on the service's host, and plain http to loopback: no problem."""
    spec = _load({**OAUTH2, "token_url": url})

    assert spec.warnings == ()


def test_plain_http_to_another_host_is_warned_about() -> None:
    """The secret would cross the network unencrypted: a warning at token_url."""
    spec = _load({**OAUTH2, "token_url": "http://idp.example.com/token"})

    assert [(w.pointer, w.message) for w in spec.warnings] == [
        (
            "/service/auth/token_url",
            (
                "plain http: the client secret and the token would cross the network "
                "unencrypted; use https"
            ),
        )
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "//idp.example.com/token",
            "a path starts with one '/'; for another host write https://HOST/PATH",
        ),
        ("https://idp.example.com:99999/token", "not a valid URL: bad port or host"),
        (
            "https://id:pw@idp.example.com/token",
            (
                "a token URL carries no user or password: the client id and secret come "
                "from client_id_env and client_secret_env"
            ),
        ),
        ("https:///token", "a token URL needs a host"),
    ],
    ids=["double-slash", "bad-port", "userinfo", "no-host"],
)
def test_a_token_url_that_could_mislead_the_secret_is_refused(
    url: str, message: str
) -> None:
    """Another host read as a path, a bad port, credentials in the URL, no host."""
    found = _problems(_with_auth({**OAUTH2, "token_url": url}))

    assert found == [("/service/auth/token_url", "error", message)]


def test_the_id_and_the_secret_are_two_variables() -> None:
    """client_id_env equal to client_secret_env is reported at the secret's."""
    found = _problems(_with_auth({**OAUTH2, "client_secret_env": "DEMO_CLIENT_ID"}))

    assert found == [
        (
            "/service/auth/client_secret_env",
            "error",
            (
                "client_id_env and client_secret_env both name DEMO_CLIENT_ID; the id "
                "and the secret are two variables"
            ),
        )
    ]


def test_params_cannot_override_what_the_spec_sets() -> None:
    """grant_type and client_secret in params are refused, each saying why; audience is fine."""
    auth = {
        **OAUTH2,
        "params": {"audience": "a", "grant_type": "password", "client_secret": "x"},
    }

    found = _problems(_with_auth(auth))

    assert found == [
        (
            "/service/auth/params/client_secret",
            "error",
            (
                "the token request's 'client_secret' is not a parameter: the client "
                "secret comes from client_secret_env"
            ),
        ),
        (
            "/service/auth/params/grant_type",
            "error",
            (
                "the token request's 'grant_type' is not a parameter: the grant is "
                "always client_credentials"
            ),
        ),
    ]


def test_aws_sigv4_needs_a_region() -> None:
    """Neither region nor region_env: reported at the auth block."""
    auth = dict(SIGV4)
    del auth["region"]

    found = _problems(_with_auth(auth))

    assert found == [
        (
            "/service/auth",
            "error",
            "name the region to sign for: 'region', 'region_env', or both",
        )
    ]


def test_aws_sigv4_may_take_its_region_from_a_variable_alone() -> None:
    """region_env without a fixed region loads."""
    auth = {"kind": "aws_sigv4", "service": "states", "region_env": "AWS_REGION"}

    assert _load(auth).service.auth == AwsSigV4(
        service="states", region_env="AWS_REGION", location="/service/auth"
    )


def test_a_header_the_auth_kind_sets_cannot_also_be_set_by_hand() -> None:
    """Authorization in service headers and X-Amz-Date on a request: both refused."""
    oauth2 = _with_auth(OAUTH2)
    oauth2["service"]["headers"] = {"Authorization": "Bearer fixed", "X-Other": "1"}
    sigv4 = _with_auth(SIGV4)
    job_lifecycle(sigv4)["poll"]["request"]["headers"] = {"X-Amz-Date": "0"}

    assert _problems(oauth2) == [
        (
            "/service/headers/Authorization",
            "error",
            (
                "header 'Authorization' is set by auth kind 'oauth2_client_credentials' "
                "on every request; remove it here"
            ),
        )
    ]
    assert _problems(sigv4) == [
        (
            "/lifecycles/job/poll/request/headers/X-Amz-Date",
            "error",
            (
                "header 'X-Amz-Date' is set by auth kind 'aws_sigv4' on every request; "
                "remove it here"
            ),
        )
    ]


def test_a_header_auth_may_share_its_header_with_nothing_checked() -> None:
    """The static header kind keeps today's rules: an Authorization header is allowed."""
    document = _with_auth({"header": "X-Key", "env": "DEMO_KEY"})
    document["service"]["headers"] = {"Authorization": "Basic x"}

    assert load_document(document).service.headers == (("Authorization", "Basic x"),)
