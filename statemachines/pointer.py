"""RFC 6901 JSON Pointer: escape, join, split and resolve.

The engine reuses :func:`resolve_pointer` on every response, so it is written
for speed: pointers are split once (:func:`split_pointer` is cached) and the
walk is a plain loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, Final

__all__ = ["MISSING", "escape", "join_pointer", "resolve_pointer", "split_pointer"]


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
