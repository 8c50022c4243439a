"""Redaction: secrets, spec-marked values and secret query parameters never reach a log.

Pure, so that the core redacts service-provided text (error messages,
codes) before it reaches an error, an event or a log line, and the publish
path redacts every record before the audit log, the store and hooks see it.

Everything here walks values with an explicit stack, never by recursion: a
service's body may be nested as deep as the engine's parser allows, and a
redactor that raised ``RecursionError`` would let the record through unwritten
or end the job as an internal error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import attrs

from statemachines import Spec, split_pointer

if TYPE_CHECKING:
    from engine.audit import AuditEntry

__all__ = [
    "REDACTED",
    "Redactor",
    "map_strings",
    "pointer_targets",
    "replace_secrets",
    "secret_forms",
]

REDACTED: Final = "[REDACTED]"

_SCALARS: Final = (int, float, bool, type(None))
_PLAIN: Final = frozenset(_SCALARS)


def map_strings(
    value: Any,
    text: Callable[[str], str],
    *,
    max_depth: int | None = None,
    blank: Collection[tuple[int, Any]] = (),
) -> Any:
    """Return a JSON-shaped deep copy of ``value`` with every string passed through ``text``.

    Mapping keys are strings too, so they are passed through ``text`` as well.
    Tuples become lists and any other object becomes its ``str()`` (then
    ``text``), so the result always serialises and an exception whose message
    holds a secret is redacted like any other text. Containers deeper than
    ``max_depth`` are replaced by a short marker; ``None`` means no limit.
    ``blank`` holds (``id`` of a container in ``value``, key or index) pairs
    whose non-null value becomes ``[REDACTED]`` (see :func:`pointer_targets`).
    """
    if not isinstance(value, (Mapping, list, tuple)):
        return _leaf(value, text)
    root: list[Any] = [None]
    # (source container, container to fill, slot in it, depth of the source)
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        source, target, slot, depth = stack.pop()
        if max_depth is not None and depth >= max_depth:
            target[slot] = f"[nested deeper than {max_depth} levels]"
            continue
        out: Any
        is_list = not isinstance(source, Mapping)
        if is_list:
            out = [None] * len(source)
            pairs: Iterable[tuple[Any, Any]] = enumerate(source)
        else:
            out = {}
            pairs = source.items()
        target[slot] = out
        for key, item in pairs:
            name = key if is_list else text(key if type(key) is str else str(key))
            kind = type(item)
            # Exact type checks first: isinstance against the Mapping ABC is
            # the slowest step of a walk over a typical body.
            if blank and item is not None and (id(source), key) in blank:
                out[name] = REDACTED
            elif kind is str:
                out[name] = text(item)
            elif kind in _PLAIN:
                out[name] = item
            elif (
                kind is dict or kind is list or isinstance(item, (Mapping, list, tuple))
            ):
                out[name] = None  # holds the key's place: order is kept
                stack.append((item, out, name, depth + 1))
            else:
                out[name] = _leaf(item, text)
    return root[0]


def _leaf(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, _SCALARS):
        return value
    return text(str(value))


def pointer_targets(
    value: Any, pointers: Iterable[tuple[str, ...]]
) -> set[tuple[int, Any]]:
    """Return the (``id`` of container, key or index) pairs that ``pointers`` name in ``value``.

    Pointers that lead nowhere are skipped: a body need not hold every
    field a spec marks sensitive.
    """
    found: set[tuple[int, Any]] = set()
    for tokens in pointers:
        node = value
        for token in tokens[:-1]:
            node = _child(node, token)
        if tokens and isinstance(node, Mapping) and tokens[-1] in node:
            found.add((id(node), tokens[-1]))
        elif tokens and isinstance(node, (list, tuple)):
            index = _index(node, tokens[-1])
            if index is not None:
                found.add((id(node), index))
    return found


def secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Return what to look for to blank ``secrets``: each value and its percent-encoded form.

    A key echoed back from a query string arrives encoded. Longer forms come
    first, so a secret that contains another is blanked whole. Empty values
    are dropped (an unset variable must not blank every string).
    """
    forms = {s for s in secrets if s}
    forms |= {quote(s, safe="") for s in forms}
    return tuple(sorted(forms, key=len, reverse=True))


def replace_secrets(value: str, forms: Sequence[str]) -> str:
    """Return ``value`` with every one of ``forms`` (see :func:`secret_forms`) blanked."""
    for secret in forms:
        if secret in value:
            value = value.replace(secret, REDACTED)
    return value


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
        self._forms_of: frozenset[str] = frozenset()
        self._forms: tuple[str, ...] = ()

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
        return self._text(value, self._current_forms())

    def _current_forms(self) -> tuple[str, ...]:
        # The set is live, so its forms are recomputed only when it changed.
        if self._secrets != self._forms_of:
            self._forms_of = frozenset(self._secrets)
            self._forms = secret_forms(self._forms_of)
        return self._forms

    def _text(self, value: str, forms: Sequence[str]) -> str:
        value = replace_secrets(value, forms)
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
        if () in self._pointers:
            return REDACTED  # the empty pointer names the whole value
        return self._members(value)

    def _members(self, value: Any) -> Any:
        """Redact like :meth:`redact`, but never blank ``value`` as a whole."""
        forms = self._current_forms()
        pointers = tuple(p for p in self._pointers if p)
        blank = pointer_targets(value, pointers) if pointers else ()
        return map_strings(value, lambda text: self._text(text, forms), blank=blank)

    def entry(self, entry: AuditEntry) -> AuditEntry:
        """Return ``entry`` with every field redacted, ready for a sink.

        ``observed`` and ``detail`` go through :meth:`redact` (a detail is
        never blanked whole), the names and states through :meth:`text`. A
        ``spec`` record's document is the spec itself, not a response, so the
        redact pointers do not apply to it.
        """
        # A detail keeps its shape (a mapping), whatever the pointers say: the
        # empty pointer blanks a whole observed body, not a record's detail.
        # A spec record's document is the spec, not a response: secrets only.
        detail = (
            map_strings(entry.detail, self.text)
            if entry.kind == "spec"
            else self._members(dict(entry.detail))
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


def _maybe(text: Callable[[str], str], value: str | None) -> str | None:
    return None if value is None else text(value)


def _child(node: Any, token: str) -> Any:
    if isinstance(node, Mapping):
        return node.get(token)
    if isinstance(node, (list, tuple)):
        index = _index(node, token)
        return None if index is None else node[index]
    return None


def _index(node: Sequence[Any], token: str) -> int | None:
    if token.isdigit() and int(token) < len(node):
        return int(token)
    return None
