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

from ._build import build_spec
from .checks import check_spec
from .errors import Problem, SpecError, UnknownSpecError
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

    Raises:
        SpecError: with every problem.
    """
    return _check_and_build(document, source=source, label=source)


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
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        msg = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise SpecError([Problem(label, "", msg)]) from exc
    except ValueError as exc:
        raise SpecError([Problem(label, "", f"invalid JSON: {exc}")]) from exc
    return _check_and_build(document, source=source, label=label)


def _refuse_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON does not, and a NaN interval
    # would crash the model's validators instead of being reported.
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def _check_and_build(document: Any, *, source: str, label: str) -> Spec:
    problems = schema_problems(document, label)
    if problems:
        raise SpecError(problems)
    spec = build_spec(document, source=source, content_hash=content_hash(document))
    problems = check_spec(spec, label)
    if problems:
        raise SpecError(problems)
    return spec
