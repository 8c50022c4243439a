"""Redaction: every record and every service-provided text, at any depth, comes out clean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.audit import AuditEntry, Redactor, open_audit, read_records, verify_log
from statemachines import load_spec

OCDZ = load_spec("oneclickdz")
AZURE = load_spec("azure-translator")
KEY = "live-key-7f3a9c"
SAS = "https://acct.blob.core.windows.net/c/doc.txt?sv=2022-11-02&sig=SECRETSIG%2Bx%3D&se=2026"

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


def _entry(**changes: Any) -> AuditEntry:
    entry = AuditEntry(
        kind="retrying",
        service="oneclickdz",
        lifecycle="mobile_topup",
        job_id="66a1f0c2b3d4e5f6a7b8c9d0",
        spec_hash=OCDZ.content_hash,
        spec_source=OCDZ.source,
        from_state="PENDING",
        to_state="PENDING",
        trigger="poll",
        http_status=500,
    )
    return attrs.evolve(entry, **changes)


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _bottom(value: Any) -> Any:
    while isinstance(value, list):
        value = value[0]
    return value


def _both() -> Redactor:
    """A redactor with a live key, OneClickDZ's pointers and Azure's query parameters."""
    return Redactor(
        secrets={KEY},
        pointers=OCDZ.service.redact_pointers,
        query_params=AZURE.service.redact_query_params,
    )


def test_record_with_key_sas_signature_and_pointer_comes_out_clean_on_disk(
    tmp_path: Path,
) -> None:
    """A record whose detail holds the key, a SAS sig= and a pointer's value is clean on disk."""
    detail: dict[str, Any] = {
        "error": f"401 from service: key {KEY} rejected",
        "link": SAS,
        "data": {"card_code": "481516234200", "cards": [{"value": "AAAA-BBBB"}]},
    }
    entry = _entry(detail=detail, observed={"data": {"num_trans": "AT-2026-70011"}})
    path = tmp_path / "audit.jsonl"
    sink = open_audit(path, secrets=[KEY])

    sink.append(_both().entry(entry))
    sink.close()
    raw = path.read_bytes()

    for secret in (KEY, "SECRETSIG", "481516234200", "AAAA-BBBB", "AT-2026-70011"):
        assert secret.encode() not in raw
    assert (
        detail["data"]["card_code"] == "481516234200"
    )  # the caller's value is untouched
    assert verify_log(path) == []


def test_entry_redacts_names_and_states_a_service_chose(tmp_path: Path) -> None:
    """Job ids, item ids and states come from the service, so they are redacted text too."""
    entry = _entry(job_id=f"job-{KEY}", item_id=f"{SAS}", to_state=f"echo {KEY}")

    clean = _both().entry(entry)

    assert KEY not in clean.job_id
    assert clean.item_id is not None
    assert "SECRETSIG" not in clean.item_id
    assert clean.to_state == "echo [REDACTED]"


def test_text_blanks_every_form_of_a_secret_query_parameter() -> None:
    """sig= is blanked after ?, &, ; or a space, at the start, URL-encoded, and in any case."""
    redactor = Redactor(query_params=["sig"])
    samples = {
        "GET /c?sig=abc&x=1": "GET /c?sig=[REDACTED]&x=1",
        "/c?x=1&sig=abc#frag": "/c?x=1&sig=[REDACTED]#frag",
        "sig=abc&sv=2": "sig=[REDACTED]&sv=2",
        "signature was sig=abc def": "signature was sig=[REDACTED] def",
        "next=https%3A%2F%2Fh%2Fc%3Fsv%3D1%26sig%3Dabc%26se%3D2": (
            "next=https%3A%2F%2Fh%2Fc%3Fsv%3D1%26sig%3D[REDACTED]%26se%3D2"
        ),
        "/c?SIG=abc": "/c?SIG=[REDACTED]",
    }

    assert {text: redactor.text(text) for text in samples} == samples


def test_text_keeps_parameters_whose_name_only_ends_like_a_secret_one() -> None:
    """design= and mysig= are not sig=: over-matching would blank ordinary values."""
    redactor = Redactor(query_params=["sig"])

    assert redactor.text("/c?design=a&mysig=b&x.sig=c") == "/c?design=a&mysig=b&x.sig=c"


def test_text_blanks_a_secret_and_its_percent_encoded_form() -> None:
    """A key echoed back from a query string arrives percent-encoded; both forms go."""
    key = "k/ey+with=chars"
    redactor = Redactor(secrets={key})

    assert redactor.text(f"a {key} b k%2Fey%2Bwith%3Dchars c") == (
        "a [REDACTED] b [REDACTED] c"
    )


def test_a_longer_secret_is_blanked_whole_when_it_contains_a_shorter_one() -> None:
    """Secrets are replaced longest first, so no tail of a longer secret is left behind."""
    redactor = Redactor(secrets={"abc", "abcdef123"})

    assert redactor.text("x abcdef123 y") == "x [REDACTED] y"


def test_redactor_sees_secrets_added_to_its_set_after_it_was_built() -> None:
    """The secret set is live: a credential the engine reads later is redacted too."""
    secrets: set[str] = set()
    redactor = Redactor(secrets=secrets)
    later = Redactor(secrets=set())

    secrets.add(KEY)
    later.add_secret(KEY)
    later.add_secret("")  # an unset variable must not blank every string

    assert redactor.text(f"k={KEY}") == "k=[REDACTED]"
    assert later.redact({"k": KEY, "other": "x"}) == {"k": "[REDACTED]", "other": "x"}


def test_redact_takes_a_value_nested_far_deeper_than_the_recursion_limit() -> None:
    """A 20,000-deep value is redacted, not a RecursionError (bodies may be deep)."""
    deep = _nested(20_000, f"bottom {KEY}")

    clean = _both().redact(deep)

    assert _bottom(clean) == "bottom [REDACTED]"


def test_redact_blanks_keys_list_items_and_objects_that_are_not_json() -> None:
    """Keys, list items at a pointer and the str() of foreign objects are redacted."""
    redactor = _both()
    value = {
        KEY: 1,
        "data": {"cards": ["x"], "card_code": None},
        "error": ValueError(f"bad key {KEY}"),
        "pair": (1, KEY),
    }

    clean = redactor.redact(value)

    assert clean == {
        "[REDACTED]": 1,
        "data": {"cards": "[REDACTED]", "card_code": None},
        "error": "bad key [REDACTED]",
        "pair": [1, "[REDACTED]"],
    }


def test_pointer_to_a_list_element_blanks_only_that_element() -> None:
    """RFC 6901 array indexes work in redact pointers; the empty pointer blanks the whole value."""
    assert Redactor(pointers=["/a/1"]).redact({"a": [0, 1, 2]}) == {
        "a": [0, "[REDACTED]", 2]
    }
    assert Redactor(pointers=["/a/9"]).redact({"a": [0]}) == {"a": [0]}
    assert Redactor(pointers=[""]).redact({"a": 1}) == "[REDACTED]"


@settings(max_examples=80, deadline=None)
@given(JSON)
def test_redact_returns_any_json_value_unchanged_when_nothing_is_secret(
    value: Any,
) -> None:
    """On a JSON value holding no secret, redact is the identity (a copy)."""
    assume(KEY not in json.dumps(value, ensure_ascii=False))

    assert (
        Redactor(secrets={KEY}, pointers=["/keys-are-at-most-eight-long"]).redact(value)
        == value
    )


@settings(max_examples=80, deadline=None)
@given(JSON)
def test_no_secret_survives_in_any_json_value(value: Any) -> None:
    """Whatever the shape, a secret planted beside every string and key is gone after redact."""

    def plant(v: Any) -> Any:
        if isinstance(v, str):
            return f"{v}{KEY}"
        if isinstance(v, list):
            return [plant(x) for x in v]
        if isinstance(v, dict):
            return {f"{k}{KEY}": plant(x) for k, x in v.items()}
        return v

    clean = Redactor(secrets={KEY}).redact(plant(value))

    assert KEY not in json.dumps(clean, ensure_ascii=False)


def test_sink_scrubs_a_secret_inside_an_object_that_is_not_json(tmp_path: Path) -> None:
    """An exception object in a record's detail is written as redacted text, not verbatim."""
    path = tmp_path / "audit.jsonl"
    sink = open_audit(path, secrets=[KEY])

    sink.append(_entry(detail={"error": RuntimeError(f"hook saw {KEY}")}))
    sink.close()

    assert KEY.encode() not in path.read_bytes()
    assert next(iter(read_records(path)))["detail"] == {"error": "hook saw [REDACTED]"}


@pytest.mark.parametrize("name", ["audit.jsonl", "audit.db"])
def test_sink_scrubs_secrets_added_to_its_set_after_it_was_opened(
    tmp_path: Path, name: str
) -> None:
    """A sink given the engine's live set blanks credentials read after it was opened."""
    secrets: set[str] = set()
    path = tmp_path / name
    sink = open_audit(path, secrets=secrets)

    secrets.add(KEY)
    sink.append(_entry(detail={"raw": f"Authorization: {KEY}"}))
    sink.close()

    assert next(iter(read_records(path)))["detail"] == {
        "raw": "Authorization: [REDACTED]"
    }


def test_sink_never_scrubs_the_chain_fields(tmp_path: Path) -> None:
    """A short secret that occurs in a hash must not break the chain: prev and hash are kept."""
    path = tmp_path / "audit.jsonl"
    sink = open_audit(path, secrets=["0000"])

    sink.append(_entry())
    sink.append(_entry())
    sink.close()

    assert verify_log(path) == []


def test_sink_writes_text_that_is_not_valid_utf8_and_the_log_verifies(
    tmp_path: Path,
) -> None:
    """A lone surrogate from a service's JSON is mended, written and verifiable."""
    path = tmp_path / "audit.jsonl"
    sink = open_audit(path)

    record = sink.append(_entry(observed={"status": "bad \ud800 text"}))
    sink.close()

    assert record["observed"] == {"status": "bad ? text"}
    assert verify_log(path) == []


def test_sink_cuts_a_value_nested_deeper_than_the_cap_and_the_log_verifies(
    tmp_path: Path,
) -> None:
    """A 5,000-deep observed value is written with a marker where it was cut, and verifies."""
    path = tmp_path / "audit.db"
    sink = open_audit(path)

    record = sink.append(_entry(observed=_nested(5_000, "bottom")))
    sink.close()

    assert str(_bottom(record["observed"])).startswith("[nested deeper than")
    assert list(read_records(path)) == [record]
    assert verify_log(path) == []


def test_spec_record_keeps_its_document_whole_but_not_a_secret() -> None:
    """Redact pointers do not reach a spec record's document; secrets still do."""
    document = {"data": {"card_code": "not a card: a spec field"}, "note": KEY}
    entry = _entry(kind="spec", detail={"document": document, "source": "x.json"})

    clean = _both().entry(entry)

    assert clean.detail["document"] == {
        "data": {"card_code": "not a card: a spec field"},
        "note": "[REDACTED]",
    }
