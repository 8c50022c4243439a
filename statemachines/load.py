"""Path or built-in name → JSON → schema → model → semantic checks → Spec.

This is the only module that reads spec files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import attrs

from ._build import build_spec
from ._document import document_problems, freeze, read_json
from .checks import check_spec
from .errors import Problem, SpecError, UnknownSpecError, at_most, in_pointer_order
from .schema import SCHEMA_NAME, schema_problems, specs_dir
from .spec import Spec

__all__ = [
    "builtin_names",
    "builtin_path",
    "content_hash",
    "load_builtin",
    "load_document",
    "load_spec",
]


def builtin_names() -> tuple[str, ...]:
    """Return the names of the built-in specs, sorted."""
    return tuple(
        sorted(p.stem for p in specs_dir().glob("*.json") if p.name != SCHEMA_NAME)
    )


def builtin_path(name: str) -> Path:
    """Return the file of built-in spec ``name``.

    Raises:
        UnknownSpecError: listing the built-in names.
    """
    path = specs_dir() / f"{name}.json"
    if name not in builtin_names():
        raise UnknownSpecError(name, builtin_names())
    return path


@cache
def load_builtin(name: str) -> Spec:
    """Load built-in spec ``name`` (cached: specs are immutable).

    Raises:
        UnknownSpecError: if there is no such built-in.
    """
    path = builtin_path(name)
    return _load_file(path, source=f"builtin:{name}", label=f"specs/{path.name}")


def load_spec(spec: str | os.PathLike[str]) -> Spec:
    """Load a spec from a file path or a built-in name, and check it.

    A string that names an existing file, or ends in ``.json``, is a path;
    anything else is a built-in name.

    Raises:
        SpecError: with every problem (file, JSON pointer, message).
        UnknownSpecError: for a name that is neither a file nor a built-in.
    """
    text = os.fspath(spec)
    path = Path(text)
    if path.is_file() or text.endswith(".json") or os.sep in text:
        return _load_file(path, source=str(path), label=str(path))
    return load_builtin(text)


def load_document(document: Mapping[str, Any], *, source: str = "<document>") -> Spec:
    """Check and build a spec from an already-parsed document.

    The document must hold JSON values only (dicts, lists, strings, finite
    numbers, booleans, None); the spec keeps a read-only copy as ``document``.

    Raises:
        SpecError: with every problem.
    """
    found = document_problems(document, source)
    return _check_and_build(document, found, source=source, label=source)


def content_hash(document: Any) -> str:
    """Return ``sha256:<hex>`` of the document's canonical JSON.

    Canonical: sorted keys, no insignificant whitespace, UTF-8; so reformatting
    a file does not change its hash, while any change of meaning does.
    """
    canonical = json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _load_file(path: Path, *, source: str, label: str) -> Spec:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        if os.sep not in str(path) and not str(path).endswith(".json"):
            raise UnknownSpecError(str(path), builtin_names()) from exc
        raise SpecError([Problem(label, "", "file not found")]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([Problem(label, "", f"cannot read: {exc}")]) from exc
    document, found = read_json(text, label)
    return _check_and_build(document, found, source=source, label=label)


def _check_and_build(
    document: Mapping[str, Any], found: list[Problem], *, source: str, label: str
) -> Spec:
    # The schema runs even when the raw document has problems, so that one run
    # reports them all; but a place already reported is not reported twice
    # (1e400 is "not a finite number", not also "greater than the maximum").
    problems = [*found, *_unshadowed(schema_problems(document, label), found)]
    if problems:
        raise SpecError(at_most(in_pointer_order(problems)))
    spec = build_spec(
        document,
        source=source,
        content_hash=content_hash(document),
        frozen=freeze(document),
    )
    problems = check_spec(spec, label)
    if any(p.severity == "error" for p in problems):
        raise SpecError(at_most(problems))
    return attrs.evolve(spec, warnings=tuple(problems)) if problems else spec


def _unshadowed(problems: list[Problem], found: list[Problem]) -> list[Problem]:
    """Drop the problems at or below a place ``found`` already reports."""
    places = {p.pointer for p in found}

    def shadowed(pointer: str) -> bool:
        # Walk up the pointer's parents: a set lookup each, so 100,000 problems
        # against 100,000 places stay linear.
        while pointer not in places:
            if not pointer:
                return False
            pointer = pointer.rpartition("/")[0]
        return True

    return [p for p in problems if not shadowed(p.pointer)] if places else problems
