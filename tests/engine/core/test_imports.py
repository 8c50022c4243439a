"""The job core is pure: no module under engine/_core imports I/O, a loop or a driver."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import engine._core

CORE = Path(engine._core.__file__).parent
#: What the core must not import, directly or through what it imports.
FORBIDDEN = (
    "asyncio",
    "httpx",
    "sqlite3",
    "time",
    "socket",
    "aiohttp",
    "engine._remote",
    "engine._engine",
    "engine.stores",
    "engine.audit",
)


def _is_forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _imports(path: Path, package: str) -> set[str]:
    """Return the absolute names ``path`` (in ``package``) imports.

    ``from x import y`` gives both ``x`` and ``x.y``: ``y`` may be a module.
    Imports under ``if TYPE_CHECKING:`` are skipped: they never run.
    """
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # read by type checkers only, never imported at run time
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


CORE_FILES = sorted(CORE.rglob("*.py"))


def _package_of(path: Path) -> str:
    """Return the package a core file's relative imports start from."""
    return ".".join(["engine", *path.parent.relative_to(CORE.parent).parts])


def test_the_core_has_modules_to_check() -> None:
    """The scan sees the core's modules (an empty glob would pass anything)."""
    assert _package_of(CORE / "step.py") == "engine._core"
    assert {p.name for p in CORE_FILES} >= {
        "step.py",
        "timing.py",
        "wire.py",
        "state.py",
    }


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_no_core_module_imports_io_or_a_driver_directly(path: Path) -> None:
    """No import statement in a core module names a forbidden module."""
    assert (
        sorted(n for n in _imports(path, _package_of(path)) if _is_forbidden(n)) == []
    )


def test_the_direct_scan_catches_relative_and_from_imports(tmp_path: Path) -> None:
    """The checker itself sees 'from .. import _engine' and 'from time import x'."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from .. import _engine\nfrom time import monotonic\nimport asyncio.tasks\n",
        encoding="utf-8",
    )

    assert sorted(n for n in _imports(sample, "engine._core") if _is_forbidden(n)) == [
        "asyncio.tasks",
        "engine._engine",
        "time",
        "time.monotonic",
    ]


_PROBE = """
import builtins, json, sys

before = set(sys.modules)
importers = {}
real = builtins.__import__


def spy(name, globals=None, locals=None, fromlist=(), level=0):
    # Every import statement, even of a module already loaded: who asked for what.
    if level == 0:
        importers.setdefault(name, set()).add((globals or {}).get("__name__", "?"))
    return real(name, globals, locals, fromlist, level)


builtins.__import__ = spy
import engine._core.step
builtins.__import__ = real
print(json.dumps({
    "loaded": sorted(set(sys.modules) - before),
    "importers": {k: sorted(v) for k, v in importers.items()},
}))
"""


@attrs.frozen
class Probe:
    """What importing the core did in a fresh interpreter."""

    #: Modules it added to ``sys.modules``.
    loaded: list[str]
    #: Module name -> the modules whose import statements named it.
    importers: dict[str, list[str]]

    def who_imports(self, module: str) -> list[str]:
        """Return the modules that import ``module`` or one of its submodules."""
        return sorted(
            {
                who
                for name, whos in self.importers.items()
                if name == module or name.startswith(module + ".")
                for who in whos
            }
        )


@pytest.fixture(scope="module")
def probe() -> Probe:
    """Import engine._core.step in a fresh interpreter and report what it loaded."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    data = json.loads(out)
    return Probe(loaded=data["loaded"], importers=data["importers"])


@pytest.mark.parametrize(
    "module",
    [
        m
        for m in FORBIDDEN
        # The import machinery (zipimport) loads time before any user code:
        # its absence cannot be observed in sys.modules (see the next test).
        if m != "time"
    ],
)
def test_importing_the_core_loads_no_io_module_transitively(
    probe: Probe, module: str
) -> None:
    """Importing engine._core.step loads none of the forbidden modules, however indirectly."""
    loaded = [m for m in probe.loaded if m == module or m.startswith(module + ".")]

    assert loaded == [], f"{module} imported by {probe.who_imports(module)}"


def test_no_project_module_the_core_loads_imports_time(probe: Probe) -> None:
    """The time module is preloaded, so no engine or statemachines module may ask for it."""
    ours = [
        who
        for who in probe.who_imports("time")
        if who.split(".")[0] in {"engine", "statemachines"}
    ]

    assert ours == []


def test_the_probe_sees_what_the_core_loads(probe: Probe) -> None:
    """The probe is live: it reports the core's modules and who imports what."""
    assert {"engine._core.step", "statemachines"} <= set(probe.loaded)
    assert "engine._core.step" in probe.who_imports("engine._core")
