"""`run`, `track` and `resume` against a Mindee simulator on 127.0.0.1.

Timeouts leave the job running and say how to pick it up again; Ctrl-C exits
130 and leaves the audit log verifying and the job resumable; retries are on
the console; resume says what it resumes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine._core.state import JobState, Phase
from engine.cli import main
from engine.simulators import create_simulator, parse_faults, serving
from engine.stores import unfinished_jobs
from tests.engine.stores_util import make_store

KEY = "sim-key"
KEY_ENV = "MINDEE_V2_API_KEY"
MODEL = "model_id=5a7e1d34-18c0-4a8e-bf4e-7f7a5d1f0c22"
#: The engine's time scale: Mindee's 3 s first poll comes after 0.15 s, then every 50 ms.
FAST = "0.05"

#: Ctrl-C as a terminal delivers it: a parent shell may have set SIGINT to
#: "ignore" for background jobs, and Python keeps an inherited "ignore".
_WITH_CTRL_C = (
    "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from engine.cli import console_main; console_main()"
)


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


class _Clock:
    """The simulator's clock, which a test moves on (its jobs end when the test says)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.ahead


@contextlib.contextmanager
def _mindee(
    *, seed: int, scale: float, faults: str = "", clock: _Clock | None = None
) -> Iterator[str]:
    app = create_simulator(
        "mindee",
        seed=seed,
        time_scale=scale,
        api_key=KEY,
        faults=parse_faults(faults),
        **({"clock": clock} if clock else {}),
    )
    with serving(app) as handle:
        yield handle.url


@pytest.fixture(scope="module")
def quick() -> Iterator[str]:
    """A Mindee simulator whose jobs stay Processing 0.4-1.2 s."""
    with _mindee(seed=11, scale=0.2) as url:
        yield url


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    """A file whose name makes the simulator's job end Processed."""
    path = tmp_path / "sim-processed-invoice.pdf"
    path.write_bytes(b"%PDF-1.4 test")
    return path


def _run(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _submit_args(url: str, pdf: Path) -> list[str | Path]:
    return ["run", "mindee", "inference", "--base-url", url,
            "--input", MODEL, "--file", pdf, "--time-scale", FAST]  # fmt: skip


def _stamp(line: str) -> float:
    found = re.match(r"\[\s*([\d.]+)s\]", line)
    assert found, line
    return float(found.group(1))


# -- run --timeout ---------------------------------------------------------------------------


def test_run_timeout_with_store_exits_3_and_resume_finishes_the_job(
    quick: str, pdf: Path, tmp_path: Path
) -> None:
    """`run --timeout` with --store exits 3 and prints a resume command that ends the job."""
    store, audit = tmp_path / "jobs.db", tmp_path / "audit.jsonl"

    code, _, err = _run(*_submit_args(quick, pdf), "--store", store, "--audit", audit,
                        "--timeout", "0.2")  # fmt: skip
    command = err.rsplit("resume with: ", 1)[-1].strip()
    resumed = _run(*shlex.split(command)[1:])

    assert code == 3
    assert len(err.splitlines()) == 1
    assert "is still running (in Processing) and stays in the store" in err
    assert (
        command
        == f"statepoll resume --store {store} --audit {audit} --time-scale {FAST}"
    )
    assert resumed[0] == 0, resumed
    assert "Processed (success)" in resumed[1]
    assert _run("audit", "verify", audit)[0] == 0


def test_run_timeout_without_store_says_how_to_track_it_again(
    quick: str, pdf: Path
) -> None:
    """`run --timeout` without --store exits 3; the printed track command ends the job."""
    code, _, err = _run(*_submit_args(quick, pdf), "--timeout", "0.2")
    command = err.rsplit("track it again with: ", 1)[-1].strip()
    tracked = _run(*shlex.split(command)[1:])

    assert code == 3
    assert "was left running on the service (in Processing)" in err
    assert command.startswith("statepoll track mindee inference ")
    assert f"--state Processing --base-url {quick}" in command
    assert tracked[0] == 0, tracked
    assert "Processed (success)" in tracked[1]


def test_run_timeout_with_json_prints_the_job_still_running(
    quick: str, pdf: Path
) -> None:
    """`run --timeout --json` prints the job's state and a WaitTimeout error as JSON."""
    code, out, _ = _run(*_submit_args(quick, pdf), "--timeout", "0.2", "--json")

    assert code == 3
    assert '"state": "Processing"' in out
    assert '"type": "WaitTimeout"' in out


# -- resume ----------------------------------------------------------------------------------


def test_resume_says_what_it_resumes_before_driving(
    quick: str, pdf: Path, tmp_path: Path
) -> None:
    """`resume` prints one line per job (service/lifecycle, id, state, due) before its polls."""
    store = tmp_path / "jobs.db"
    _run(*_submit_args(quick, pdf), "--store", store, "--timeout", "0.2")
    (stored,) = open_store_items(store)

    code, out, _ = _run("resume", "--store", store, "--time-scale", FAST)

    lines = out.splitlines()
    assert code == 0
    assert re.search(
        rf"resuming mindee/inference job {stored.job_id}: Processing, due (in [\d.]+s|now)$",
        lines[0],
    )
    assert "completed: Processed" in out


def open_store_items(path: Path) -> list[JobState]:
    """Every unfinished job of the store at ``path``."""
    return unfinished_jobs(path)


def test_resume_of_an_empty_store_says_so(tmp_path: Path) -> None:
    """`resume` with nothing stored exits 0 and says there is nothing to resume."""
    store = tmp_path / "jobs.db"
    make_store(store)

    code, _, err = _run("resume", "--store", store)

    assert code == 0
    assert err == "statepoll: nothing to resume\n"


def test_resume_names_a_stored_job_it_cannot_resume(tmp_path: Path) -> None:
    """A stored job whose spec cannot be loaded is named, not silently skipped."""
    path = tmp_path / "jobs.db"
    gone = JobState(
        key="j1",
        service="ghost",
        lifecycle="run",
        spec_hash="sha256:0",
        spec_source=str(tmp_path / "gone.json"),
        job_id="g-1",
        state="Busy",
        phase=Phase.POLL,
    )
    make_store(path, jobs=[gone])

    code, _, err = _run("resume", "--store", path)

    assert code == 0
    assert "statepoll: not resuming ghost/run job g-1:" in err
    assert "its spec cannot be loaded" in err


def test_resume_timeout_exits_3_and_keeps_the_jobs(
    quick: str, pdf: Path, tmp_path: Path
) -> None:
    """`resume --timeout` exits 3 when a job is still running; it stays in the store."""
    store = tmp_path / "jobs.db"
    _run(*_submit_args(quick, pdf), "--store", store, "--timeout", "0.2")

    code, _, err = _run(
        "resume", "--store", store, "--timeout", "0.05", "--time-scale", "1"
    )

    assert code == 3
    assert (
        "1 job(s) still running stay in the store — resume with: statepoll resume"
        in err
    )
    assert len(open_store_items(store)) == 1


# -- retries on the console ----------------------------------------------------------------


def test_track_against_a_dead_port_prints_retry_lines_within_a_second() -> None:
    """Polls of a port nothing listens on show `retrying` lines at once, not silence."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"

        code, out, _ = _run("track", "mindee", "inference", "job-1", "--base-url", url,
                            "--timeout", "1", "--time-scale", "0.01")  # fmt: skip

    retries = [
        line for line in out.splitlines() if "retrying after a transport error" in line
    ]
    assert code == 3
    assert retries
    assert _stamp(retries[0]) < 1.0
    assert re.search(r"\(retry 1/\d+, next in [\d.]+s\)$", retries[0])


def test_run_against_a_dead_port_fails_at_once_with_one_line(pdf: Path) -> None:
    """A submit to a port nothing listens on exits 4 within seconds, with one line."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        started = time.monotonic()

        code, _, err = _run(*_submit_args(url, pdf))

    assert code == 4
    assert time.monotonic() - started < 5
    assert len(err.splitlines()) == 1
    assert err.startswith("statepoll: ")


def test_run_shows_each_retry_of_a_failing_poll(pdf: Path) -> None:
    """Polls answered 503 show one `retrying` line each, with the status, then the job ends."""
    with _mindee(seed=3, scale=0.2, faults="503@1+2,retry-after=0") as url:
        code, out, _ = _run(*_submit_args(url, pdf))

    retries = [line for line in out.splitlines() if "retrying" in line]
    assert code == 0
    assert len(retries) == 2
    assert "retrying after a status error: HTTP 503" in retries[0]
    assert "(retry 1/" in retries[0]
    assert "(retry 2/" in retries[1]


# -- Ctrl-C ------------------------------------------------------------------------------------


def _start(*argv: str | Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _WITH_CTRL_C, *(str(a) for a in argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, KEY_ENV: KEY},
    )


def _wait_for(proc: subprocess.Popen[bytes], text: str, limit: float = 30.0) -> None:
    """Read ``proc``'s stdout until ``text`` shows (bounded); stop ``proc`` if it does not."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + limit
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        ready = left > 0 and select.select([fd], [], [], left)[0]
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            proc.kill()
            proc.communicate(timeout=10)
            pytest.fail(f"{text!r} never came; stdout: {seen.decode()!r}")
        seen += chunk


def _interrupt(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err.decode()


def test_ctrl_c_during_run_exits_130_and_leaves_a_resumable_job(
    pdf: Path, tmp_path: Path
) -> None:
    """Ctrl-C in `run` exits 130 with the resume command; the log verifies; resume ends the job."""
    store, audit = tmp_path / "jobs.db", tmp_path / "audit.jsonl"
    clock = _Clock()
    with _mindee(seed=3, scale=1.0, clock=clock) as url:  # Processing until it moves
        run = _start(*_submit_args(url, pdf), "--store", store, "--audit", audit)
        _wait_for(run, "submitted in Processing")
        code, err = _interrupt(run)
        verified = _run("audit", "verify", audit)
        clock.ahead = 60.0
        resumed = _run(
            "resume", "--store", store, "--audit", audit, "--time-scale", FAST
        )

    assert code == 130
    assert err.splitlines() == [
        (
            f"statepoll: interrupted; 1 job(s) left in the store — resume with: "
            f"statepoll resume --store {store} --audit {audit} --time-scale {FAST}"
        )
    ]
    assert verified[0] == 0, verified
    assert resumed[0] == 0, resumed
    assert "Processed (success)" in resumed[1]
    assert _run("audit", "verify", audit)[0] == 0


def test_ctrl_c_during_resume_exits_130_and_the_job_resumes_again(
    pdf: Path, tmp_path: Path
) -> None:
    """Ctrl-C in `resume` exits 130 with one line; the job is still resumable and ends."""
    store, audit = tmp_path / "jobs.db", tmp_path / "audit.jsonl"
    clock = _Clock()
    with _mindee(seed=7, scale=1.0, clock=clock) as url:  # Processing until it moves
        _run(
            *_submit_args(url, pdf),
            "--store",
            store,
            "--audit",
            audit,
            "--timeout",
            "0.1",
        )
        resume = _start(
            "resume", "--store", store, "--audit", audit, "--time-scale", FAST
        )
        _wait_for(resume, "resuming mindee/inference job")
        code, err = _interrupt(resume)
        clock.ahead = 60.0
        resumed = _run(
            "resume", "--store", store, "--audit", audit, "--time-scale", FAST
        )

    assert code == 130
    assert err.splitlines() == [
        (
            f"statepoll: interrupted; 1 job(s) left in the store — resume with: "
            f"statepoll resume --store {store} --audit {audit} --time-scale {FAST}"
        )
    ]
    assert resumed[0] == 0, resumed
    assert "Processed (success)" in resumed[1]
    assert _run("audit", "verify", audit)[0] == 0


def test_ctrl_c_during_run_without_store_says_how_to_track_again(pdf: Path) -> None:
    """Ctrl-C in `run` without --store exits 130, naming the job and the track command."""
    with _mindee(seed=3, scale=1.0) as url:
        run = _start(*_submit_args(url, pdf))
        _wait_for(run, "submitted in Processing")
        code, err = _interrupt(run)

    assert code == 130
    (line,) = err.splitlines()
    assert re.fullmatch(
        r"statepoll: interrupted; mindee/inference job \S+ left running on the service — "
        r"track it again with: statepoll track mindee inference \S+ --state Processing "
        rf"--base-url {re.escape(url)} --time-scale {FAST}",
        line,
    )


def test_ctrl_c_during_demo_exits_130_with_one_line(tmp_path: Path) -> None:
    """Ctrl-C in `demo` exits 130 with one line, and its audit log verifies."""
    audit, store = tmp_path / "audit.jsonl", tmp_path / "jobs.db"
    demo = _start("demo", "--audit", audit, "--store", store)
    _wait_for(demo, "submitted in")

    code, err = _interrupt(demo)

    assert code == 130
    (line,) = err.splitlines()
    assert line.startswith("statepoll demo: interrupted; ")
    assert "cannot be resumed (their simulators stopped with the demo)" in line
    assert _run("audit", "verify", audit)[0] == 0
