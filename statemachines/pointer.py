"""RFC 6901 JSON Pointer: escape, join, split and resolve; and wildcard pointers.

The engine reuses :func:`resolve_pointer` on every response, so it is written
for speed: pointers are split once (:func:`split_pointer` is cached) and the
walk is a plain loop.

A *wildcard pointer* is a pointer whose ``*`` tokens each stand for every
element of an array (or every member of an object):
``/Reservations/*/Instances/*/State/Name`` names the state of every instance
of every reservation, as botocore's ``Reservations[].Instances[].State.Name``
does. Only a condition that says how to combine the values (``match``) reads
a pointer this way; anywhere else ``*`` is a member name, as RFC 6901 says.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Final

__all__ = [
    "MISSING",
    "WILDCARD",
    "escape",
    "has_wildcard",
    "join_pointer",
    "resolve_all",
    "resolve_pointer",
    "split_pointer",
]


class _Missing:
    """Sentinel type: the pointer names nothing in the document."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: Returned by :func:`resolve_pointer` when the pointer names nothing.
MISSING: Final = _Missing()


def escape(token: str | int) -> str:
    """Escape one reference token."""
    # "~" must be escaped before "/", or "/" → "~1" → "~01".
    return str(token).replace("~", "~0").replace("/", "~1")


def join_pointer(tokens: Iterable[str | int]) -> str:
    """Build a pointer from reference tokens (``["a", 0]`` → ``"/a/0"``)."""
    return "".join("/" + escape(t) for t in tokens)


@lru_cache(maxsize=4096)
def split_pointer(pointer: str) -> tuple[str, ...]:
    """Split a pointer into unescaped tokens.

    Raises:
        ValueError: if the pointer is neither empty nor starts with ``/``.
    """
    if not pointer:
        return ()
    if not pointer.startswith("/"):
        msg = f"JSON pointer must be empty or start with '/': {pointer!r}"
        raise ValueError(msg)
    # "~1" must be decoded before "~0", the reverse of escaping.
    return tuple(
        t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")
    )


def resolve_pointer(document: Any, pointer: str, default: Any = MISSING) -> Any:
    """Return the value ``pointer`` names in ``document``, or ``default``.

    Array indices must be decimal without leading zeros (``-`` names nothing).
    """
    node = document
    for part in split_pointer(pointer):
        if isinstance(node, dict):
            if part not in node:
                return default
            node = node[part]
        elif isinstance(node, list):
            if not (part.isascii() and part.isdigit()) or (
                part != "0" and part.startswith("0")
            ):
                return default
            index = int(part)
            if index >= len(node):
                return default
            node = node[index]
        else:
            return default
    return node


#: The token that stands for every element in a wildcard pointer.
WILDCARD: Final = "*"


def has_wildcard(pointer: str) -> bool:
    """Whether ``pointer`` has a ``*`` token (so it can name several values).

    Raises:
        ValueError: if the pointer is neither empty nor starts with ``/``.
    """
    return WILDCARD in split_pointer(pointer)


@lru_cache(maxsize=1024)
def _segments(pointer: str) -> tuple[str, ...]:
    """Split a wildcard pointer into the plain pointers between its ``*`` tokens."""
    segments: list[str] = []
    tokens: list[str] = []
    for token in split_pointer(pointer):
        if token == WILDCARD:
            segments.append(join_pointer(tokens))
            tokens = []
        else:
            tokens.append(token)
    segments.append(join_pointer(tokens))
    return tuple(segments)


def _elements(node: Any) -> list[Any]:
    if isinstance(node, list):
        return node
    if isinstance(node, dict):
        return list(node.values())
    # A '*' over a value that has no elements names nothing there.
    return [MISSING]


def resolve_all(document: Any, pointer: str) -> list[Any]:
    """Return every value a wildcard pointer names in ``document``, in document order.

    Each ``*`` fans out over the elements of an array (or the members of an
    object); an empty array names no value. A branch where the rest of the
    pointer names nothing gives :data:`MISSING`, so that a caller can tell
    "no element" from "an element without the value". Without ``*`` the
    result is ``[resolve_pointer(document, pointer)]``.

    Raises:
        ValueError: if the pointer is neither empty nor starts with ``/``.
    """
    first, *rest = _segments(pointer)
    nodes = [resolve_pointer(document, first)]
    for segment in rest:
        nodes = [
            resolve_pointer(element, segment)
            for node in nodes
            for element in _elements(node)
        ]
    return nodes
