"""Binding: a lifecycle bound to a base URL, a credential and a time scale."""

from __future__ import annotations

import pytest

from engine._core.binding import origin_of
from engine._core.redact import REDACTED
from engine._errors import InputError
from tests.engine.core.conftest import (
    BASE,
    batch_document,
    binding,
    lifecycle_of,
    toy_document,
)


def test_the_base_url_loses_its_trailing_slash() -> None:
    """Paths are appended to the base URL, so it is kept without a trailing '/'."""
    b = binding()

    assert b.base_url == BASE
    assert b.prefix == f"{BASE}/"


def test_name_is_service_slash_lifecycle() -> None:
    """Messages name a binding as service/lifecycle."""
    assert binding().name == "toy/job"


def test_inputs_are_derived_once() -> None:
    """Declared inputs, defaults, required names and query inputs are read from the spec."""
    b = binding()

    assert set(b.declared) == {"region", "text", "api_version", "tag"}
    assert b.defaults == {"api_version": "1"}
    assert b.required == ("region",)
    assert [i.name for i in b.query_inputs] == ["tag"]


def test_a_job_keeps_only_the_inputs_later_requests_can_use() -> None:
    """Path and query inputs, and those later templates name, are kept; a body input is not."""
    assert binding().kept == frozenset({"region", "api_version", "tag"})


def test_a_body_input_named_by_a_later_template_is_kept() -> None:
    """An input sent in the submit body but also used by the cancel's query is kept."""
    document = toy_document()
    lifecycle_of(document)["cancel"]["request"]["query"] = {"t": "{text}"}

    assert "text" in binding(document).kept


def test_a_lifecycle_with_only_a_poll_keeps_what_the_poll_uses() -> None:
    """Without result, cancel or items, the poll's fields decide what is kept."""
    document = toy_document()
    lifecycle = lifecycle_of(document)
    del lifecycle["result"], lifecycle["cancel"]

    assert binding(document).kept == frozenset({"region", "api_version", "tag"})


def test_the_credential_goes_to_the_specs_own_host_only() -> None:
    """headers_for adds the credential for own URLs, never for foreign ones."""
    b = binding(auth=("X-Key", "k3y"))
    request = b.lifecycle.poll.request

    assert dict(b.headers_for(request, own=True)) == {
        "Accept": "application/json",
        "X-Key": "k3y",
    }
    assert dict(b.headers_for(request, own=False)) == {"Accept": "application/json"}


def test_without_a_credential_own_requests_carry_the_service_headers() -> None:
    """No credential configured: the service's headers alone."""
    b = binding()

    assert dict(b.headers_for(b.lifecycle.poll.request, own=True)) == {
        "Accept": "application/json"
    }


def test_a_requests_own_headers_override_the_services() -> None:
    """A request's header wins over the service's of the same name."""
    document = toy_document()
    lifecycle_of(document)["poll"]["request"]["headers"] = {"Accept": "text/plain"}
    b = binding(document)

    assert dict(b.headers_for(b.lifecycle.poll.request, own=False)) == {
        "Accept": "text/plain"
    }


def test_headers_are_built_once_per_request_block() -> None:
    """The same block and destination kind give the very same tuple."""
    b = binding(auth=("X-Key", "k3y"))
    request = b.lifecycle.poll.request

    assert b.headers_for(request, own=True) is b.headers_for(request, own=True)


def test_the_credential_never_shows_in_the_repr() -> None:
    """repr(binding) leaves the credential out."""
    assert "k3y" not in repr(binding(auth=("X-Key", "k3y")))


@pytest.mark.parametrize(
    "url",
    [
        f"{BASE}/jobs/1",
        "HTTPS://API.example.test:443/jobs/1",
        "https://api.example.test:443/",
    ],
)
def test_urls_on_the_specs_origin_are_its_own(url: str) -> None:
    """Same scheme, host and port (defaults explicit, any case) is the spec's own origin."""
    assert binding().is_own(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.test/jobs/1",
        "https://api.example.test:8443/jobs/1",
        "https://api.example.test.evil.test/jobs/1",
        "https://evil.test/https://api.example.test/",
        "https://[oops/",
    ],
)
def test_urls_elsewhere_are_foreign(url: str) -> None:
    """Another scheme, port or host, and an unparseable URL, are foreign."""
    assert not binding().is_own(url)


def test_origin_of_an_invalid_url_is_none() -> None:
    """A port out of range is no origin at all."""
    assert origin_of("https://h.test:99999/") is None


def test_origin_of_makes_default_ports_explicit() -> None:
    """Default ports are made explicit (http 80, https 443); other schemes get none."""
    assert origin_of("http://H.test/x") == ("http", "h.test", 80)
    assert origin_of("ftp://h.test/x") == ("ftp", "h.test", None)


def test_binding_an_unknown_lifecycle_is_an_input_error() -> None:
    """A lifecycle the spec does not have raises InputError naming those it has."""
    with pytest.raises(InputError, match="no lifecycle 'nope'; it has: job"):
        binding(lifecycle="nope")


def test_a_lifecycle_with_items_binds_its_items_lifecycle() -> None:
    """The items' lifecycle is bound too, to the same base URL, scale and credential."""
    b = binding(batch_document(), "batch", scale=0.5, auth=("X-Key", "k"))

    assert b.item is not None
    assert (b.item.lifecycle.name, b.item.base_url, b.item.scale, b.item.auth) == (
        "doc",
        BASE,
        0.5,
        ("X-Key", "k"),
    )
    assert b.item.item is None


def test_the_redactor_shares_the_engines_live_secrets() -> None:
    """A secret added to the engine's set after binding is redacted by the binding."""
    secrets: set[str] = set()
    b = binding(secrets=secrets)

    secrets.add("late")

    assert b.redactor.text("late") == REDACTED


def test_keep_shares_the_defaults_and_filters_other_inputs() -> None:
    """Jobs adopted without inputs share one kept-defaults dict; others keep a filtered copy."""
    b = binding()

    assert b.keep(b.defaults) is b.kept_defaults
    assert b.keep({"region": "eu", "text": "body only"}) == {"region": "eu"}


def test_the_spec_source_of_a_file_is_absolute_and_a_label_stays() -> None:
    """A spec file is recorded by absolute path; '<document>' and builtin names as they are."""
    import os

    import attrs

    from engine._core.binding import bind
    from tests.engine.core.conftest import load

    spec = load(toy_document())
    at = {
        source: bind(
            attrs.evolve(spec, source=source),
            "job",
            base_url=BASE,
            scale=1.0,
            auth=None,
            secrets=set(),
        ).spec_source
        for source in ("specs/toy.json", "<document>", "builtin:toy")
    }

    assert at == {
        "specs/toy.json": os.path.abspath("specs/toy.json"),  # noqa: PTH100 - as the binding does
        "<document>": "<document>",
        "builtin:toy": "builtin:toy",
    }
