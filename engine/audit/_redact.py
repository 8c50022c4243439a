"""Redaction: secrets, spec-marked values and secret query parameters never reach the log."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from statemachines import Spec, split_pointer

REDACTED: Final = "[REDACTED]"


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Replace every secret in every string of ``value`` (deep copy)."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value


class Redactor:
    """Blanks what a spec marks sensitive, and secrets, in values bound for the log."""

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
                r"([?&](?:" + "|".join(re.escape(p) for p in params) + r")=)[^&#\s\"']*"
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

    def redact(self, value: Any) -> Any:
        """Return a redacted deep copy of ``value`` (the input is never changed)."""
        value = _copy(value)
        for tokens in self._pointers:
            _blank(value, tokens)
        return self._strings(value)

    def _strings(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret and secret in value:
                    value = value.replace(secret, REDACTED)
            if self._query is not None and ("?" in value or "&" in value):
                value = self._query.sub(r"\1" + REDACTED, value)
            return value
        if isinstance(value, dict):
            return {k: self._strings(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._strings(v) for v in value]
        return value


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
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
    if isinstance(node, dict) and last in node and node[last] is not None:
        node[last] = REDACTED
