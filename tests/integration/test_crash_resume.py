"""An engine killed with SIGKILL at any moment resumes without losing or repeating a transition."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.audit import verify_log
from engine.stores._sqlite import read_sqlite_records

SCALE = "0.0005"  # OneClickDZ's 1-12 h UNKNOWN_ERROR resolves in 2-22 s


def _statepoll(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def simulator() -> Iterator[str]:
    """A OneClickDZ simulator in its own process, so killing the engine keeps its jobs."""
    proc = _statepoll(
        "simulate", "oneclickdz", "--port", "0", "--seed", "5", "--time-scale", SCALE
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.split(" on ", 1)[1].split()[0]
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


def _wait_for_submission(
    audit: Path, proc: subprocess.Popen[str], limit: float
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if audit.exists() and b'"submitted"' in audit.read_bytes():
            return
        time.sleep(0.01)


def _stored(store: Path) -> list[dict[str, object]]:
    """The store's own audit records: the log of a store's jobs."""
    return [dict(r) for r in read_sqlite_records(store)]


def test_sigkill_at_random_points_then_resume_loses_and_repeats_nothing(
    simulator: str, tmp_path: Path
) -> None:
    """Kill run/resume at random points (bounded), resume to the end: one record a move."""
    audit = tmp_path / "audit.jsonl"
    store = tmp_path / "jobs.db"
    env = {"ONECLICKDZ_ACCESS_TOKEN": "sim-key"}
    rng = random.Random(20261122)
    # MSSIDN ending 03: PENDING -> HANDLING -> UNKNOWN_ERROR -> (hours later) FULFILLED.
    run = _statepoll(
        "run", "oneclickdz", "mobile_topup", "--base-url", simulator,
        "--input", "plan_code=PREPAID_MOBILIS", "--input", "MSSIDN=0661234503",
        "--input", "amount=300",
        "--audit", str(audit), "--store", str(store), "--time-scale", SCALE,
        env=env,
    )  # fmt: skip
    _wait_for_submission(audit, run, limit=20)
    kills = 0
    proc = run
    for _ in range(4):
        time.sleep(rng.uniform(0.05, 1.5))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        kills += 1
        proc = _statepoll(
            "resume",
            "--store",
            str(store),
            "--audit",
            str(audit),
            "--time-scale",
            SCALE,
            env=env,
        )
    out, err = proc.communicate(timeout=90)

    assert proc.returncode == 0, (out, err)
    assert kills >= 1
    # The JSON Lines copy is a sound chain (it may lack the last records of a
    # process killed between its store commit and the copy); the store's own
    # audit table is the log, and has every move exactly once.
    assert verify_log(audit) == []
    records = _stored(store)
    moves = [(r["from"], r["to"]) for r in records if r["kind"] == "transition"]
    assert Counter(moves) == Counter(
        {
            ("PENDING", "HANDLING"): 1,
            ("HANDLING", "UNKNOWN_ERROR"): 1,
            ("UNKNOWN_ERROR", "FULFILLED"): 1,
        }
    )
    assert [r["kind"] for r in records].count("completed") == 1
    assert json.loads(json.dumps(records[-1]))["kind"] == "completed"
