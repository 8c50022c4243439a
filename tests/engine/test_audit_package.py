"""The audit package's layout: its public names and the size of its modules."""

from __future__ import annotations

import types
from pathlib import Path

import engine.audit

PACKAGE = Path(engine.audit.__file__).parent


def test_all_lists_every_public_name_sorted() -> None:
    """engine.audit.__all__ is sorted and lists every public, non-module attribute."""
    public = {
        name
        for name, value in vars(engine.audit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }

    assert engine.audit.__all__ == sorted(public)


def test_no_audit_module_is_longer_than_a_screenful_or_four() -> None:
    """Each module of the audit package stays under 400 lines (one responsibility each)."""
    lengths = {
        path.name: len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.glob("*.py")
    }

    assert len(lengths) > 1
    assert {name: n for name, n in lengths.items() if n > 400} == {}


def test_modules_are_private_and_the_engine_imports_still_resolve() -> None:
    """Every submodule is underscored; the names the engine imports stay in engine.audit."""
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")

    assert all(name.startswith("_") for name in modules)
    for name in ("AuditEntry", "AuditSink", "Redactor", "open_audit", "read_records"):
        assert name in engine.audit.__all__
