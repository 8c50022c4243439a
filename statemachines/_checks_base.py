"""What every theme of the semantic checks shares.

The shape of a check's findings, the did-you-mean hint that names what is
declared, and the test that a regular expression compiles.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator

__all__ = ["Found", "name_hint", "pattern_ok"]

Found = Iterator[tuple[str, str]]


def name_hint(name: str, declared: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, declared, n=1)
    did_you_mean = f"; did you mean {close[0]!r}?" if close else ""
    return f"{did_you_mean or ';'} Declared: {', '.join(declared)}"


def pattern_ok(pattern: str, at: str) -> Found:
    try:
        re.compile(pattern)
    except re.error as exc:
        yield at, f"invalid regular expression: {exc}"
