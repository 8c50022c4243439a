"""The command line's contract: DESIGN's verbs, exit codes, README coverage."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import EXIT, main
from engine.cli._jobs import SEVERITY
from tests.statemachines.helpers import job_lifecycle, minimal_spec

ROOT = Path(__file__).resolve().parents[2]
VERBS = (
    "specs",
    "validate",
    "diagram",
    "simulate",
    "run",
    "track",
    "resume",
    "enqueue",
    "worker",
    "demo",
    "audit",
)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_exit_codes_are_designs_table() -> None:
    """The exit codes are the ones DESIGN's command-line table promises."""
    assert EXIT == {
        "ok": 0,
        "outcome": 1,
        "usage": 2,
        "timeout": 3,
        "remote": 4,
        "interrupted": 130,
    }


def test_worst_job_order_follows_the_exit_codes() -> None:
    """`resume` exits as its worst job: severity rises with the exit code."""
    assert list(SEVERITY) == sorted(SEVERITY, key=EXIT.__getitem__)
    assert set(SEVERITY) == set(EXIT) - {"usage", "interrupted"}


def test_readme_run_row_lists_every_run_exit_code() -> None:
    """The README's `run` row names every exit code `run` can end with."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(
        line for line in readme.splitlines() if line.startswith("| `statepoll run ")
    )

    for code in (0, 1, 2, 3, 4, 130):
        assert f"{code} " in row.rsplit("|", 2)[1]


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help_and_is_in_the_readme(
    verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each verb of DESIGN's table exists, has --help text, and the README mentions it."""
    code = main([verb, "--help"])
    text = capsys.readouterr().out

    assert code == 0
    assert "usage: statepoll" in text
    assert f"statepoll {verb}" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_specs_lists_every_builtin_lifecycle() -> None:
    """`specs` lists the three built-in specs and their six lifecycles."""
    code, out, _ = _run("specs")

    assert code == 0
    for name in ("mindee", "oneclickdz", "azure-translator", "inference", "mobile_topup",
                 "internet_topup", "gift_card", "batch", "document"):  # fmt: skip
        assert name in out


def test_validate_is_zero_for_builtins_and_one_with_pointed_problems(
    tmp_path: Path,
) -> None:
    """`validate` exits 0 for valid specs, 1 with FILE: /pointer: message lines otherwise."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"spec_version": "1", "service": {"name": "x"}, "lifecycles": {}}')

    ok = _run("validate", "mindee", "oneclickdz", "azure-translator")
    code, out, _ = _run("validate", str(bad))

    assert ok[0] == 0
    assert code == 1
    assert (
        f"{bad}: /service/base_url: required property 'base_url' is missing"
        in out.splitlines()
    )


def test_unknown_spec_is_a_usage_error() -> None:
    """An unknown spec name exits 2 and lists the built-in names."""
    code, _, err = _run("diagram", "nope")

    assert code == 2
    assert "mindee" in err


def test_diagram_prints_mermaid() -> None:
    """`diagram` prints a Mermaid stateDiagram-v2 of the lifecycle."""
    code, out, _ = _run("diagram", "mindee", "inference")

    assert code == 0
    assert out.startswith("stateDiagram-v2\n")
    assert "    Processing --> Processed" in out


def test_python_dash_m_engine_is_the_command() -> None:
    """`python -m engine` runs the same command."""
    done = subprocess.run(
        [sys.executable, "-m", "engine", "specs"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0
    assert "azure-translator" in done.stdout


def test_cli_parts_never_import_the_cli_package() -> None:
    """No module of engine/cli imports engine.cli itself: no import circle (the demo's was one)."""
    for module in sorted((ROOT / "engine" / "cli").glob("_*.py")):
        source = module.read_text(encoding="utf-8")

        assert "from . import" not in source, module.name
        assert "from engine.cli import" not in source, module.name
        assert "import engine.cli\n" not in source, module.name


def test_specs_lists_each_lifecycles_inputs_with_type_place_and_need() -> None:
    """`specs` shows each lifecycle's inputs: name, type, where it goes, whether required."""
    code, out, _ = _run("specs", "oneclickdz")

    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert code == 0
    assert (
        "plan_code string body required Plan code from GET /v3/mobile/plans (e.g. PREPAID_MOBILIS)."
        in lines
    )
    assert "amount integer body optional Amount in DZD (dynamic plans only)." in lines
    assert "quantity integer body default 1 Number of cards (≥ 1)." in lines
    assert lines.count("inputs:") == 3


def test_validate_prints_a_specs_warnings_and_still_exits_0(tmp_path: Path) -> None:
    """A valid spec with a state no rule produces: its warning on stdout, exit 0."""
    document = minimal_spec()
    del job_lifecycle(document)["poll"]["observe"][0]["map"]["running"]
    path = tmp_path / "warned.json"
    path.write_text(json.dumps(document), encoding="utf-8")

    code, out, err = _run("validate", str(path))

    assert code == 0
    assert out.splitlines() == [
        (
            f"{path}: /lifecycles/job/states/Running: warning: no observe rule and no "
            "cancel leads to state 'Running', so a job only passes through it when a "
            "later state is observed"
        )
    ]
    assert f"{path}: ok" in err
