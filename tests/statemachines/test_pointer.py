"""RFC 6901 JSON Pointer: escaping, joining, splitting and resolving."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statemachines.pointer import (
    MISSING,
    escape,
    join_pointer,
    resolve_pointer,
    split_pointer,
)

DOC: dict[str, Any] = {"a": {"b/c": [10, {"~": "tilde"}]}, "": "empty key", "n": None}

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=25,
)


class TestEscape:
    """escape() and join_pointer() build pointers from tokens."""

    def test_tilde_is_escaped_before_slash(self) -> None:
        """'~' becomes '~0' first, so a '/' turned into '~1' is never re-escaped."""
        text = "a~/b"

        escaped = escape(text)

        assert escaped == "a~0~1b"

    def test_join_prefixes_every_token_with_a_slash(self) -> None:
        """Each token, escaped, follows a '/'; integers are written in decimal."""
        tokens: list[str | int] = ["a/b", "m~n", 0, ""]

        pointer = join_pointer(tokens)

        assert pointer == "/a~1b/m~0n/0/"

    def test_join_of_no_tokens_is_the_whole_document(self) -> None:
        """The empty token list gives the empty pointer."""
        tokens: list[str] = []

        pointer = join_pointer(tokens)

        assert pointer == ""


class TestSplit:
    """split_pointer() undoes join_pointer()."""

    def test_empty_pointer_has_no_tokens(self) -> None:
        """'' names the whole document: no tokens."""
        pointer = ""

        tokens = split_pointer(pointer)

        assert tokens == ()

    def test_escapes_are_decoded_in_reverse_order(self) -> None:
        """'~01' decodes to '~1' (not '/'): '~1' is decoded before '~0'."""
        pointer = "/~01/a~1b/~0"

        tokens = split_pointer(pointer)

        assert tokens == ("~1", "a/b", "~")

    def test_pointer_without_leading_slash_is_refused(self) -> None:
        """A non-empty pointer must start with '/'; the message quotes it."""
        pointer = "a/b"

        with pytest.raises(ValueError, match="must be empty or start with '/': 'a/b'"):
            split_pointer(pointer)

    @given(tokens=st.lists(st.text(), max_size=6))
    def test_split_inverts_join_for_any_text_tokens(self, tokens: list[str]) -> None:
        """For arbitrary text tokens, split_pointer(join_pointer(t)) == t."""
        pointer = join_pointer(tokens)

        result = split_pointer(pointer)

        assert result == tuple(tokens)


class TestResolve:
    """resolve_pointer() walks dicts and lists and never raises on absent paths."""

    @pytest.mark.parametrize(
        ("pointer", "expected"),
        [
            ("", DOC),
            ("/a/b~1c/0", 10),
            ("/a/b~1c/1/~0", "tilde"),
            ("/", "empty key"),
            ("/n", None),
        ],
        ids=["root", "escaped-slash-then-index", "escaped-tilde", "empty-key", "null"],
    )
    def test_present_value_is_returned(self, pointer: str, expected: object) -> None:
        """A pointer that names a value returns it, including null and '' keys."""
        document = DOC

        value = resolve_pointer(document, pointer)

        assert value == expected

    @pytest.mark.parametrize(
        "pointer",
        [
            "/missing",
            "/a/b~1c/2",
            "/a/b~1c/01",
            "/a/b~1c/-",
            "/a/b~1c/x",
            "/a/b~1c/\N{FULLWIDTH DIGIT ONE}",
            "/a/b~1c/0/deeper",
            "/n/x",
        ],
        ids=[
            "absent-key",
            "index-out-of-range",
            "leading-zero",
            "dash",
            "not-a-number",
            "non-ascii-digit",
            "below-a-scalar",
            "below-null",
        ],
    )
    def test_absent_value_gives_missing(self, pointer: str) -> None:
        """A pointer that names nothing returns MISSING rather than raising."""
        document = DOC

        value = resolve_pointer(document, pointer)

        assert value is MISSING

    def test_absent_value_gives_the_default_when_one_is_passed(self) -> None:
        """The ``default`` argument replaces MISSING."""
        document = DOC

        value = resolve_pointer(document, "/nope", default=42)

        assert value == 42

    def test_missing_is_falsy_and_prints_its_name(self) -> None:
        """MISSING is falsy and its repr is 'MISSING'."""
        sentinel = MISSING

        shown = repr(sentinel)

        assert shown == "MISSING"
        assert not sentinel

    @given(document=JSON_VALUES, data=st.data())
    def test_resolve_finds_any_node_of_a_random_document(
        self, document: Any, data: st.DataObject
    ) -> None:
        """Walking to any node of any nested dict/list and joining the path resolves it."""
        node = document
        tokens: list[str | int] = []
        while isinstance(node, dict | list) and node and data.draw(st.booleans()):
            if isinstance(node, dict):
                key = data.draw(st.sampled_from(sorted(node)))
                tokens.append(key)
                node = node[key]
            else:
                index = data.draw(st.integers(0, len(node) - 1))
                tokens.append(index)
                node = node[index]

        found = resolve_pointer(document, join_pointer(tokens))

        assert found is node
