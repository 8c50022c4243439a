"""A response read in full, as the core sees it: status, headers, body, URL.

Built by ``engine._remote`` (the only importer of httpx); read by the core.
Parsing the body is pure, so it lives here, with its hostile-input rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from engine._errors import RemoteError

__all__ = ["Reply", "parse_json", "where"]


def where(url: str) -> str:
    """Return ``host/path`` of ``url`` for messages (never the query)."""
    parts = urlsplit(url)
    return f"{parts.hostname}{parts.path}"


def parse_json(body: bytes, *, url: str, status: int, content_type: str) -> Any:
    """Return ``body`` parsed as JSON (``None`` for an empty body).

    Raises:
        RemoteError: kind ``protocol`` when the body is not JSON.
    """
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: a nesting bomb
        msg = f"malformed JSON from {where(url)} (HTTP {status}, {content_type})"
        raise RemoteError(msg, kind="protocol", status=status) from exc


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
