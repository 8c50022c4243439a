"""Redaction: secrets, spec-marked values and secret query parameters never reach the log.

Everything here walks values with an explicit stack, never by recursion: a
service's body may be nested as deep as the engine's parser allows, and a
redactor that raised ``RecursionError`` would let the record through unwritten
or end the job as an internal error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote

import attrs

from statemachines import Spec, split_pointer

from ._entry import AuditEntry

REDACTED: Final = "[REDACTED]"

_SCALARS: Final = (int, float, bool, type(None))


def map_strings(
    value: Any, text: Callable[[str], str], *, max_depth: int | None = None
) -> Any:
    """Return a JSON-shaped deep copy of ``value`` with every string passed through ``text``.

    Mapping keys are strings too, so they are passed through ``text`` as well.
    Tuples become lists and any other object becomes its ``str()`` (then
    ``text``), so the result always serialises and an exception whose message
    holds a secret is redacted like any other text. Containers deeper than
    ``max_depth`` are replaced by a short marker; ``None`` means no limit.
    """
    root: list[Any] = [None]
    # (source value, container to fill, slot in it, depth of the source value)
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        source, target, slot, depth = stack.pop()
        if isinstance(source, str):
            target[slot] = text(source)
        elif isinstance(source, _SCALARS):
            target[slot] = source
        elif isinstance(source, (Mapping, list, tuple)):
            if max_depth is not None and depth >= max_depth:
                target[slot] = f"[nested deeper than {max_depth} levels]"
                continue
            if isinstance(source, Mapping):
                out: dict[str, Any] = {}
                target[slot] = out
                for key, item in source.items():
                    name = text(key if isinstance(key, str) else str(key))
                    out[name] = None  # holds the key's place: order is kept
                    stack.append((item, out, name, depth + 1))
            else:
                items: list[Any] = [None] * len(source)
                target[slot] = items
                stack.extend(
                    (item, items, i, depth + 1) for i, item in enumerate(source)
                )
        else:
            target[slot] = text(str(source))
    return root[0]


def replace_secrets(value: str, secrets: Iterable[str]) -> str:
    """Return ``value`` with every secret replaced by ``[REDACTED]``.

    Longer secrets go first, so a secret that contains another is blanked
    whole. Each secret's percent-encoded form is blanked too (a key echoed
    back from a query string arrives encoded).
    """
    for secret in _variants(secrets):
        if secret in value:
            value = value.replace(secret, REDACTED)
    return value


def _variants(secrets: Iterable[str]) -> list[str]:
    forms = {s for s in secrets if s}
    forms |= {quote(s, safe="") for s in forms}
    return sorted(forms, key=len, reverse=True)


def _query_pattern(params: Collection[str]) -> re.Pattern[str] | None:
    if not params:
        return None
    names = "|".join(re.escape(p) for p in sorted(params, key=len, reverse=True))
    # A parameter starts a URL query or a form ("sig=" at the start, after
    # ?, &, ; or a space) or follows an encoded ? or & (a URL inside a
    # query). Its value runs to the next separator, an encoded & included.
    return re.compile(
        r"((?:(?<=%26)|(?<=%3[Ff])|(?<![A-Za-z0-9_.~%+-]))"
        r"(?:" + names + r")(?:=|%3[Dd]))"
        r"(?:(?!%26)[^&#;\s\"'<>\\])*",
        re.IGNORECASE,
    )


class Redactor:
    """Blanks what a spec marks sensitive, and secrets, in values bound for the log.

    The secret values are a live set: pass the engine's own ``set`` and the
    credentials it adds later are redacted too; :meth:`add_secret` adds one.
    """

    def __init__(
        self,
        *,
        secrets: Iterable[str] = (),
        pointers: Iterable[str] = (),
        query_params: Iterable[str] = (),
    ) -> None:
        """Redact ``secrets`` anywhere, values at ``pointers``, and ``query_params`` in URLs."""
        # Kept by reference when it is a set: the engine adds credentials as
        # it reads them, after this redactor was built.
        self._secrets: set[str] = (
            secrets if isinstance(secrets, set) else {s for s in secrets if s}
        )
        self._pointers = tuple(split_pointer(p) for p in pointers)
        self._query = _query_pattern(tuple(query_params))

    @classmethod
    def for_spec(cls, spec: Spec, secrets: Iterable[str] = ()) -> Redactor:
        """Return the redactor of ``spec`` (its redact pointers and query parameters)."""
        return cls(
            secrets=secrets,
            pointers=spec.service.redact_pointers,
            query_params=spec.service.redact_query_params,
        )

    def add_secret(self, value: str) -> None:
        """Redact ``value`` from now on, wherever it appears (empty values are ignored)."""
        if value:
            self._secrets.add(value)

    def text(self, value: str) -> str:
        """Return ``value`` with every secret and every secret query parameter blanked.

        For text a service wrote (error bodies, messages, links) before it
        reaches a message, an event, a log line or a record.
        """
        value = replace_secrets(value, self._secrets)
        if self._query is not None and ("=" in value or "%3" in value):
            value = self._query.sub(r"\1" + REDACTED, value)
        return value

    def redact(self, value: Any) -> Any:
        """Return a redacted deep copy of ``value`` (the input is never changed).

        Values at the spec's redact pointers are blanked, then every string
        (keys included) goes through :meth:`text`. Any JSON value is taken,
        however deep; tuples come back as lists, other objects as their
        redacted ``str()``.
        """
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, _SCALARS):
            return value
        if self._pointers and isinstance(value, (Mapping, list, tuple)):
            value = map_strings(value, _same)  # a private copy to blank in place
            for tokens in self._pointers:
                value = _blank(value, tokens)
        return map_strings(value, self.text)

    def entry(self, entry: AuditEntry) -> AuditEntry:
        """Return ``entry`` with every field redacted, ready for a sink.

        ``observed`` and ``detail`` go through :meth:`redact`, the names and
        states through :meth:`text`. A ``spec`` record's document is the
        spec itself, not a response, so the redact pointers do not apply to it.
        """
        detail = (
            map_strings(entry.detail, self.text)
            if entry.kind == "spec"
            else self.redact(dict(entry.detail))
        )
        return attrs.evolve(
            entry,
            service=self.text(entry.service),
            lifecycle=self.text(entry.lifecycle),
            job_id=self.text(entry.job_id),
            spec_source=self.text(entry.spec_source),
            item_id=_maybe(self.text, entry.item_id),
            from_state=_maybe(self.text, entry.from_state),
            to_state=_maybe(self.text, entry.to_state),
            trigger=_maybe(self.text, entry.trigger),
            observed=self.redact(entry.observed),
            detail=detail,
        )


def _same(value: str) -> str:
    return value


def _maybe(text: Callable[[str], str], value: str | None) -> str | None:
    return None if value is None else text(value)


def _blank(root: Any, tokens: tuple[str, ...]) -> Any:
    """Blank the value at ``tokens`` in ``root`` (a private copy); return the root."""
    if not tokens:
        return REDACTED  # the empty pointer names the whole value
    node = root
    *parents, last = tokens
    for token in parents:
        node = _child(node, token)
        if node is None:
            return root
    if isinstance(node, dict) and node.get(last) is not None:
        node[last] = REDACTED
    elif isinstance(node, list):
        index = _index(node, last)
        if index is not None:
            node[index] = REDACTED
    return root


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token)
    if isinstance(node, list):
        index = _index(node, token)
        return None if index is None else node[index]
    return None


def _index(node: list[Any], token: str) -> int | None:
    if token.isdigit() and int(token) < len(node):
        return int(token)
    return None
