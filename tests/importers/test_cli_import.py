"""`statepoll import botocore`: usage errors are one line and exit 2; a run prints and writes."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from engine.cli import main


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["import", "botocore"], "the following arguments are required: --out"),
        (["import", "botocore", "--out", "x"], "name at least one service"),
        (["import", "botocore", "ecs", "--all", "--out", "x"], "not both"),
        (["import"], "the following arguments are required: SOURCE"),
        (["import", "openapi"], "invalid choice: 'openapi'"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(argv: list[str], message: str) -> None:
    """A wrong or missing argument is one line on stderr, exit 2, nothing written."""
    code, out, err = _run(*argv)

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert message in err


def test_an_unknown_service_is_one_line_with_a_hint(tmp_path: Path) -> None:
    """A service without waiters is named with a did-you-mean; exit 2, nothing written."""
    code, out, err = _run(
        "import", "botocore", "dynamodbb", "--out", str(tmp_path / "o")
    )

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "no waiters for a service 'dynamodbb'; did you mean 'dynamodb'?" in err
    assert not (tmp_path / "o").exists()


def test_out_must_be_a_directory(tmp_path: Path) -> None:
    """--out naming a file is refused before anything is converted."""
    target = tmp_path / "file"
    target.write_text("x")
    code, _, err = _run("import", "botocore", "ecs", "--out", str(target))

    assert code == 2
    assert err == f"statepoll: --out {target} is not a directory\n"


def test_without_botocore_the_command_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without botocore: one line naming the aws extra, exit 2."""
    monkeypatch.setitem(sys.modules, "engine.importers._botocore", None)
    code, _, err = _run("import", "botocore", "ecs", "--out", str(tmp_path))

    assert code == 2
    assert "pip install 'statepoll[aws]'" in err
    assert err.count("\n") == 1


def test_without_botocore_but_with_jmespath_the_command_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With jmespath but no botocore: one line naming the aws extra, exit 2, no traceback."""
    for name in ("botocore", "botocore.loaders"):
        monkeypatch.setitem(sys.modules, name, None)
    # Imported afresh, as in a process that has not imported the importer yet.
    for name in list(sys.modules):
        if name.startswith("engine.importers."):
            monkeypatch.delitem(sys.modules, name)
    code, out, err = _run("import", "botocore", "ecs", "--out", str(tmp_path))

    assert (code, out) == (2, "")
    assert "needs botocore (botocore is missing)" in err
    assert "pip install 'statepoll[aws]'" in err
    assert err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_services_are_converted_printed_and_summarised(tmp_path: Path) -> None:
    """Per service: converted of total and the file; what did not convert and why; a summary."""
    code, out, err = _run(
        "import", "botocore", "ecs", "rds", "ecs", "--out", str(tmp_path)
    )
    lines = out.splitlines()

    assert (code, err) == (0, "")
    assert (
        lines[0] == f"ecs: 8 of 9 waiters converted → {tmp_path / 'botocore-ecs.json'}"
    )
    assert "  services_stable: not converted: compares two fields" in lines
    assert any(
        line.startswith("rds: ") and line.endswith("botocore-rds.json")
        for line in lines
    )
    assert any(
        "validate only: its replies are XML (query protocol)" in line for line in lines
    )
    assert "waiters in 2 services; converted to specs that validate:" in out
    assert "       1 compares two fields" in lines
    written = json.loads((tmp_path / "botocore-ecs.json").read_text(encoding="utf-8"))
    assert "services_inactive" in written["lifecycles"]


def test_nothing_converted_writes_nothing_and_exits_1(tmp_path: Path) -> None:
    """A service none of whose waiters convert (CBOR only): no file, exit 1."""
    code, out, _ = _run("import", "botocore", "eventbridgev2", "--out", str(tmp_path))

    assert code == 1
    assert "eventbridgev2: 0 of 3 waiters converted\n" in out
    assert list(tmp_path.iterdir()) == []


def test_all_converts_every_service_with_waiters(tmp_path: Path) -> None:
    """--all: every service with waiters, and the summary's share."""
    code, out, _ = _run("import", "botocore", "--all", "--out", str(tmp_path))

    summary = [line for line in out.splitlines() if line.startswith("botocore ")]
    written = [line for line in out.splitlines() if " waiters converted → " in line]

    assert code == 0
    assert len(summary) == 1
    assert "converted to specs that validate:" in summary[0]
    assert len(written) == len(list(tmp_path.iterdir())) > 0
    assert (tmp_path / "botocore-dynamodb.json").is_file()


def test_every_api_version_writes_older_versions_beside_the_latest(
    tmp_path: Path,
) -> None:
    """--every-api-version: botocore-SERVICE-VERSION.json for each older version with waiters."""
    code, out, _ = _run(
        "import",
        "botocore",
        "elasticache",
        "--every-api-version",
        "--out",
        str(tmp_path),
    )
    written = sorted(p.name for p in tmp_path.iterdir())

    assert code == 0
    assert written[0] == "botocore-elasticache-2014-09-30.json"
    assert written[-1] == "botocore-elasticache.json"
    assert "elasticache 2014-09-30: " in out
    assert "in 1 services;" in out
