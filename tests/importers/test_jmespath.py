"""botocore acceptors' JMESPath → statepoll conditions, on plain values."""

from __future__ import annotations

from typing import Any

import pytest

from engine.importers._jmespath import (
    STAR,
    UnconvertibleError,
    acceptor_condition,
    plain,
)


def _path(argument: str, expected: Any = "X") -> dict[str, Any]:
    return acceptor_condition("path", argument, expected)


def _true(argument: str) -> dict[str, Any]:
    """The condition of a path acceptor expecting true."""
    return acceptor_condition("path", argument, expected=True)


@pytest.mark.parametrize(
    ("argument", "pointer"),
    [
        ("Status", "/Status"),
        ("Table.TableStatus", "/Table/TableStatus"),
        ("a.b.c", "/a/b/c"),
        ("Items[0].State", "/Items/0/State"),
        ("a[1].b[2]", "/a/1/b/2"),
        ("odd~name.x/y", None),
    ],
)
def test_a_plain_path_is_a_pointer_compared_with_expected(
    argument: str, pointer: str | None
) -> None:
    """path: a.b.c, a[0].b → /a/b/c, /a/0/b, equals the expected value."""
    if pointer is None:
        with pytest.raises(UnconvertibleError):
            _path(argument)
        return
    assert _path(argument, "ACTIVE") == {"pointer": pointer, "equals": "ACTIVE"}


def test_pointer_tokens_are_escaped() -> None:
    """A name with '~' or '/' is escaped as RFC 6901 says."""
    assert _path('"a~b"."c/d"') == {"pointer": "/a~0b/c~1d", "equals": "X"}


@pytest.mark.parametrize(
    ("argument", "pointer"),
    [
        (
            "Reservations[].Instances[].State.Name",
            "/Reservations/*/Instances/*/State/Name",
        ),
        ("a[*].b", "/a/*/b"),
        ("a[].b", "/a/*/b"),
        ("a.*.b", "/a/*/b"),
        ("a.b[].c", "/a/b/*/c"),
        ("a[].b[].c[].d", "/a/*/b/*/c/*/d"),
        ("a[0].b[].c", "/a/0/b/*/c"),
        ("a[]", "/a/*"),
        ("a", "/a/*"),
        ("a.b", "/a/b/*"),
    ],
)
@pytest.mark.parametrize(("matcher", "match"), [("pathAll", "all"), ("pathAny", "any")])
def test_projections_become_wildcards_with_match(
    argument: str, pointer: str, matcher: str, match: str
) -> None:
    """pathAll/pathAny: every [] / [*] / .* is a '*' token; a plain path iterates its list."""
    assert acceptor_condition(matcher, argument, "running") == {
        "pointer": pointer,
        "equals": "running",
        "match": match,
    }


def test_path_over_a_projection_is_refused() -> None:
    """A path acceptor compares a projection (a list) with a scalar: botocore never matches it."""
    with pytest.raises(UnconvertibleError, match="projection"):
        _path("a[].b")


@pytest.mark.parametrize("argument", ["a == 'b'", "a[].length(b)", "a.length(b)"])
@pytest.mark.parametrize("matcher", ["pathAll", "pathAny"])
def test_path_all_over_a_non_path_is_refused(matcher: str, argument: str) -> None:
    """pathAll/pathAny need a path (a list): a comparison or a function is not one."""
    with pytest.raises(UnconvertibleError, match="not a path"):
        acceptor_condition(matcher, argument, "x")


def test_an_unknown_matcher_is_refused() -> None:
    """Only path, pathAll and pathAny carry an expression."""
    with pytest.raises(UnconvertibleError, match="matcher 'pathSome'"):
        acceptor_condition("pathSome", "a", "x")


def test_an_expression_that_does_not_parse_is_refused() -> None:
    """A broken expression is reported, not raised bare."""
    with pytest.raises(UnconvertibleError, match="does not parse"):
        _path("a[")


def test_a_negative_index_is_refused() -> None:
    """a[-1] counts from the end: a pointer cannot."""
    with pytest.raises(UnconvertibleError, match="negative index"):
        _path("a[-1].b")


def test_a_non_scalar_expected_value_is_refused() -> None:
    """Expected values are compared as JSON scalars."""
    with pytest.raises(UnconvertibleError, match="not a scalar"):
        _path("a", ["x"])


@pytest.mark.parametrize("expected", ["ok", 3, 2.5, True, None])
def test_scalars_of_every_type_are_expected_values(expected: Any) -> None:
    """Strings, numbers, booleans and null compare as they are."""
    assert _path("a", expected) == {"pointer": "/a", "equals": expected}


# -- boolean expressions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "condition"),
    [
        ("status == 'DONE'", {"pointer": "/status", "equals": "DONE"}),
        ("status != 'DELETING'", {"not": {"pointer": "/status", "equals": "DELETING"}}),
        ("'DONE' == status", {"pointer": "/status", "equals": "DONE"}),
        ("count > `3`", {"pointer": "/count", "gt": 3}),
        ("count >= `3`", {"pointer": "/count", "ge": 3}),
        ("count < `3`", {"pointer": "/count", "lt": 3}),
        ("count <= `3`", {"pointer": "/count", "le": 3}),
        ("`3` < count", {"pointer": "/count", "gt": 3}),
        ("`3` >= count", {"pointer": "/count", "le": 3}),
        ("a.b == `true`", {"pointer": "/a/b", "equals": True}),
    ],
)
def test_comparisons_with_a_literal(argument: str, condition: dict[str, Any]) -> None:
    """==, != and the orderings of a path and a literal, either side."""
    assert _true(argument) == condition


def test_expected_false_negates_the_expression() -> None:
    """A path acceptor expecting false holds when the expression is false."""
    assert _path("status == 'DONE'", expected=False) == {
        "not": {"pointer": "/status", "equals": "DONE"}
    }


def test_and_or_not_nest_and_flatten() -> None:
    """Conjunctions a && b && c are one flat all; || is any; ! is not."""
    assert _true("a != 'X' && b != 'Y' && c == 'Z'") == {
        "all": [
            {"not": {"pointer": "/a", "equals": "X"}},
            {"not": {"pointer": "/b", "equals": "Y"}},
            {"pointer": "/c", "equals": "Z"},
        ]
    }
    assert _true("a == 'X' || !(b == 'Y')") == {
        "any": [
            {"pointer": "/a", "equals": "X"},
            {"not": {"pointer": "/b", "equals": "Y"}},
        ]
    }


def test_a_boolean_expression_with_a_non_boolean_expected_is_refused() -> None:
    """A comparison yields true or false: comparing it with 'x' is refused."""
    with pytest.raises(UnconvertibleError, match="non-boolean"):
        _path("a == 'b'", "x")


@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        ("runningCount == desiredCount", "compares two fields"),
        ("a > 'b'", "non-number"),
        ("a > `true`", "non-number"),
        ("a[].b == 'x'", "projection"),
        ("contains(a, 'x')", "function contains"),
        ("contains(a, 'x') == `true`", "function contains"),
        ("a && b", "truthiness"),
        ("a == `[1]`", "not a scalar"),
    ],
)
def test_what_the_language_cannot_say_is_refused_with_a_reason(
    argument: str, reason: str
) -> None:
    """Two fields compared, orderings of non-numbers, other functions, truthiness."""
    with pytest.raises(UnconvertibleError, match=reason):
        _true(argument)


# -- length() ------------------------------------------------------------------------


NOT_EMPTY = {"pointer": "/Alarms/*", "exists": True, "match": "any"}


@pytest.mark.parametrize(
    ("argument", "condition"),
    [
        ("length(Alarms[]) > `0`", NOT_EMPTY),
        ("length(Alarms) > `0`", NOT_EMPTY),
        ("length(Alarms) != `0`", NOT_EMPTY),
        ("length(Alarms) >= `1`", NOT_EMPTY),
        ("`0` < length(Alarms)", NOT_EMPTY),
        ("length(Alarms) == `0`", {"not": NOT_EMPTY}),
        ("length(Alarms) <= `0`", {"not": NOT_EMPTY}),
        ("length(Alarms) < `1`", {"not": NOT_EMPTY}),
        (
            "length(Gateways[].Id) > `0`",
            {"pointer": "/Gateways/*/Id", "exists": True, "match": "any"},
        ),
    ],
)
def test_length_compared_with_zero_is_emptiness(
    argument: str, condition: dict[str, Any]
) -> None:
    """length(X) > 0 is 'an element exists'; == 0 its negation."""
    assert _true(argument) == condition


@pytest.mark.parametrize(
    "argument", ["length(a) > `1`", "length(a) == `2`", "length(a) > `0.5`"]
)
def test_length_against_another_number_is_refused(argument: str) -> None:
    """Counting beyond 'empty or not' is not sayable."""
    with pytest.raises(UnconvertibleError, match="other than 0"):
        _true(argument)


def test_length_of_a_string_is_its_emptiness_when_the_model_says_string() -> None:
    """With a shape type of 'string', length(s) > 0 means present and not ''."""

    def resolve(tokens: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
        return tuple(t.lower() for t in tokens), "string"

    condition = acceptor_condition(
        "path", "length(PasswordData) > `0`", expected=True, resolve=resolve
    )
    assert condition == {
        "all": [
            {"pointer": "/passworddata", "exists": True},
            {"not": {"pointer": "/passworddata", "equals": ""}},
        ]
    }


def test_the_resolver_names_wire_members_and_the_list_elements() -> None:
    """A resolver maps member names to wire names, '*' included."""
    seen: list[tuple[str, ...]] = []

    def resolve(tokens: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
        seen.append(tokens)
        return tuple(t.lower() for t in tokens), "list"

    condition = acceptor_condition(
        "path", "length(Items) == `0`", expected=True, resolve=resolve
    )
    assert condition == {"not": {"pointer": "/items/*", "exists": True, "match": "any"}}
    assert seen == [("Items",), ("Items", STAR)]


def test_length_of_a_value_or_empty_is_the_value_s_emptiness() -> None:
    """length(X || '') > 0 (EC2's console output): X defaults to empty, as a missing X does."""
    assert _true("length(Output || '') > `0`") == {
        "pointer": "/Output/*",
        "exists": True,
        "match": "any",
    }
    with pytest.raises(UnconvertibleError, match="not a path"):
        _true("length(Output || 'x') > `0`")
    with pytest.raises(UnconvertibleError, match="not a path"):
        _true("length(Output || Other) > `0`")


def test_length_of_a_non_path_is_refused() -> None:
    """length() of a comparison is not a count of anything a pointer names."""
    with pytest.raises(UnconvertibleError, match="not a path"):
        _true("length(a == 'b') > `0`")


# -- filters -------------------------------------------------------------------------


def test_a_filter_compared_with_zero_is_any_element_passing() -> None:
    """length(X[?f == 'a' || f == 'b']) > 0: some element's f is a or b."""
    assert _true("length(K[?S == 'A' || S == 'B']) > `0`") == {
        "pointer": "/K/*/S",
        "in": ["A", "B"],
        "match": "any",
    }
    assert _true("length(K[?'A' == S]) == `0`") == {
        "not": {"pointer": "/K/*/S", "equals": "A", "match": "any"}
    }


def test_a_filter_as_long_as_its_list_is_every_element_passing() -> None:
    """length(X[?c]) == length(X): every element passes c (DynamoDB's Kinesis waiter)."""
    argument = (
        "length(K) > `0`  && length(K[?S == 'DISABLED' || S == 'ENABLE_FAILED']) "
        "==  length(K)"
    )
    assert _true(argument) == {
        "all": [
            {"pointer": "/K/*", "exists": True, "match": "any"},
            {"pointer": "/K/*/S", "in": ["DISABLED", "ENABLE_FAILED"], "match": "all"},
        ]
    }


@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        ("length(K[?S == 'A']) == length(L)", "two lengths"),
        ("length(K[?S == 'A']) > length(K)", "two lengths"),
        ("length(K) == length(K)", "two lengths"),
        ("length(K[?S != 'A']) > `0`", "filter other than"),
        ("length(K[?S == 'A' || T == 'B']) > `0`", "filter other than"),
        ("length(K[?S == T]) > `0`", "compares two fields"),
        ("length(K[?S[] == 'A']) > `0`", "filter other than"),
        ("length(K[?!(length(d) == `1` && r == q)]) == `0`", "compares two fields"),
        ("length((a || b)[?S == 'A']) > `0`", "filter over an expression"),
    ],
)
def test_other_filters_are_refused(argument: str, reason: str) -> None:
    """Only one field equal to literals, over a path, is sayable per element."""
    with pytest.raises(UnconvertibleError, match=reason):
        _true(argument)


def test_plain_resolves_names_as_they_are() -> None:
    """Without a model, names stay and the type is unknown."""
    assert plain(("a", STAR)) == (("a", STAR), None)
