"""A response read in full, as the core sees it: status, headers, body, URL.

Built by ``engine._remote`` (the only importer of httpx); read by the core.
Parsing the body is pure, so it lives here, with its hostile-input rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from engine._errors import RemoteError

__all__ = ["MAX_JSON_DEPTH", "NO_HEADERS", "Reply", "parse_json", "where"]

#: The deepest nesting of arrays and objects accepted in a JSON body. Code after
#: parsing walks bodies recursively (JSON pointers, redaction, audit records,
#: store snapshots, ``json.dumps``), each from a call depth of its own: 256
#: keeps every such walk far below Python's recursion limit (1,000), while the
#: APIs we poll nest a few dozen levels at most.
MAX_JSON_DEPTH = 256
#: The headers of no reply (a step without one), shared: never changed.
NO_HEADERS: Mapping[str, str] = {}
# A JSON string (escapes included) or one bracket: brackets inside strings
# must not count. Possessive quantifiers: an unterminated string is given up
# in one linear pass instead of being backtracked into.
_STRING_OR_BRACKET = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")


def where(url: str) -> str:
    """Return ``host/path`` of ``url`` for messages (never the query).

    Never raises: a URL too broken to split (an unclosed IPv6 bracket) is
    named as such; a message about it must not fail in turn.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "an unparsable URL"
    return f"{host}{parts.path}"


def parse_json(body: bytes, *, url: str, status: int, content_type: str) -> Any:
    """Return ``body`` parsed as JSON (``None`` for an empty body).

    Bodies nested deeper than ``MAX_JSON_DEPTH`` are refused before parsing,
    so that no later recursive walk over them can exhaust the stack.

    Raises:
        RemoteError: kind ``protocol`` when the body is not JSON, is cut
            short, or is nested too deep.
    """
    if not body.strip():
        return None
    # A body cannot nest deeper than it has opening brackets: counting them
    # (two C-speed passes) spares the common small body the scan.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _too_deep(body):
        msg = (
            f"malformed JSON from {where(url)} (HTTP {status}, {content_type}): "
            f"nested deeper than {MAX_JSON_DEPTH} levels"
        )
        raise RemoteError(msg, kind="protocol", status=status)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        # RecursionError: json's C scanner gives up near the interpreter's
        # limit. The scan above refuses such bodies first; one that still
        # gets here is classified all the same, never raised bare.
        msg = f"malformed JSON from {where(url)} (HTTP {status}, {content_type})"
        raise RemoteError(msg, kind="protocol", status=status) from exc


def _too_deep(body: bytes) -> bool:
    """Whether ``body`` opens more than ``MAX_JSON_DEPTH`` nested brackets."""
    depth = 0
    for token in _STRING_OR_BRACKET.finditer(body):
        first = token.group()[0]
        if first in _OPENERS:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif first != 0x22:  # a closing bracket (0x22 is the quote of a string)
            depth -= 1
    return False


@attrs.define(slots=True)
class Reply:
    """A response read in full (within the body cap).

    ``headers`` are keyed by lower-case name, repeated headers joined with
    ", " (as ``httpx.Headers`` reads them): a plain dict, because the engine
    looks several up on every poll and httpx's lookups scan every header.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    _parsed: Any = attrs.field(default=None, alias="_parsed")
    _parsed_ok: bool = attrs.field(default=False, alias="_parsed_ok")

    def json(self) -> Any:
        """Return the body parsed as JSON (``None`` for an empty body).

        Raises:
            RemoteError: kind ``protocol`` when the body is not JSON.
        """
        if not self._parsed_ok:
            self._parsed = parse_json(
                self.body,
                url=self.url,
                status=self.status,
                content_type=self.headers.get("content-type", "?"),
            )
            self._parsed_ok = True
        return self._parsed
