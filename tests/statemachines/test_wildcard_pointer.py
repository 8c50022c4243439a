"""Wildcard pointers: a '*' token stands for every element of an array or object."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statemachines import resolve_all
from statemachines.pointer import MISSING, has_wildcard, resolve_pointer

EC2: dict[str, Any] = {
    "Reservations": [
        {"Instances": [{"State": {"Name": "running"}}, {"State": {"Name": "pending"}}]},
        {"Instances": [{"State": {"Name": "running"}}]},
    ]
}

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from("ab*"), children, max_size=3)
    ),
    max_leaves=15,
)


def test_nested_wildcards_flatten_in_document_order() -> None:
    """Two '*' tokens name every instance of every reservation, as botocore's [] do."""
    pointer = "/Reservations/*/Instances/*/State/Name"

    values = resolve_all(EC2, pointer)

    assert values == ["running", "pending", "running"]


def test_a_wildcard_over_an_object_names_its_members_values() -> None:
    """'*' on an object stands for each member's value (JMESPath's 'a.*.b')."""
    document = {"Nodes": {"n1": {"Status": "ok"}, "n2": {"Status": "bad"}}}

    values = resolve_all(document, "/Nodes/*/Status")

    assert values == ["ok", "bad"]


def test_an_empty_array_names_no_value() -> None:
    """An empty array gives no value at all (so 'all' over it cannot hold)."""
    values = resolve_all({"items": []}, "/items/*/status")

    assert values == []


def test_an_element_without_the_value_gives_missing() -> None:
    """A branch where the rest of the pointer names nothing is MISSING, not dropped."""
    values = resolve_all({"items": [{"status": "a"}, {}]}, "/items/*/status")

    assert values == ["a", MISSING]


def test_a_wildcard_over_a_scalar_or_nothing_gives_one_missing() -> None:
    """'*' over a value with no elements (a string, an absent member) names nothing there."""
    over_text = resolve_all({"items": "x"}, "/items/*")
    over_nothing = resolve_all({}, "/items/*/status")

    assert over_text == [MISSING]
    assert over_nothing == [MISSING]


def test_a_trailing_wildcard_names_the_elements_themselves() -> None:
    """'/items/*' names each element."""
    values = resolve_all({"items": [1, [2], None]}, "/items/*")

    assert values == [1, [2], None]


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/items/*/status", True),
        ("/*", True),
        ("/items/**", False),
        ("/items/a*", False),
        ("/items~1*", False),
        ("", False),
    ],
)
def test_only_a_whole_star_token_is_a_wildcard(pointer: str, expected: bool) -> None:
    """A token that is exactly '*' is a wildcard; '**', 'a*' and an escaped '/*' are names."""
    assert has_wildcard(pointer) is expected


@given(JSON_VALUES, st.lists(st.sampled_from(["a", "b", "0", "1"]), max_size=3))
def test_without_a_wildcard_it_is_the_plain_pointer(
    document: Any, tokens: list[str]
) -> None:
    """A pointer without '*' names exactly the one value RFC 6901 names."""
    pointer = "".join(f"/{t}" for t in tokens)

    values = resolve_all(document, pointer)

    assert values == [resolve_pointer(document, pointer)]
