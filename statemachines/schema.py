"""Find the JSON Schema, build one validator, turn its errors into Problems."""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Final

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .errors import Problem, in_pointer_order
from .pointer import join_pointer

__all__ = ["SCHEMA_NAME", "schema_problems", "specs_dir", "validator"]

SCHEMA_NAME: Final = "statepoll.schema.json"
_REQUIRED: Final = re.compile(r"^'(.+)' is a required property$")


@cache
def specs_dir() -> Path:
    """Return the folder holding the built-in specs and the schema.

    A wheel ships them as ``statemachines/_specs``; a checkout has ``specs/``
    beside the package.

    Raises:
        FileNotFoundError: if neither exists (a broken install).
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "_specs", here.parent / "specs"):
        if (candidate / SCHEMA_NAME).is_file():
            return candidate
    msg = (
        "statepoll's specs folder is missing "
        f"(looked in {here / '_specs'} and {here.parent / 'specs'})"
    )
    raise FileNotFoundError(msg)


@cache
def validator() -> jsonschema.protocols.Validator:
    """Return the one validator of the spec schema (built once, format-checked)."""
    schema = json.loads((specs_dir() / SCHEMA_NAME).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema_problems(document: Any, file: str) -> list[Problem]:
    """Validate ``document`` and return every problem, sorted by pointer."""
    return in_pointer_order(
        _to_problem(error, file) for error in validator().iter_errors(document)
    )


def _to_problem(error: ValidationError, file: str) -> Problem:
    # oneOf/anyOf only say "not valid under any of the given schemas"; the
    # useful sentence is in the best sub-error. best_match([error]) descends
    # into the context by relevance; best_match(error.context) would prefer the
    # shallowest sub-error, the "wrong type" of the branch the author did not mean.
    if error.context:
        error = best_match([error]) or error
    path = list(error.absolute_path)
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))  # type: ignore[union-attr] # schema is an object here
        extras = sorted(k for k in error.instance if k not in allowed)
        if len(extras) == 1:
            path.append(extras[0])
            hint = _hint(extras[0], allowed)
            message = (
                f"unknown property {extras[0]!r}{hint} Allowed: {', '.join(allowed)}"
            )
    elif error.validator == "required":
        # jsonschema reports one error per missing property; its message is the
        # only place that names which.
        missing = _REQUIRED.match(error.message)
        if missing is not None:  # pragma: no branch - jsonschema always words it so
            path.append(missing.group(1))
            message = f"required property {missing.group(1)!r} is missing"
    return Problem(file, join_pointer(path), message)


def _hint(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ";"
