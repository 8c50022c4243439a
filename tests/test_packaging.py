"""The built wheel carries the built-in specs and the schema (not only a checkout)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the project's wheel once, without network (no build isolation)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--disable-pip-version-check",
            "-w",
            str(out),
        ],
        check=True,
        timeout=180,
    )
    (built,) = out.glob("statepoll-*.whl")
    return built


def test_wheel_contains_specs_schema_and_typing_markers(wheel: Path) -> None:
    """The wheel ships specs under statemachines/_specs, and py.typed for both packages."""
    names = set(zipfile.ZipFile(wheel).namelist())

    assert {
        "statemachines/_specs/statepoll.schema.json",
        "statemachines/_specs/mindee.json",
        "statemachines/_specs/oneclickdz.json",
        "statemachines/_specs/azure-translator.json",
        "statemachines/py.typed",
        "engine/py.typed",
    } <= names


def test_installed_wheel_loads_every_builtin_spec(wheel: Path, tmp_path: Path) -> None:
    """Unpacked alone, the wheel finds its own specs: loading never reads the checkout."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        import statemachines
        from statemachines import builtin_names, load_spec, specs_dir
        assert statemachines.__file__.startswith({str(site)!r}), statemachines.__file__
        assert str(specs_dir()).startswith({str(site)!r}), specs_dir()
        names = builtin_names()
        assert names == ("azure-translator", "mindee", "oneclickdz"), names
        for name in names:
            load_spec(name)
        print("ok", len(names))
        """
    )

    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok 3"
