"""URI templates: the subset of RFC 6570 a spec may use, ``{name}`` and ``{+name}``.

A spec's ``path`` and ``query`` values are templates. :meth:`Template.parse`
refuses everything outside the subset with a :class:`TemplateError` (lists
``{a,b}``, modifiers ``{x*}`` ``{x:3}``, the operators ``# . / ; ? &``, and
``str.format`` leftovers such as ``{job_id!s:{job_id}}``), so a spec that
validates can always be expanded. :meth:`Template.expand` is a join over parts
split once at parse time: the engine calls it on every request it builds.

Simple ``{x}`` percent-encodes all but RFC 3986's unreserved characters, so a
value is one literal path segment (``.`` and ``..`` included, as ``%2E`` and
``%2E%2E``). Reserved ``{+x}`` keeps ``/`` and the other reserved characters,
and refuses a value that could leave the spec's host or climb out of its path
prefix (a dot segment, ``//``, a scheme, a backslash), plain or percent-encoded.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import lru_cache
from typing import Final
from urllib.parse import quote

import attrs

from .errors import TemplateError, shorten

__all__ = ["Template", "Variable"]

_NAME_CHARS: Final = frozenset(string.ascii_letters + string.digits + "_")
# RFC 3986 unreserved: what simple expansion leaves as is.
_UNRESERVED: Final = string.ascii_letters + string.digits + "-._~"
# RFC 6570 section 2.2: the operators ("+" is the one we keep) and the
# characters it reserves for future operators.
_OPERATORS: Final = frozenset("+#./;?&=,!@|")
# RFC 3986 gen-delims and sub-delims: what reserved expansion leaves as is.
_RESERVED: Final = ":/?#[]@!$&'()*+,;="
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
        for name, reserved, literal in self._steps:
            try:
                value = values[name]
            except KeyError as exc:
                msg = f"no value for {{{name}}}"
                raise TemplateError(msg, template=self.source, variable=name) from exc
            if reserved:
                pieces.append(self._reserved(name, value, encode=encode))
            elif not encode:
                pieces.append(value)
            elif value in {".", ".."}:
                # Unreserved, so quote() keeps dots; a lone dot segment would
                # be resolved away by a server and climb out of the prefix.
                pieces.append("%2E" * len(value))
            elif value.isascii() and not value.strip(_UNRESERVED):
                # Ids are usually plain: a C-speed check saves quote()'s ~0.7 µs.
                pieces.append(value)
            else:
                pieces.append(quote(value, safe=""))
            pieces.append(literal)
        return "".join(pieces)

    def _reserved(self, name: str, value: str, *, encode: bool) -> str:
        reason = _refusal(value)
        if reason is not None:
            msg = f"value {shorten(value, 60)!r} for {{+{name}}} {reason}"
            raise TemplateError(msg, template=self.source, variable=name)
        return _encode_reserved(value) if encode else value


def _refusal(value: str) -> str | None:
    """Say why a reserved value could leave the host or the prefix, or None."""
    # Servers decode %2F, %5C and %2E before they resolve a path, so the
    # checks look at the value as a server may read it.
    decoded = value.lower().replace("%2f", "/").replace("%5c", "\\").replace("%2e", ".")
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


def _encode_reserved(value: str) -> str:
    # RFC 6570 3.2.3: reserved and unreserved characters and pct-encoded
    # triplets pass; anything else (a lone "%" included) is percent-encoded.
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
