"""Read a spec's JSON, and guard the raw document before the schema sees it.

json and jsonschema both recurse, Python reads ``1e400`` as infinity, and a
dict keeps the last of two equal keys. So what hostile input could do to them
is caught here first, as Problems:

- nesting deeper than :data:`MAX_DEPTH`: in a file's text before it is parsed,
  in a document built in Python by a walk that keeps its own stack;
- numbers that are not finite, and integers too long to print;
- duplicate keys in a file; keys and values that are not JSON in a document
  built in Python.

:func:`freeze` turns a checked document into the read-only ``Spec.document``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from itertools import accumulate
from typing import Any, Final, NoReturn

from .errors import Problem, SpecError, at_most, in_pointer_order, shorten
from .pointer import escape

__all__ = [
    "MAX_DEPTH",
    "FrozenDict",
    "FrozenList",
    "document_problems",
    "freeze",
    "read_json",
]

#: How deeply a spec's JSON may nest. The built-in specs need 7 levels;
#: jsonschema and the model builder recurse, about seven stack frames per
#: level, so 64 levels stay far below Python's recursion limit of 1,000.
MAX_DEPTH: Final = 64
# About 3,900 decimal digits: an integer Python can still print (it refuses
# beyond 4,300) and hash as JSON, and far beyond any useful spec value.
_MAX_INT_BITS: Final = 13_000
_BRACKETS: Final = re.compile(r"[\[\]{}]")
_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1}
# A number that may overflow a float: an exponent of three digits or more, or
# a long run of digits. Finding one makes the loader walk the document.
_BIG_NUMBER: Final = re.compile(r"[eE]\+?[0-9]{3}|[0-9]{300}")
# The first character of a JSON text after its whitespace names its type.
_OPENERS: Final = {
    "[": "an array",
    '"': "a string",
    "t": "a boolean",
    "f": "a boolean",
    "n": "null",
    "-": "a number",
    **dict.fromkeys("0123456789", "a number"),
}
# Scalars that are always fine: the walk skips them without a call.
_PLAIN: Final = frozenset({str, bool, type(None)})
_KINDS: Final = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def read_json(text: str, file: str) -> tuple[dict[str, Any], list[Problem]]:
    """Parse a spec file's text; return the document and the problems in it.

    Raises:
        SpecError: when there is nothing to check: the text is empty, nested
            too deeply, not JSON, or not a JSON object.
    """
    if not text or text.isspace():
        raise SpecError([Problem(file, "", "the file is empty")])
    outside = _outside_strings(text)
    if _depth(outside) > MAX_DEPTH:
        raise SpecError([_too_deep(file)])
    kind = _OPENERS.get(text.lstrip(" \t\n\r")[:1])
    if kind is not None:
        # JSON that does not open with "{" cannot be an object: a data file
        # saved as a spec is one line, without parsing all of it.
        raise SpecError([Problem(file, "", f"a spec is a JSON object, not {kind}")])
    repeated: dict[int, tuple[dict[str, Any], list[str]]] = {}

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(items)
        if len(obj) < len(items):
            # Holding obj keeps its id unique until the walk, even when a later
            # duplicate key drops it from the document.
            repeated[id(obj)] = (obj, _repeated_keys(items))
        return obj

    big = _BIG_NUMBER.search(outside) is not None
    try:
        document = json.loads(
            text,
            object_pairs_hook=pairs,
            parse_constant=_refuse_constant,
            parse_float=_parse_float if big else None,
        )
    except json.JSONDecodeError as exc:
        msg = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise SpecError([Problem(file, "", msg)]) from exc
    except ValueError as exc:
        raise SpecError([Problem(file, "", f"invalid JSON: {exc}")]) from exc
    check_root(document, file)
    if not (repeated or big):
        # Nothing the walk looks for can be there: the depth and the
        # non-finite constants were refused above, and json makes only JSON.
        return document, []
    return document, document_problems(document, file, repeated)


def check_root(document: Any, file: str) -> None:
    """Refuse a document that is not a JSON object.

    Checked before anything else looks inside, so that a data file saved as a
    spec costs one line, not a walk and a schema error quoting all of it.

    Raises:
        SpecError: naming what the document is instead.
    """
    if not isinstance(document, dict):
        kind = _KINDS.get(type(document)) or f"a {type(document).__name__}"
        msg = f"a spec is a JSON object, not {kind}"
        raise SpecError([Problem(file, "", msg)])


def document_problems(
    document: Any,
    file: str,
    repeated: dict[int, tuple[dict[str, Any], list[str]]] | None = None,
) -> list[Problem]:
    """Walk a document; return its duplicate keys and non-finite numbers.

    ``repeated`` maps ``id(obj)`` to the object and its repeated keys (from
    :func:`read_json`); a document built in Python has none.

    Raises:
        SpecError: for what nothing downstream could handle (nesting deeper
            than :data:`MAX_DEPTH`, a value or key that is not JSON, an
            integer too long to print), with every problem found.
    """
    check_root(document, file)
    problems: list[Problem] = []
    fatal: list[Problem] = []
    # (container, its pointer, its depth): a stack, not recursion, so that a
    # deep document is refused instead of overflowing this walk.
    stack: list[tuple[Any, str, int]] = [(document, "", 1)]
    while stack:
        node, at, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SpecError([_too_deep(file)])
        if isinstance(node, dict):
            entry = repeated.get(id(node)) if repeated else None
            if entry is not None:
                problems.extend(
                    Problem(
                        file, f"{at}/{escape(key)}", f"duplicate key {shorten(key)!r}"
                    )
                    for key in entry[1]
                )
            fatal.extend(
                Problem(file, at, f"key {shorten(repr(key))} is not a string")
                for key in node
                if not isinstance(key, str)
            )
            items: Iterable[tuple[Any, Any]] = node.items()
        else:
            items = enumerate(node)
        for key, value in items:
            if isinstance(value, dict | list):
                stack.append((value, f"{at}/{escape(key)}", depth + 1))
            elif type(value) not in _PLAIN:
                found = _leaf_problem(value)
                if found is not None:
                    message, is_fatal = found
                    target = fatal if is_fatal else problems
                    target.append(Problem(file, f"{at}/{escape(key)}", message))
    if fatal:
        raise SpecError(at_most(in_pointer_order([*fatal, *problems])))
    return problems


def _leaf_problem(value: Any) -> tuple[str, bool] | None:
    """Return (message, fatal) for a value that is not a usable JSON scalar."""
    if value is None or isinstance(value, str | bool):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        literal = getattr(value, "literal", repr(value))
        return f"{shorten(literal, 40)} is not a finite number", False
    if isinstance(value, int):
        if value.bit_length() <= _MAX_INT_BITS:
            return None
        return "integer too large (about 3,900 digits or more)", True
    return f"{type(value).__name__} is not a JSON value", True


def _too_deep(file: str) -> Problem:
    return Problem(file, "", f"nested deeper than {MAX_DEPTH} levels")


def _outside_strings(text: str) -> str:
    """Return the text between JSON strings, where brackets and numbers count."""
    # Escapes first, so that an escaped quote does not end a string: "\\" is
    # removed before '\"', as in '"a\\"' (a string ending in a backslash).
    # Outside a string a backslash is not JSON, and json stops there, before
    # anything this could misread.
    plain = text.replace("\\\\", "").replace('\\"', "")
    return "".join(plain.split('"')[::2])


def _depth(outside: str) -> int:
    steps = map(_STEP.__getitem__, _BRACKETS.findall(outside))
    return max(accumulate(steps), default=0)


def _repeated_keys(items: list[tuple[str, Any]]) -> list[str]:
    seen: set[str] = set()
    # A dict, not a list: ordered like a list, and "in" stays O(1) when a
    # hostile object repeats 100,000 keys.
    repeated: dict[str, None] = {}
    for key, _ in items:
        if key in seen:
            repeated[key] = None
        seen.add(key)
    return list(repeated)


class _Overflowed(float):
    """Infinity that remembers the literal it was read from (``1e400``)."""

    literal: str


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isfinite(value):
        return value
    overflowed = _Overflowed(value)
    overflowed.literal = text
    return overflowed


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and a NaN interval
    # would crash the model's validators instead of being reported.
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def _read_only(*_args: Any, **_kwargs: Any) -> NoReturn:
    msg = "a spec's document is read-only; change a copy (copy.deepcopy gives dicts)"
    raise TypeError(msg)


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes, so one document can be shared safely.

    Still a dict: ``json.dumps`` writes it and jsonschema reads it as an
    object. Copies (``copy.copy``, ``copy.deepcopy``, pickling) are plain.
    """

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        """Copy and pickle as a plain dict."""
        return dict, (dict(self),)


class FrozenList(list[Any]):
    """A list that refuses changes (see :class:`FrozenDict`)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = clear = extend = insert = pop = remove = reverse = sort = _read_only

    def __reduce__(self) -> tuple[type[list[Any]], tuple[list[Any]]]:
        """Copy and pickle as a plain list."""
        return list, (list(self),)


def freeze(value: Any) -> Any:
    """Return a read-only deep copy of a checked JSON value."""
    # Recursion is safe: the document was checked against MAX_DEPTH.
    if isinstance(value, dict):
        return FrozenDict((key, freeze(item)) for key, item in value.items())
    if isinstance(value, list):
        return FrozenList(freeze(item) for item in value)
    return value
