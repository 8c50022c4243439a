"""URI templates: the subset of RFC 6570 a spec may use, ``{name}`` and ``{+name}``.

A spec's ``path`` and ``query`` values are templates. :meth:`Template.parse`
refuses everything outside the subset with a :class:`TemplateError` (lists
``{a,b}``, modifiers ``{x*}`` ``{x:3}``, the operators ``# . / ; ? &``, and
``str.format`` leftovers such as ``{job_id!s:{job_id}}``), so a spec that
validates can always be expanded. :meth:`Template.expand` is a join over parts
split once at parse time: the engine calls it on every request it builds.

Simple ``{x}`` percent-encodes all but RFC 3986's unreserved characters, so a
value is one literal path segment (``.`` and ``..`` included, as ``%2E`` and
``%2E%2E``). Reserved ``{+x}`` is for values that are paths
(``projects/1/locations/x/operations/2``): it keeps ``/`` and the characters
RFC 3986 allows in a path (``:@!$&'()*+,;=``) and percent-encodes the rest,
``?``, ``#``, ``[`` and ``]`` included, so that a value can neither start a
query nor cut the path with a fragment. It refuses a value that could leave
the spec's host or climb out of its path prefix, plain or percent-encoded
(``%2e``, ``%2f``, ``%5c``, and those encoded again as ``%252e``…): a dot
segment, ``//`` (also where the value meets the template's own ``/``), a
scheme, a backslash. The host cannot change: the engine appends the expanded
path to the spec's base URL, so ``user@evil.example`` stays in the path.

Request bodies are JSON values whose strings are templates;
:func:`body_strings` walks one (with an explicit stack: a body built in Python
may nest deeper than the recursion limit) and :func:`whole_variable` says when
a string is one expression alone, which keeps its value's JSON type.
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any, Final
from urllib.parse import quote

import attrs

from .errors import TemplateError, shorten

__all__ = ["Template", "Variable", "body_strings", "whole_variable"]

_NAME_CHARS: Final = frozenset(string.ascii_letters + string.digits + "_")
# RFC 3986 unreserved: what simple expansion leaves as is.
_UNRESERVED: Final = string.ascii_letters + string.digits + "-._~"
# RFC 6570 section 2.2: the operators ("+" is the one we keep) and the
# characters it reserves for future operators.
_OPERATORS: Final = frozenset("+#./;?&=,!@|")
# RFC 3986 pchar's sub-delims, ":" and "@", and the "/" between segments:
# what reserved expansion leaves as is in a path. RFC 6570 would also keep
# "?", "#", "[" and "]", but in a path those start a query, cut it with a
# fragment, or are not allowed at all.
_RESERVED: Final = "/:@!$&'()*+,;="
_HEX: Final = frozenset(string.hexdigits)
_SCHEME_START: Final = frozenset(string.ascii_letters)
_SCHEME_CHARS: Final = frozenset(string.ascii_letters + string.digits + "+-.")
_SUBSET: Final = "a spec's templates use {name} and {+name} only"


@attrs.frozen
class Variable:
    """One expression of a template: ``{name}``, or ``{+name}`` when ``reserved``."""

    name: str
    reserved: bool = False

    def __str__(self) -> str:
        """Render the expression as written in a template."""
        return f"{{{'+' if self.reserved else ''}{self.name}}}"


# (variable name, reserved, the literal text after it): what expand() walks.
_Step = tuple[str, bool, str]


@attrs.frozen
class Template:
    """A parsed template: its text, its variables and its parts.

    Build one with :meth:`parse`. ``parts`` alternates literal text and
    :class:`Variable`; ``variables`` names each variable once, in order.
    """

    source: str
    variables: tuple[str, ...]
    parts: tuple[str | Variable, ...]
    _head: str = attrs.field(init=False, eq=False, repr=False)
    _steps: tuple[_Step, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        """Split ``parts`` once into a head and (variable, literal) steps."""
        head: list[str] = []
        steps: list[_Step] = []
        for part in self.parts:
            if isinstance(part, Variable):
                steps.append((part.name, part.reserved, ""))
            elif steps:
                name, reserved, literal = steps[-1]
                steps[-1] = (name, reserved, literal + part)
            else:
                head.append(part)
        object.__setattr__(self, "_head", "".join(head))
        object.__setattr__(self, "_steps", tuple(steps))

    @classmethod
    def parse(cls, text: str) -> Template:
        """Parse ``text`` (memoised: templates are immutable and specs reuse them).

        Raises:
            TemplateError: for anything outside ``{name}`` and ``{+name}``, with
                the position of the first mistake.
        """
        return _parse(text)

    def expand(self, values: Mapping[str, str], *, encode: bool = True) -> str:
        """Substitute ``values`` for the variables.

        With ``encode=False`` values go in as they are: for query values, which
        the engine encodes as a whole. Reserved values are checked either way.

        Raises:
            TemplateError: naming the variable, when ``values`` lacks one or a
                reserved value could leave the host or the path prefix.
        """
        pieces = [self._head]
        # (variable, reserved, start, end) of expansions that could make "//" or a dot
        # segment with the template's own text: reserved ones and empty ones.
        spans: list[tuple[str, bool, int, int]] = []
        for name, reserved, literal in self._steps:
            try:
                value = values[name]
            except KeyError as exc:
                msg = f"no value for {{{name}}}"
                raise TemplateError(msg, template=self.source, variable=name) from exc
            if reserved:
                text = self._reserved(name, value, encode=encode)
            elif not encode:
                text = value
            elif value in {".", ".."}:
                # Unreserved, so quote() keeps dots; a lone dot segment would
                # be resolved away by a server and climb out of the prefix.
                text = "%2E" * len(value)
            elif value.isascii() and not value.strip(_UNRESERVED):
                # Ids are usually plain: a C-speed check saves quote()'s ~0.7 µs.
                text = value
            else:
                text = quote(value, safe="")
            if encode and (reserved or not text):
                start = sum(map(len, pieces))
                spans.append((name, reserved, start, start + len(text)))
            pieces.append(text)
            pieces.append(literal)
        path = "".join(pieces)
        for name, reserved, start, end in spans:
            self._in_context(path, Variable(name, reserved=reserved), start, end)
        return path

    def _in_context(self, path: str, variable: Variable, start: int, end: int) -> None:
        """Refuse an expansion that makes '//' or a dot segment with its neighbours.

        ``start:end`` is where the expanded value is in ``path``; the window
        checked runs from the '/' before it to the '/' after it, both included.
        """
        left = path.rfind("/", 0, start)
        right = path.find("/", end)
        window = _decoded(path[max(left, 0) : len(path) if right < 0 else right + 1])
        reason = None
        if "//" in window:
            reason = "would make an empty path segment ('//')"
        else:
            for segment in window.split("/"):
                if segment in {".", ".."}:
                    reason = f"would make a {segment!r} path segment"
                    break
        if reason is not None:
            value = path[start:end]
            msg = f"value {shorten(value, 60)!r} for {variable} in its place {reason}"
            raise TemplateError(msg, template=self.source, variable=variable.name)

    def _reserved(self, name: str, value: str, *, encode: bool) -> str:
        reason = _refusal(value)
        if reason is not None:
            msg = f"value {shorten(value, 60)!r} for {{+{name}}} {reason}"
            raise TemplateError(msg, template=self.source, variable=name)
        return _encode_reserved(value) if encode else value


def _refusal(value: str) -> str | None:
    """Say why a reserved value could leave the host or the prefix, or None."""
    decoded = _decoded(value)
    if "\\" in decoded:
        return "holds a backslash, which some servers read as '/'"
    if decoded.startswith("//"):
        return "starts with '//', which names another host"
    scheme, colon, _ = value.partition(":")
    if (
        colon
        and scheme[:1] in _SCHEME_START
        and all(char in _SCHEME_CHARS for char in scheme)
    ):
        return f"starts with a scheme ({scheme}:)"
    for segment in decoded.split("/"):
        if segment in {".", ".."}:
            return f"would make a {segment!r} path segment"
    return None


def _decoded(text: str) -> str:
    """Return ``text`` as a lenient server may read it: %2F, %5C and %2E decoded.

    Servers decode those before they resolve a path, and a few decode twice,
    so "%25" is decoded too, three rounds at most (each round can only shorten
    the text, so this ends).
    """
    decoded = text.lower()
    for _ in range(3):
        before = decoded
        decoded = (
            decoded.replace("%2f", "/")
            .replace("%5c", "\\")
            .replace("%2e", ".")
            .replace("%25", "%")
        )
        if decoded == before:
            break
    return decoded


def _encode_reserved(value: str) -> str:
    # RFC 6570 3.2.3: reserved and unreserved characters and pct-encoded
    # triplets pass; anything else (a lone "%" included) is percent-encoded.
    # "Reserved" here is what a path may hold (see _RESERVED).
    pieces = value.split("%")
    out = [quote(pieces[0], safe=_RESERVED)]
    for piece in pieces[1:]:
        if piece[:1] in _HEX and piece[1:2] in _HEX:
            out.append("%" + piece[:2] + quote(piece[2:], safe=_RESERVED))
        else:
            out.append("%25" + quote(piece, safe=_RESERVED))
    return "".join(out)


@lru_cache(maxsize=1024)
def _parse(text: str) -> Template:
    parts: list[str | Variable] = []
    names: list[str] = []
    start = 0
    while True:
        opening = text.find("{", start)
        end = len(text) if opening < 0 else opening
        stray = text.find("}", start, end)
        if stray >= 0:
            msg = f"'}}' at position {stray} closes no '{{'"
            raise TemplateError(msg, template=text)
        if opening < 0:
            break
        closing = text.find("}", opening + 1)
        if closing < 0:
            msg = f"'{{' at position {opening} is never closed"
            raise TemplateError(msg, template=text)
        nested = text.find("{", opening + 1, closing)
        if nested >= 0:
            msg = f"'{{' at position {nested} is inside another expression; {_SUBSET}"
            raise TemplateError(msg, template=text)
        variable = _variable(text[opening + 1 : closing], opening, text)
        if opening > start:
            parts.append(text[start:opening])
        parts.append(variable)
        if variable.name not in names:
            names.append(variable.name)
        start = closing + 1
    if start < len(text):
        parts.append(text[start:])
    return Template(source=text, variables=tuple(names), parts=tuple(parts))


def _variable(body: str, at: int, text: str) -> Variable:
    """Read one expression's body (between the braces) at position ``at``."""
    expression = shorten("{" + body + "}", 40)
    reason: str | None = None
    reserved = body[:1] == "+"
    name = body[1:] if reserved else body
    if not body:
        reason = f"'{{}}' at position {at} names no variable; {_SUBSET}"
    elif body[0] in _OPERATORS and not reserved:
        reason = f"operator {body[0]!r} in {expression!r} is not supported; {_SUBSET}"
    elif "," in name:
        reason = f"{expression!r} lists several variables; write one per expression"
    elif name.endswith("*"):
        reason = (
            f"the explode modifier '*' in {expression!r} is not supported; {_SUBSET}"
        )
    elif ":" in name:
        reason = f"the modifier ':' in {expression!r} is not supported; {_SUBSET}"
    elif not name:
        reason = f"{expression!r} at position {at} names no variable"
    elif not _NAME_CHARS.issuperset(name):
        reason = f"{expression!r}: a variable name holds letters, digits and '_' only"
    if reason is not None:
        raise TemplateError(reason, template=text)
    return Variable(name, reserved=reserved)


def whole_variable(text: str) -> Variable | None:
    """Return the one expression ``text`` is made of (``"{count}"``), else ``None``.

    In a request body such a string is replaced by its value as it is, keeping
    its JSON type (an integer stays an integer); any other string is a text
    template. Raises :class:`TemplateError` for a malformed template.
    """
    parts = Template.parse(text).parts
    if len(parts) == 1 and isinstance(parts[0], Variable):
        return parts[0]
    return None


def body_strings(value: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Yield ``(path, text)`` for every string of a JSON body template, in document order.

    ``path`` holds the keys and indexes that lead to the string (a JSON
    pointer's tokens). Object keys are not templates and are not yielded.
    """
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            yield path, node
        elif isinstance(node, Mapping):
            items = list(node.items())
            stack.extend(((*path, key), item) for key, item in reversed(items))
        elif isinstance(node, (list, tuple)):
            stack.extend(
                ((*path, index), item)
                for index, item in reversed(list(enumerate(node)))
            )
