"""`statepoll enqueue` and `statepoll worker`: their output, their metrics, their mistakes."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.cli import main
from engine.simulators import create_simulator, serving
from engine.stores import shown_url
from tests.engine.stores_util import all_jobs

ROOT = Path(__file__).resolve().parents[2]
SCALE = "0.05"
TOPUP = ("--input", "plan_code=PREPAID_MOBILIS", "--input", "amount=50")


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def oneclickdz(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A OneClickDZ simulator on 127.0.0.1, and its token in the environment."""
    monkeypatch.setenv("ONECLICKDZ_ACCESS_TOKEN", "sim-key")
    app = create_simulator("oneclickdz", seed=3, time_scale=0.05, api_key="sim-key")
    with serving(app) as handle:
        yield handle.url


def test_enqueue_prints_the_key_and_leaves_the_job_to_a_worker(
    oneclickdz: str, store_url: str, tmp_path: Path
) -> None:
    """Enqueued jobs wait in the store; a worker process drives them and stops on SIGTERM."""
    keys = []
    for ending in ("01", "02"):
        code, out, err = _run(
            "enqueue", "oneclickdz", "mobile_topup", "--store", store_url,
            "--base-url", oneclickdz, "--time-scale", SCALE,
            *TOPUP, "--input", f"MSSIDN=06612345{ending}",
        )  # fmt: skip
        assert code == 0, err
        keys.append(out.strip())
        assert f"as {out.strip()}" in err
        assert "statepoll worker --store" in err
    waiting = {job.key: job for job in all_jobs(store_url)}
    assert sorted(waiting) == sorted(keys)
    assert all(not job.done and job.job_id for job in waiting.values())

    worker_out, worker_err = tmp_path / "worker.out", tmp_path / "worker.err"
    with worker_out.open("wb") as o, worker_err.open("wb") as e:
        worker = subprocess.Popen(
            [sys.executable, "-m", "engine", "worker", "--store", store_url,
             "--time-scale", SCALE, "--metrics-port", "0"],
            stdout=o, stderr=e, cwd=ROOT,
            env={**os.environ, "ONECLICKDZ_ACCESS_TOKEN": "sim-key"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            job.done for job in all_jobs(store_url)
        ):
            time.sleep(0.1)
        found = re.search(
            r"metrics on (http://127\.0\.0\.1:\d+/metrics)", worker_err.read_text()
        )
        assert found is not None, worker_err.read_text()
        metrics = httpx.get(found[1], timeout=10).text
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)

    printed, logged = worker_out.read_text(), worker_err.read_text()
    assert code == 0, logged
    assert {job.state for job in all_jobs(store_url)} == {"FULFILLED", "REFUNDED"}
    assert "completed: FULFILLED (success)" in printed
    assert "completed: REFUNDED (failure)" in printed
    steps = int(re.search(r"stopped after (\d+) steps", logged)[1])  # type: ignore[index]
    # One poll at least per top-up: on a loaded machine the worker may start
    # late enough that a top-up has ended in the service by its first poll.
    assert steps >= 2
    assert re.search(r"^statepoll_worker_steps_total \d+$", metrics, re.MULTILINE)
    assert 'statepoll_worker_claim_lateness_seconds{quantile="0.99"}' in metrics
    assert "# TYPE statepoll_worker_in_flight gauge" in metrics


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["worker"], "the following arguments are required: --store"),
        (["worker", "--store", "x.db", "--concurrency", "0"], "positive whole number"),
        (
            ["worker", "--store", "x.db", "--lease", "-1"],
            "a lease must be a positive number",
        ),
        (
            ["worker", "--store", "x.db", "--metrics-port", "70000"],
            "a port is 0 to 65535",
        ),
        (["enqueue", "oneclickdz", "mobile_topup"], "required: --store"),
        (["enqueue", "oneclickdz", "nope", "--store", "x.db"], "mobile_topup"),
        (["enqueue", "oneclickdz", "mobile_topup", "--store", "x.db"], "MSSIDN"),
        (
            [
                "enqueue",
                "oneclickdz",
                "gift_card",
                "--store",
                "x.db",
                "--base-url",
                "localhost",
            ],
            "is not an http(s) URL",
        ),
    ],
)
def test_a_wrong_argument_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Usage mistakes of enqueue and worker: one line on stderr, exit 2, nothing created."""
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(*argv)

    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


def test_a_store_that_cannot_be_reached_names_it_without_its_password() -> None:
    """A PostgreSQL store that is not there: exit 2, its URL shown without the password."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{port}/jobs"

    code, _, err = _run("worker", "--store", url)

    assert code == 2
    assert "s3cret-pw" not in err
    assert f"postgresql://app@127.0.0.1:{port}/jobs" in err


def test_enqueue_a_service_refuses_is_exit_4(oneclickdz: str, tmp_path: Path) -> None:
    """A submission the service refuses (a bad number): exit 4, the job ended, not left waiting."""
    store = str(tmp_path / "jobs.db")
    code, out, err = _run(
        "enqueue", "oneclickdz", "mobile_topup", "--store", store,
        "--base-url", oneclickdz, *TOPUP, "--input", "MSSIDN=12345",
    )  # fmt: skip

    assert code == 4
    assert out == ""
    assert "MSSIDN" in err
    assert all(job.done for job in all_jobs(store))


def test_worker_metrics_port_in_use_is_a_usage_error(tmp_path: Path) -> None:
    """--metrics-port on a busy port: one line, exit 2."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = _run(
            "worker", "--store", str(tmp_path / "jobs.db"), "--metrics-port", str(port)
        )

    assert code == 2
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1" in err


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:pw@db:5432/jobs", "postgresql://app@db:5432/jobs"),
        ("postgresql://app@db/jobs", "postgresql://app@db/jobs"),
        ("postgresql://u:p@ss@db/jobs", "postgresql://u@db/jobs"),
        ("sqlite:///jobs.db", "sqlite:///jobs.db"),
        ("jobs.db", "jobs.db"),
    ],
)
def test_store_urls_are_shown_without_a_password(url: str, shown: str) -> None:
    """shown_url drops the password, and only it."""
    assert shown_url(url) == shown
