"""Blank secrets and what a spec marks sensitive, in anything bound for a log, an event or an error.

Pure: the engine's publish path runs every record through it, and the core
runs every piece of service-provided text (error messages, codes) through
:meth:`Redactor.text` before it reaches a message, an event or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from statemachines import Spec, split_pointer

__all__ = ["REDACTED", "Redactor"]

REDACTED: Final = "[REDACTED]"
#: Containers nested deeper than this are blanked whole (two frames a level, twice).
_MAX_DEPTH: Final = 100


class Redactor:
    """Blanks secrets, values at a spec's redact pointers, and its secret query parameters."""

    def __init__(
        self,
        *,
        secrets: Iterable[str] = (),
        pointers: Iterable[str] = (),
        query_params: Iterable[str] = (),
    ) -> None:
        """Redact ``secrets`` anywhere, values at ``pointers``, and ``query_params`` in URLs."""
        # A live set (the engine adds credentials as it meets them) is kept by reference.
        self._secrets = secrets if isinstance(secrets, set) else set(secrets)
        self._pointers = tuple(split_pointer(p) for p in pointers)
        params = tuple(query_params)
        self._query = (
            re.compile(
                r"((?:^|[?&;\s\"'])(?:"
                + "|".join(re.escape(p) for p in params)
                + r")=)[^&#\s\"';]*"
            )
            if params
            else None
        )

    @classmethod
    def for_spec(cls, spec: Spec, secrets: Iterable[str] = ()) -> Redactor:
        """Return the redactor of ``spec`` (its redact pointers and query parameters)."""
        return cls(
            secrets=secrets,
            pointers=spec.service.redact_pointers,
            query_params=spec.service.redact_query_params,
        )

    def text(self, value: str) -> str:
        """Return ``value`` with every secret and secret query parameter blanked."""
        for secret in self._secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
        if self._query is not None and "=" in value:
            value = self._query.sub(r"\1" + REDACTED, value)
        return value

    def redact(self, value: Any) -> Any:
        """Return a redacted deep copy of ``value`` (the input is never changed)."""
        value = _copy(value)
        for tokens in self._pointers:
            _blank(value, tokens)
        return self._strings(value)

    def _strings(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self._strings(k): self._strings(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._strings(v) for v in value]
        return value


def _copy(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH and isinstance(value, (Mapping, list, tuple)):
        # A hostile body nested deeper than this would end the walk (here or
        # in _strings) with a RecursionError: what is below is blanked unread.
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _copy(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v, depth + 1) for v in value]
    return value


def _blank(node: Any, tokens: tuple[str, ...]) -> None:
    *parents, last = tokens or ("",)
    for token in parents:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return
    if isinstance(node, list):
        # An array element ("/cards/0") is as sensitive as an object member.
        if last.isdigit() and int(last) < len(node) and node[int(last)] is not None:
            node[int(last)] = REDACTED
    elif isinstance(node, dict) and last in node and node[last] is not None:
        node[last] = REDACTED
