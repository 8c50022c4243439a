"""The README's session against a simulator works as written; the outcomes are documented."""

from __future__ import annotations

import importlib
import io
import os
import re
import select
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.simulators import OUTCOMES, SIMULATORS

ROOT = Path(__file__).resolve().parents[2]


def _session_blocks() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("A session against a simulator", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return blocks[0], blocks[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_line(proc: subprocess.Popen[bytes], text: bytes, limit: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + limit
    while text not in seen:
        left = deadline - time.monotonic()
        ready = left > 0 and select.select([fd], [], [], left)[0]
        chunk = os.read(fd, 4096) if ready else b""
        if not chunk:
            pytest.fail(f"no {text!r} from the simulator: {seen!r}")
        seen += chunk
    return seen


def test_readme_session_runs_as_written(tmp_path: Path) -> None:
    """The README's two terminals, run as written (on a free port), end with a verified log."""
    simulate, session = _session_blocks()
    port = str(_free_port())
    env = {
        **os.environ,
        # The `statepoll` script of the environment running the tests.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    argv = shlex.split(simulate.replace("8001", port), comments=True)
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        _wait_for_line(server, b"listening on", limit=30)
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", session.replace("8001", port)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        server.terminate()
        server.communicate(timeout=30)

    assert argv[:2] == ["statepoll", "simulate"]
    assert done.returncode == 0, done.stderr
    assert '"state": "Processed"' in done.stdout
    assert "audit.jsonl: intact" in done.stdout
    assert (tmp_path / "sim-processed-invoice.pdf").read_bytes() == b"%PDF-1.4 demo"


def test_simulate_help_tells_how_to_get_each_outcome() -> None:
    """`simulate --help` lists every simulator's outcome triggers and the fault kinds."""
    out = io.StringIO()

    code = main(["simulate", "--help"], stdout=out)

    text = out.getvalue()
    assert code == 0
    assert set(OUTCOMES) == set(SIMULATORS)
    for service, lines in OUTCOMES.items():
        assert f"  {service}:" in text
        assert all(line in text for line in lines)
    assert "kinds: 429, 500, 502, 503, reset" in text


@pytest.mark.parametrize(
    ("service", "trigger"),
    [
        ("mindee", "sim-processed"),
        ("mindee", "sim-failed"),
        ("oneclickdz", "UNKNOWN_ERROR"),
        ("oneclickdz", "type_002"),
        ("azure-translator", "sim-validation"),
        ("azure-translator", "faildocs=K"),
    ],
)
def test_outcome_triggers_match_the_simulators_docs(service: str, trigger: str) -> None:
    """Each trigger the help names is one the simulator's own docstring and the README document."""
    module = importlib.import_module(SIMULATORS[service])
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())

    assert trigger in " ".join(OUTCOMES[service])
    assert trigger.split("=", maxsplit=1)[0] in (module.__doc__ or "")
    assert trigger.split("=", maxsplit=1)[0] in readme
