"""botocore waiter acceptors (JMESPath) → statepoll conditions, for the subset waiters use.

Pure: the expression is parsed by the ``jmespath`` package (botocore's own
dependency, imported here only) and its syntax tree is translated node by
node. What translates:

- paths: ``a.b.c`` → ``/a/b/c``; ``a[0].b`` → ``/a/0/b``; ``a[].b``,
  ``a[*].b`` and ``a.*.b`` → ``/a/*/b``, at any depth of ``[]``;
- ``path`` compares the value with ``expected``; ``pathAll``/``pathAny``
  test every element (``match: all|any``), as botocore does;
- comparisons of a path with a literal (``==``, ``!=``, ``<``, ``<=``,
  ``>``, ``>=``), ``&&``, ``||``, ``!``;
- ``length(X)`` compared with 0 (a list: has an element or not; a string:
  empty or not; ``length(X || '')`` alike), ``length(X[?c])`` compared
  with 0 (an element passes ``c`` or none does) and ``length(X[?c]) ==
  length(X)`` (every element passes ``c``), where ``c`` tests one field of
  an element against literals.

Anything else raises :class:`UnconvertibleError` with a short reason, the key the
importer's summary groups by. Where JMESPath would raise (``length(null)``),
the translation reads a missing value as empty: a waiter the service answers
as documented never meets the difference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import jmespath.exceptions
import jmespath.parser

from statemachines import StatepollError
from statemachines.pointer import join_pointer

__all__ = ["STAR", "Resolver", "UnconvertibleError", "acceptor_condition", "plain"]

#: The wildcard token of a statepoll pointer (each element of an array).
STAR: Final = "*"

#: Maps a path's botocore member names to wire names and says the type of what
#: it names (botocore's shape types: "list", "string", "structure"…, or None).
Resolver = Callable[[tuple[str, ...]], tuple[tuple[str, ...], str | None]]

_MIRRORED: Final[Mapping[str, str]] = {
    "eq": "eq",
    "ne": "ne",
    "lt": "gt",
    "lte": "gte",
    "gt": "lt",
    "gte": "lte",
}
_NUMERIC: Final[Mapping[str, str]] = {"lt": "lt", "lte": "le", "gt": "gt", "gte": "ge"}
#: (operator, literal) → whether ``length(x) OP literal`` means "not empty".
_EMPTINESS: Final[Mapping[tuple[str, int], bool]] = {
    ("gt", 0): True,
    ("ne", 0): True,
    ("gte", 1): True,
    ("eq", 0): False,
    ("lte", 0): False,
    ("lt", 1): False,
}


class UnconvertibleError(StatepollError):
    """An acceptor the spec language cannot say; ``reason`` is the short, groupable why."""

    def __init__(self, reason: str) -> None:
        """Keep ``reason``, also the message."""
        super().__init__(reason)
        self.reason = reason


def plain(tokens: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    """Resolve a path without a service model: names as they are, type unknown."""
    return tokens, None


def acceptor_condition(
    matcher: str, argument: str, expected: Any, resolve: Resolver = plain
) -> dict[str, Any]:
    """Return the condition that holds when a ``path``/``pathAll``/``pathAny`` acceptor matches.

    Raises:
        UnconvertibleError: the expression or the matcher is outside the subset.
    """
    node = _parse(argument)
    tokens = _path(node)
    if matcher == "path":
        if tokens is None:
            test = _boolean(node, resolve)
            if isinstance(expected, bool):
                return test if expected else {"not": test}
            msg = "a boolean expression compared with a non-boolean"
            raise UnconvertibleError(msg)
        if STAR in tokens:
            # A projection is a list; botocore compares it with a scalar.
            msg = "path matcher on a projection (a list never equals a scalar)"
            raise UnconvertibleError(msg)
        return {"pointer": _pointer(tokens, resolve), "equals": _scalar(expected)}
    if matcher in {"pathAll", "pathAny"}:
        if tokens is None:
            msg = f"{matcher} over an expression that is not a path"
            raise UnconvertibleError(msg)
        if STAR not in tokens:
            # botocore iterates the value itself: it must be a list.
            tokens = (*tokens, STAR)
        return {
            "pointer": _pointer(tokens, resolve),
            "equals": _scalar(expected),
            "match": "all" if matcher == "pathAll" else "any",
        }
    msg = f"matcher {matcher!r}"
    raise UnconvertibleError(msg)


def _parse(argument: str) -> dict[str, Any]:
    try:
        parsed: dict[str, Any] = jmespath.parser.Parser().parse(argument).parsed
    except jmespath.exceptions.JMESPathError as exc:
        msg = "JMESPath expression does not parse"
        raise UnconvertibleError(msg) from exc
    return parsed


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    msg = "expected value is not a scalar"
    raise UnconvertibleError(msg)


def _pointer(tokens: tuple[str, ...], resolve: Resolver) -> str:
    wire, _ = resolve(tokens)
    return join_pointer(wire)


def _path(node: Mapping[str, Any]) -> tuple[str, ...] | None:  # noqa: PLR0911 - one return per node kind
    """Return the pointer tokens a path expression names (``STAR`` for projections), or None."""
    kind = node["type"]
    children: Sequence[Mapping[str, Any]] = node["children"]
    if kind == "field":
        return (str(node["value"]),)
    if kind == "identity":
        return ()
    if kind == "index":
        index = int(node["value"])
        if index < 0:
            msg = "a negative index"
            raise UnconvertibleError(msg)
        return (str(index),)
    if kind in {"subexpression", "index_expression"}:
        parts = [_path(child) for child in children]
        return _joined(parts)
    if kind == "flatten":
        inner = _path(children[0])
        return None if inner is None else (*inner, STAR)
    if kind in {"projection", "value_projection"}:
        left, right = _path(children[0]), _path(children[1])
        if left is None or right is None:
            return None
        # ``a[]`` is flatten(a) (already fanned out); ``a[*]`` and ``a.*`` are not.
        star = () if children[0]["type"] == "flatten" else (STAR,)
        return (*left, *star, *right)
    return None


def _joined(parts: Sequence[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    tokens: list[str] = []
    for part in parts:
        if part is None:
            return None
        tokens.extend(part)
    return tuple(tokens)


def _boolean(node: Mapping[str, Any], resolve: Resolver) -> dict[str, Any]:
    """Translate an expression that yields true or false."""
    kind = node["type"]
    children: Sequence[Mapping[str, Any]] = node["children"]
    if kind in {"and_expression", "or_expression"}:
        combine = "all" if kind == "and_expression" else "any"
        parts: list[dict[str, Any]] = []
        for child in children:
            test = _boolean(child, resolve)
            # a && b && c parses as (a && b) && c: one flat list reads better.
            parts.extend(test[combine] if set(test) == {combine} else [test])
        return {combine: parts}
    if kind == "not_expression":
        return {"not": _boolean(children[0], resolve)}
    if kind == "comparator":
        return _comparison(str(node["value"]), children[0], children[1], resolve)
    if kind == "function_expression":
        msg = f"function {node['value']}() outside a comparison"
        raise UnconvertibleError(msg)
    msg = "truthiness of a value (no comparison)"
    raise UnconvertibleError(msg)


def _comparison(
    op: str, left: Mapping[str, Any], right: Mapping[str, Any], resolve: Resolver
) -> dict[str, Any]:
    if left["type"] == "literal" and right["type"] != "literal":
        op, left, right = _MIRRORED[op], right, left
    if _is_length(left) and _is_length(right):
        return _every(op, left["children"][0], right["children"][0], resolve)
    if right["type"] != "literal":
        msg = "compares two fields"
        raise UnconvertibleError(msg)
    literal = right["value"]
    if _is_length(left):
        return _length(op, left["children"][0], literal, resolve)
    if left["type"] == "function_expression":
        msg = f"function {left['value']}()"
        raise UnconvertibleError(msg)
    tokens = _path(left)
    if tokens is None or STAR in tokens:
        msg = "compares a projection or an expression with a literal"
        raise UnconvertibleError(msg)
    return _value_test(_pointer(tokens, resolve), op, literal)


def _value_test(pointer: str, op: str, literal: Any) -> dict[str, Any]:
    if op in {"eq", "ne"}:
        test = {"pointer": pointer, "equals": _scalar(literal)}
        return test if op == "eq" else {"not": test}
    if isinstance(literal, bool) or not isinstance(literal, (int, float)):
        msg = "orders a value against a non-number"
        raise UnconvertibleError(msg)
    return {"pointer": pointer, _NUMERIC[op]: literal}


def _is_length(node: Mapping[str, Any]) -> bool:
    return bool(
        node["type"] == "function_expression"
        and node["value"] == "length"
        and len(node["children"]) == 1
    )


def _length(
    op: str, argument: Mapping[str, Any], literal: Any, resolve: Resolver
) -> dict[str, Any]:
    """``length(X) OP n``: only "empty" and "not empty" are sayable."""
    key = (op, literal if type(literal) is int else -1)
    if key not in _EMPTINESS:
        msg = "length compared with a number other than 0"
        raise UnconvertibleError(msg)
    nonempty = _EMPTINESS[key]
    if argument["type"] == "filter_projection":
        test = _filtered(argument, "any", resolve)
    else:
        test = _not_empty(argument, resolve)
    return test if nonempty else {"not": test}


def _not_empty(argument: Mapping[str, Any], resolve: Resolver) -> dict[str, Any]:
    children = argument["children"]
    if (
        argument["type"] == "or_expression"
        and children[1]["type"] == "literal"
        and children[1]["value"] in ("", [])
    ):
        # length(X || '') defaults a missing X to empty: the missing-is-empty reading.
        argument = children[0]
    tokens = _path(argument)
    if tokens is None:
        msg = "length() of an expression that is not a path"
        raise UnconvertibleError(msg)
    wire, kind = resolve(tokens)
    if kind == "string" and STAR not in tokens:
        pointer = join_pointer(wire)
        return {
            "all": [
                {"pointer": pointer, "exists": True},
                {"not": {"pointer": pointer, "equals": ""}},
            ]
        }
    if STAR not in tokens:
        wire, _ = resolve((*tokens, STAR))
    return {"pointer": join_pointer(wire), "exists": True, "match": "any"}


def _every(
    op: str, left: Mapping[str, Any], right: Mapping[str, Any], resolve: Resolver
) -> dict[str, Any]:
    """``length(X[?c]) == length(X)``: every element of X passes c."""
    if (
        op == "eq"
        and left["type"] == "filter_projection"
        and _path(left["children"][0]) is not None
        and _path(left["children"][0]) == _path(right)
    ):
        return _filtered(left, "all", resolve)
    msg = "compares two lengths other than length(X[?c]) == length(X)"
    raise UnconvertibleError(msg)


def _filtered(node: Mapping[str, Any], match: str, resolve: Resolver) -> dict[str, Any]:
    """``X[?c]``: ``c`` tests one field of each element against literals."""
    base, _, condition = node["children"]
    tokens = _path(base)
    if tokens is None:
        msg = "a filter over an expression that is not a path"
        raise UnconvertibleError(msg)
    field, values = _element_test(condition)
    pointer = _pointer((*tokens, STAR, *field), resolve)
    if len(values) == 1:
        return {"pointer": pointer, "equals": values[0], "match": match}
    return {"pointer": pointer, "in": list(values), "match": match}


def _element_test(node: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """Return (field, accepted values) of ``f == 'a'`` or ``f == 'a' || f == 'b'``."""
    if node["type"] == "or_expression":
        left = _element_test(node["children"][0])
        right = _element_test(node["children"][1])
        if left[0] == right[0]:
            return left[0], (*left[1], *right[1])
    elif node["type"] == "comparator" and node["value"] == "eq":
        field, literal = node["children"]
        if field["type"] == "literal":
            field, literal = literal, field
        tokens = _path(field)
        if literal["type"] == "literal" and tokens is not None and STAR not in tokens:
            return tokens, (_scalar(literal["value"]),)
    if _compares_fields(node):
        msg = "compares two fields"
        raise UnconvertibleError(msg)
    msg = "a filter other than one field equal to literals"
    raise UnconvertibleError(msg)


def _compares_fields(node: Mapping[str, Any]) -> bool:
    """Whether ``node`` holds a comparison of two non-literal operands (``a == b``)."""
    if node["type"] == "comparator" and all(
        child["type"] not in {"literal", "function_expression"}
        for child in node["children"]
    ):
        return True
    return any(_compares_fields(child) for child in node["children"])
