"""Several `statepoll worker` processes share one store's jobs, and survive kill -9.

Real processes over real sockets: the three simulators serve on 127.0.0.1 (in
this process, so the tests can read what each service created), the workers
and submitters are `python -m engine …` processes, the stores a SQLite file
and a throwaway PostgreSQL database. What is checked is what a user counts
on: every job ends, once; no move is recorded twice; `audit verify` says
intact; a job the service created is never lost, and a submission whose fate
cannot be known is reported, never re-sent.
"""

from __future__ import annotations

import asyncio
import io
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import pytest

from engine import AsyncEngine, JobRef
from engine._core.state import End, JobState
from engine.cli import main
from engine.simulators import create_simulator, parse_faults, serving
from tests.engine.stores_util import all_jobs, store_records
from tests.integration.conftest import API_KEY, CRED_ENV

ROOT: Final = Path(__file__).resolve().parents[2]
#: Every duration 20 times shorter: a job lasts 0.1-2.5 s, a poll interval 0.25 s.
SCALE: Final = 0.05
ENV: Final = {**os.environ, **dict.fromkeys(CRED_ENV.values(), API_KEY)}
#: The longest any test here waits for its jobs to end.
LIMIT: Final = 90.0
PDF: Final = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
MODEL_ID: Final = "5a7e1d34-18c0-4a8e-bf4e-7f7a5d1f0c22"
GIFT_PRODUCT: Final = "5f0c0ffee0ddba11c0ffee01"
SOURCE: Final = "https://store.blob.core.windows.net/source"


@attrs.define
class Services:
    """The three simulators, served on 127.0.0.1 for the module."""

    urls: dict[str, str]
    #: The OneClickDZ simulator's own books (what it created, by ref and id).
    books: Any


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    """Serve the three simulators, 20 times faster, for the module."""
    apps = {
        name: create_simulator(name, seed=41, time_scale=SCALE, api_key=API_KEY)
        for name in CRED_ENV
    }
    with (
        serving(apps["mindee"]) as mindee,
        serving(apps["oneclickdz"]) as oneclickdz,
        serving(apps["azure-translator"]) as azure,
    ):
        urls = {
            "mindee": mindee.url,
            "oneclickdz": oneclickdz.url,
            "azure-translator": azure.url,
        }
        # FaultInjector -> _RequireToken -> the service's books.
        yield Services(urls, _books(apps["oneclickdz"]))


def _books(app: Any) -> Any:
    """The OneClickDZ simulator's service object (fault injector -> token check -> service)."""
    return app.app.service


@attrs.define
class Proc:
    """A `python -m engine` process whose output goes to files (a pipe could fill and block it)."""

    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        """What it printed so far."""
        return self.out.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        """What it logged so far."""
        return self.err.read_text(encoding="utf-8", errors="replace")

    def steps(self) -> int:
        """The steps it said it committed when it stopped."""
        found = re.search(r"stopped after (\d+) steps", self.stderr())
        assert found is not None, self.stderr()
        return int(found[1])


def _start(tmp: Path, name: str, *args: str) -> Proc:
    out, err = tmp / f"{name}.out", tmp / f"{name}.err"
    with out.open("wb") as o, err.open("wb") as e:
        popen = subprocess.Popen(
            [sys.executable, "-m", "engine", *args],
            stdout=o,
            stderr=e,
            env=ENV,
            cwd=ROOT,
        )
    return Proc(popen, out, err)


def _worker(tmp: Path, name: str, store: str, *extra: str) -> Proc:
    return _start(
        tmp, name, "worker", "--store", store, "--time-scale", str(SCALE), *extra
    )


def _stop(procs: Sequence[Proc]) -> None:
    """SIGTERM each process (that still runs) and wait: each must exit 0."""
    for p in procs:
        if p.popen.poll() is None:
            p.popen.send_signal(signal.SIGTERM)
    for p in procs:
        code = p.popen.wait(timeout=30)
        assert code == 0, (code, p.stderr()[-2000:])


def _kill(proc: Proc) -> None:
    """SIGKILL and reap (a zombie would still look alive to its successors)."""
    proc.popen.send_signal(signal.SIGKILL)
    proc.popen.wait(timeout=10)


@pytest.fixture
def reaper() -> Iterator[list[Proc]]:
    """Processes a test started: whatever still runs when it ends is killed."""
    started: list[Proc] = []
    yield started
    for p in started:
        if p.popen.poll() is None:
            p.popen.kill()
            p.popen.wait(timeout=10)


def _wait_until(
    check: Callable[[], bool], what: str, limit: float = LIMIT, *, every: float = 0.1
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    pytest.fail(f"not within {limit} s: {what}")


def _all_done(store: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        jobs = all_jobs(store)
        return len(jobs) >= count and all(job.done for job in jobs)

    return check


# -- the jobs ------------------------------------------------------------------------------


def _mixed(n: int) -> tuple[str, str, dict[str, Any]]:
    """Job ``n`` of a mixed workload: the three services, four lifecycles."""
    kind = n % 4
    if kind == 0:
        ending = "01" if n % 8 == 0 else "02"  # FULFILLED / REFUNDED
        inputs = {
            "plan_code": "PREPAID_MOBILIS",
            "MSSIDN": f"0661{n:04d}{ending}",
            "amount": 50,
        }
        return "oneclickdz", "mobile_topup", inputs
    if kind == 1:
        return (
            "oneclickdz",
            "gift_card",
            {"productId": GIFT_PRODUCT, "typeId": "type_001"},
        )
    if kind == 2:
        return "mindee", "inference", {"model_id": MODEL_ID, "file": PDF}
    source = {"sourceUrl": f"{SOURCE}?docs=3&faildocs=1", "language": "en"}
    targets = [
        {"targetUrl": "https://store.blob.core.windows.net/target-fr", "language": "fr"}
    ]
    return (
        "azure-translator",
        "batch",
        {"inputs": [{"source": source, "targets": targets, "storageType": "Folder"}]},
    )


def _enqueue(
    store: str, services: Services, count: int, *, kinds: int = 4
) -> list[JobRef]:
    """Enqueue ``count`` jobs of the first ``kinds`` kinds into ``store`` (no polling here)."""

    async def go() -> list[JobRef]:
        engine = AsyncEngine(
            store=store,
            base_urls=services.urls,
            env=ENV,
            time_scale=SCALE,
            take_over=False,
        )
        async with engine:
            return [
                await engine.enqueue(service, lifecycle, inputs)
                for service, lifecycle, inputs in (
                    _mixed(n % kinds + 4 * n) for n in range(count)
                )
            ]

    return asyncio.run(go())


# -- checks --------------------------------------------------------------------------------


def _verify(store: str) -> None:
    """`statepoll audit verify STORE` exits 0 and says intact."""
    out, err = io.StringIO(), io.StringIO()
    code = main(["audit", "verify", store], stdout=out, stderr=err)
    assert code == 0, (out.getvalue(), err.getvalue())
    assert "intact" in out.getvalue()


def _assert_once(store: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    """Each job of ``keys`` ended (completed) once; no move of a job or item is recorded twice."""
    records = store_records(store)
    completed = Counter(r["job"] for r in records if r["kind"] == "completed")
    moves = Counter(
        (r["job"], r["item_id"], r["from"], r["to"])
        for r in records
        if r["kind"] in ("transition", "item_transition")
    )
    assert sorted(completed) == sorted(keys)
    assert set(completed.values()) == {1}
    doubled = [move for move, n in moves.items() if n > 1]
    assert doubled == []
    jobs = {job.key: job for job in all_jobs(store)}
    assert {jobs[key].end for key in keys} == {End.COMPLETED}
    return records


# -- several workers -----------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_share_a_stores_jobs_and_each_ends_once(
    services: Services, store_url: str, workers: int, tmp_path: Path, reaper: list[Proc]
) -> None:
    """2 and 3 workers on one store (SQLite, PostgreSQL): every job ends once, verify intact."""
    procs = [
        _worker(tmp_path, f"w{i}", store_url, "--concurrency", "2")
        for i in range(workers)
    ]
    reaper.extend(procs)
    # Every worker is waiting on the store when the jobs arrive.
    for p in procs:
        _wait_until(lambda: " on " in p.stderr(), "the worker started", 90)  # noqa: B023 - called at once
    refs = _enqueue(store_url, services, 24)

    _wait_until(_all_done(store_url, len(refs)), "every job ended")
    _stop(procs)

    _assert_once(store_url, [ref.key for ref in refs])
    _verify(store_url)
    # They shared the work (which one claims a due job is a race, so not
    # every worker need have won one).
    assert sum(p.steps() > 0 for p in procs) >= 2, [p.steps() for p in procs]


def test_a_worker_killed_mid_run_has_its_jobs_taken_over(
    services: Services, store_url: str, tmp_path: Path, reaper: list[Proc]
) -> None:
    """Kill -9 one of three workers: after its 1 s lease the others finish; 0 lost, 0 twice."""
    refs = _enqueue(store_url, services, 30)
    procs = [
        _worker(tmp_path, f"w{i}", store_url, "--concurrency", "3", "--lease", "1")
        for i in range(3)
    ]
    reaper.extend(procs)
    victim = procs[0]
    # Killed once it has moved a few jobs (it holds others then, mid-step).
    _wait_until(lambda: victim.stdout().count(" -> ") >= 3, "the victim moved jobs", 90)
    _kill(victim)
    moved_by_victim = victim.stdout().count(" -> ")

    _wait_until(_all_done(store_url, len(refs)), "every job ended")
    _stop(procs[1:])

    records = _assert_once(store_url, [ref.key for ref in refs])
    _verify(store_url)
    writers = Counter(r["writer"] for r in records if r["kind"] == "transition")
    # The victim's committed moves are in the store under its name: its
    # commits were kept, and the survivors did the rest.
    assert len(writers) >= 2
    assert moved_by_victim >= 3


def test_a_paused_worker_cannot_commit_over_its_successor(
    store_url: str, tmp_path: Path, reaper: list[Proc]
) -> None:
    """SIGSTOP a worker past its lease, then SIGCONT: its late commits are refused."""
    # Every poll answered 0.4 s late: a worker stopped at any moment has
    # polls on the wire, whose answers it reads only when it wakes up.
    slow = create_simulator(
        "oneclickdz", seed=43, time_scale=SCALE, api_key=API_KEY,
        faults=parse_faults("slow,delay=0.4"),
    )  # fmt: skip
    with serving(slow) as handle:
        oneclickdz = Services({"oneclickdz": handle.url}, None)
        refs = _enqueue(store_url, oneclickdz, 12, kinds=2)
        paused = _worker(
            tmp_path, "paused", store_url, "--concurrency", "12", "--lease", "1"
        )
        reaper.append(paused)
        _wait_until(
            lambda: paused.stdout().count(" -> ") >= 2, "the worker moved jobs", 90
        )
        paused.popen.send_signal(signal.SIGSTOP)
        successor = _worker(
            tmp_path, "successor", store_url, "--concurrency", "12", "--lease", "1"
        )
        reaper.append(successor)
        try:
            # Past the paused worker's lease: the successor has its jobs.
            _wait_until(
                lambda: successor.stdout().count(" -> ") >= 2,
                "the successor moved jobs",
                # Generous: a loaded machine delays the successor's start and claims.
                90,
            )
        finally:
            paused.popen.send_signal(signal.SIGCONT)

        _wait_until(_all_done(store_url, len(refs)), "every job ended")
        _stop([paused, successor])

    _assert_once(store_url, [ref.key for ref in refs])
    _verify(store_url)
    # The paused worker woke up with answers to polls of jobs it no longer
    # held: each commit was refused, and it said so.
    assert "taken over by another driver" in paused.stderr()


# -- kill -9 during submission -------------------------------------------------------------


@pytest.fixture
def oneclickdz() -> Iterator[Services]:
    """A OneClickDZ simulator of this test's own: a full balance, books it alone writes."""
    app = create_simulator("oneclickdz", seed=47, time_scale=SCALE, api_key=API_KEY)
    with serving(app) as handle:
        yield Services({"oneclickdz": handle.url}, _books(app))


def _submit_and_kill(
    store: str,
    url: str,
    lifecycle: str,
    tmp: Path,
    *,
    rounds: int,
    count: int,
    seed: int,
) -> int:
    """Run a submitter (16 submits on the wire) and SIGKILL it at ``rounds`` seeded points."""
    rng = random.Random(seed)
    kills = 0
    for n in range(rounds):
        proc = _start_submitter(store, url, lifecycle, tmp, n, count)
        # After a seeded number of jobs enqueued: 16 are on the wire then.
        after = rng.randint(1, count // 4)
        try:
            _wait_until(
                lambda: proc.stdout().count("\n") > after,  # noqa: B023 - called at once
                "jobs enqueued",
                30,
                every=0.002,
            )
        finally:
            if proc.popen.poll() is None:
                _kill(proc)
                kills += 1
        assert proc.popen.returncode == -signal.SIGKILL, proc.stderr()[-3000:]
    return kills


def _start_submitter(  # noqa: PLR0917 - a submitter's whole command line
    store: str, url: str, lifecycle: str, tmp: Path, n: int, count: int
) -> Proc:
    out, err = tmp / f"submitter{n}.out", tmp / f"submitter{n}.err"
    args = [store, url, lifecycle, str(count), "16", str(SCALE)]
    with out.open("wb") as o, err.open("wb") as e:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tests.integration._submitter", *args],
            stdout=o, stderr=e, env=ENV, cwd=ROOT,
        )  # fmt: skip
    return Proc(popen, out, err)


def _resolve(store: str, tmp: Path, reaper: list[Proc]) -> list[JobState]:
    """A worker drives every job left behind to its end; return every job of the store."""
    worker = _worker(tmp, "recovery", store, "--concurrency", "16")
    reaper.append(worker)
    jobs: list[JobState] = []

    def done() -> bool:
        jobs[:] = all_jobs(store)
        return all(job.done for job in jobs)

    _wait_until(done, "every job ended")
    _stop([worker])
    return jobs


def test_kill_during_submission_loses_no_job_when_the_spec_has_a_lookup(
    oneclickdz: Services, store_url: str, tmp_path: Path, reaper: list[Proc]
) -> None:
    """5 kills with 16 top-ups on the wire: every top-up the service made is tracked, once."""
    kills = _submit_and_kill(
        store_url, oneclickdz.urls["oneclickdz"], "mobile_topup", tmp_path,
        rounds=5, count=200, seed=20261130,
    )  # fmt: skip
    jobs = _resolve(store_url, tmp_path, reaper)

    created = {ref: topup.id for ref, topup in oneclickdz.books.mobile_refs.items()}
    by_ref = Counter(job.client_ref for job in jobs)
    tracked = {job.client_ref: job for job in jobs if job.job_id}
    # 0 lost: every top-up the service created is a job of the store, with
    # its id, tracked to its end; none is there twice.
    assert kills == 5
    assert set(created) <= set(tracked)
    assert {ref: tracked[ref].job_id for ref in created} == created
    assert set(by_ref.values()) == {1}
    assert all(tracked[ref].end is End.COMPLETED for ref in created)
    # The rest never reached the service: each ended "safe to submit again".
    for job in jobs:
        if job.client_ref not in created:
            assert job.end is End.ERRORED
            assert job.error is not None
            assert job.error["code"] == "not_submitted"
    # The kills left submissions to resolve, and the lookup resolved them.
    lookups = [r for r in store_records(store_url) if r["kind"] == "lookup"]
    assert lookups
    assert len(lookups) == len({r["job"] for r in lookups})
    _verify(store_url)


def test_kill_during_submission_without_a_lookup_reports_unresolved_submissions(
    oneclickdz: Services, store_url: str, tmp_path: Path, reaper: list[Proc]
) -> None:
    """5 kills with 16 gift-card orders on the wire: none re-sent; the unknowable are reported."""
    kills = _submit_and_kill(
        store_url, oneclickdz.urls["oneclickdz"], "gift_card", tmp_path,
        rounds=5, count=60, seed=20261201,
    )  # fmt: skip
    jobs = _resolve(store_url, tmp_path, reaper)

    created = set(oneclickdz.books.gifts)
    tracked = {job.job_id for job in jobs if job.job_id}
    unresolved = [job for job in jobs if not job.job_id]
    assert kills == 5
    # Every order the store knows the service made, it tracked to its end.
    assert tracked <= created
    assert all(job.end is End.COMPLETED for job in jobs if job.job_id)
    # The others ended as unresolved submissions, for a person to check; at
    # most that many orders exist that no job names, and none was re-sent.
    assert unresolved
    assert {(job.end, job.reason) for job in unresolved} == {
        (End.ERRORED, "unresolved_submission")
    }
    assert all(
        job.error is not None and job.error["code"] == "unresolved"
        for job in unresolved
    )
    assert len(created - tracked) <= len(unresolved)
    kinds = Counter(r["kind"] for r in store_records(store_url))
    assert kinds["unresolved_submission"] == len(unresolved)
    _verify(store_url)
