"""Redactor: secrets, a spec's redact pointers and secret query parameters are blanked."""

from __future__ import annotations

import json

from engine._core.redact import REDACTED, Redactor
from tests.engine.core.conftest import load, toy_document


def test_a_secret_is_blanked_anywhere_in_a_text() -> None:
    """Every occurrence of a secret value is replaced."""
    redactor = Redactor(secrets=["s3cr3t"])

    assert (
        redactor.text("key s3cr3t, again s3cr3t") == f"key {REDACTED}, again {REDACTED}"
    )


def test_an_empty_secret_blanks_nothing() -> None:
    """An unset credential ('') must not replace every gap between characters."""
    assert Redactor(secrets=[""]).text("abc") == "abc"


def test_text_without_secrets_is_unchanged() -> None:
    """A text holding no secret and no query parameter comes back as is."""
    assert (
        Redactor(secrets=["s3cr3t"], query_params=["sig"]).text("all fine")
        == "all fine"
    )


def test_a_live_secret_set_is_kept_by_reference() -> None:
    """A credential added to the engine's set later is blanked too."""
    live: set[str] = set()
    redactor = Redactor(secrets=live)

    live.add("late-key")

    assert redactor.text("late-key") == REDACTED


def test_secret_query_parameter_values_are_blanked() -> None:
    """sig=… is blanked in a URL and in prose; other parameters stay."""
    redactor = Redactor(query_params=["sig", "se"])

    text = redactor.text("GET https://h.test/b?sv=1&sig=abc%2F&se=2030 then 'sig=zzz'")

    assert text == (
        f"GET https://h.test/b?sv=1&sig={REDACTED}&se={REDACTED} then 'sig={REDACTED}'"
    )


def test_a_parameter_name_inside_another_is_not_blanked() -> None:
    """xsig=… is not the secret parameter sig."""
    assert Redactor(query_params=["sig"]).text("a?xsig=1") == "a?xsig=1"


def test_values_at_the_specs_pointers_are_blanked() -> None:
    """A spec's redact pointers blank values in nested objects and arrays."""
    redactor = Redactor(pointers=["/auth/token", "/keys/1", "/deep/0/x"])

    got = redactor.redact(
        {"auth": {"token": "t", "user": "u"}, "keys": ["a", "b"], "deep": [{"x": 1}]}
    )

    assert got == {
        "auth": {"token": REDACTED, "user": "u"},
        "keys": ["a", REDACTED],
        "deep": [{"x": REDACTED}],
    }


def test_a_pointer_to_nothing_changes_nothing() -> None:
    """Pointers through missing keys, past array ends or into scalars are skipped."""
    redactor = Redactor(
        pointers=["/missing/x", "/list/5/x", "/list/x/y", "/scalar/x", "/absent"]
    )
    value = {"list": [{"x": 1}], "scalar": 3}

    assert redactor.redact(value) == value


def test_a_null_at_a_pointer_stays_null() -> None:
    """Blanking a null would invent a value: null stays null."""
    assert Redactor(pointers=["/token"]).redact({"token": None}) == {"token": None}


def test_the_root_pointer_blanks_the_whole_body() -> None:
    """The pointer '' is the whole body (RFC 6901): all of it is blanked."""
    assert Redactor(pointers=[""]).redact({"": "x", "a": 1}) == REDACTED


def test_the_pointer_slash_blanks_the_member_named_empty() -> None:
    """'/' names the member whose key is the empty string, not the whole body."""
    assert Redactor(pointers=["/"]).redact({"": "x", "a": 1}) == {"": REDACTED, "a": 1}


def test_a_null_array_element_stays_null() -> None:
    """A null element at a pointer is not turned into a value."""
    assert Redactor(pointers=["/a/0", "/a/9"]).redact({"a": [None, 1]}) == {
        "a": [None, 1]
    }


def test_redact_copies_and_never_changes_its_input() -> None:
    """The caller's value (tuples included) is left untouched; tuples come back as lists."""
    value = {"token": "t", "pair": ("s3cr3t", 1)}
    before = json.dumps(value)

    got = Redactor(secrets=["s3cr3t"], pointers=["/token"]).redact(value)

    assert json.dumps(value) == before
    assert got == {"token": REDACTED, "pair": [REDACTED, 1]}


def test_secrets_are_blanked_in_keys_and_values() -> None:
    """A secret echoed as an object key is blanked as well."""
    got = Redactor(secrets=["k3y"]).redact({"k3y": ["k3y", 7, None]})

    assert got == {REDACTED: [REDACTED, 7, None]}


def test_a_value_nested_past_the_stack_is_blanked_below_the_cap() -> None:
    """A hostile body too deep to walk keeps its top and is blanked below, no RecursionError."""
    deep = json.loads("[" * 900 + '"s3cr3t"' + "]" * 900)

    got = Redactor(secrets=["s3cr3t"]).redact({"body": deep})

    assert "s3cr3t" not in json.dumps(got)
    assert isinstance(got, dict)
    assert REDACTED in json.dumps(got)


def test_a_hundred_levels_are_walked_in_full() -> None:
    """A deep but plausible body (100 levels) is redacted value by value, not blanked."""
    deep: object = "s3cr3t"
    for _ in range(99):
        deep = [deep]

    got = Redactor(secrets=["s3cr3t"]).redact(deep)

    assert json.dumps(got) == "[" * 99 + json.dumps(REDACTED) + "]" * 99


def test_for_spec_reads_the_specs_pointers_and_parameters() -> None:
    """A spec's redactor blanks its redact pointers and query parameters, and the secrets."""
    redactor = Redactor.for_spec(load(toy_document()), {"k"})

    got = redactor.redact({"secret": "x", "url": "https://h.test/?sig=1", "k": "k"})

    assert got == {
        "secret": REDACTED,
        "url": f"https://h.test/?sig={REDACTED}",
        REDACTED: REDACTED,
    }


def test_the_root_pointer_blanks_an_observed_body_but_a_detail_keeps_its_shape() -> (
    None
):
    """An entry's observed body is blanked whole by '', its detail stays a mapping."""
    from engine.audit import AuditEntry

    entry = AuditEntry(
        kind="errored",
        service="toy",
        lifecycle="job",
        job_id="a",
        spec_hash="sha256:x",
        observed={"card": "1234"},
        detail={"message": "refused", "data": {"card": "1234"}},
    )

    clean = Redactor(pointers=["", "/data/card"]).entry(entry)

    assert clean.observed == REDACTED
    assert clean.detail == {"message": "refused", "data": {"card": REDACTED}}
