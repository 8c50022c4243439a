"""Job stores and workers: claim-and-commit throughput, a million stored jobs, the cost of leases.

Every poll is answered by ``_server.py`` (the cheap keep-alive server: every
GET gets ``{"status":"Running"}``; its own process, pinned to the second CPU),
so that the jobs never end and every poll is a no-change step. PostgreSQL is a
throwaway cluster started by ``tests/postgres.py`` (``running_cluster()``:
initdb in /dev/shm, 127.0.0.1 only, fsync and synchronous_commit off), never
a system server; each run gets a fresh database. Each driver runs in its own
process (``_stores_child.py``), on either CPU, through the public API only:
``Worker(store).run()`` or ``AsyncEngine``; jobs are adopted into the store
beforehand by ``AsyncEngine.track_many`` in a process of their own. The
workload's spec (``_stores_proc.SPEC``) has one mean delay, set through
``time_scale``, jittered by ±50 % so that jobs spread out.

Three parts, printed side by side in one run:

1. Claim-and-commit throughput on PostgreSQL: N jobs due every 0.2 s (far more
   than the workers can poll: they are never idle), driven by 1 and by 2
   worker processes, in interleaved rounds. Polls/s, the ratio 2/1 (target
   >= 1.7x), the CPU per poll of the workers, of PostgreSQL (the postmaster
   and every backend) and of the server, PostgreSQL's transactions per
   poll, and then one worker's profile (cProfile): the share of its time
   spent inside the store's calls, and the split by package.
2. A million jobs in PostgreSQL: how long ``track_many`` takes to adopt them
   (jobs/s), then one worker driving the due ones for a while, their due
   times spread evenly (``--rate`` polls/s, which the worker keeps up with):
   its RSS over time (target <= 200 MB, flat) and the p99 lateness of its
   claims (``Worker.lateness``: seconds past due when claimed; target
   <= 100 ms).
3. The cost of leases and of the store: the same workload (N jobs polled
   every ``--b3-interval`` s on average) through (a) ``AsyncEngine`` without
   a store, (b) ``AsyncEngine`` with a SQLite store, (c) a ``Worker`` on
   SQLite, (d) a ``Worker`` on PostgreSQL: polls/s and CPU per poll (the
   driver's, and the database's), with ratios to (a).

Before each run the script waits (at most ``--max-wait`` s) until other
processes leave the machine quiet; the CPU other processes used during each
window is reported as noise (the machine is shared).

    python bench/stores.py [--quick] [--parts 1 2 3] [--rounds 3] [--seconds 10]
        [--jobs 5000] [--million 1000000] [--rate 500] [--million-seconds 120]
        [--b3-jobs 1000 5000] [--b3-interval 1] [--concurrency 64] [--raw FILE]

Needs ``pip install -e '.[dev,postgres,fast]'`` and PostgreSQL's server
binaries (``/usr/lib/postgresql/15/bin``, or ``apt-get install postgresql``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import select
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _server
import _stores_proc as proc

HERE = Path(__file__).resolve().parent
# tests/postgres.py starts the throwaway cluster: the repository root must be importable.
sys.path.insert(0, str(HERE.parent))

from tests.postgres import PostgresCluster, running_cluster  # noqa: E402

CHILD = HERE / "_stores_child.py"
#: Seconds a driver may take to start polling, and to report after its window.
_START_BUDGET = 180.0
_REPORT_BUDGET = 120.0
#: Part 2: the worker's clock starts this long before the first job falls due.
_LEAD = 2.0


# -- the machinery of one run ---------------------------------------------------------------


class _Child:
    """One driver process: JSON lines out, the window's times in."""

    def __init__(self, bench: _Bench, argv: list[str], label: str) -> None:
        self.label = label
        self.errors = bench.tmp / f"{label}.{time.monotonic_ns()}.err"
        self._stderr = self.errors.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), *argv, "--cpus", bench.cpus],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def line(self, timeout: float) -> dict[str, Any]:
        """Return the next JSON line the child prints; fail with its stderr's tail."""
        out = self.process.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], timeout)
        text = out.readline() if ready else ""
        if not text:
            self._died("no answer")
        return json.loads(text)  # type: ignore[no-any-return]

    def send(self, text: str) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(text)
            stdin.flush()
        except BrokenPipeError:
            self._died("gone")

    def _died(self, what: str) -> None:
        """Fail with the tail of the child's stderr: why it stopped answering."""
        self.kill()
        tail = " | ".join(self.errors.read_text().strip().splitlines()[-6:])
        msg = f"{self.label}: {what} (exit {self.process.poll()}): {tail}"
        raise RuntimeError(msg)

    def finish(self) -> None:
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._stderr.close()


class _Sample:
    """CPU seconds used so far: the machine, PostgreSQL, the server, each driver, ourselves.

    With ``database``, also the transactions PostgreSQL has counted in it
    (``pg_stat_database``; backends report them about once a second, so a
    window's count is good to a second's worth at either end).
    """

    def __init__(
        self, bench: _Bench, children: list[_Child], database: str | None = None
    ) -> None:
        self.wall = time.perf_counter()
        self.busy = proc.machine_busy_seconds()
        self.pg = proc.tree_cpu_seconds(bench.cluster.postmaster_pid)
        self.server = proc.cpu_seconds(bench.server_pid)
        self.children = [proc.cpu_seconds(c.process.pid) for c in children]
        own = os.times()
        self.own = own.user + own.system
        # Last: its connection's backend exits once done, after the readings above.
        self.xacts = _transactions(database) if database else 0

    def since(self, before: _Sample) -> dict[str, float]:
        """Return the CPU seconds each part used since ``before``, and the wall time."""
        drivers = sum(
            a - b for a, b in zip(self.children, before.children, strict=True)
        )
        ours = (
            drivers
            + (self.pg - before.pg)
            + (self.server - before.server)
            + (self.own - before.own)
        )
        return {
            "window": self.wall - before.wall,
            "pg_xacts": self.xacts - before.xacts,
            "pg_cpu": self.pg - before.pg,
            "server_cpu": self.server - before.server,
            "others_cpu": max(0.0, (self.busy - before.busy) - ours),
        }


def _transactions(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


class _Bench:
    """The cluster, the server, the spec and the options every part uses."""

    def __init__(
        self,
        *,
        args: argparse.Namespace,
        cluster: PostgresCluster,
        server: str,
        server_pid: int,
        tmp: Path,
        cpus: str,
    ) -> None:
        self.args = args
        self.cluster = cluster
        self.server = server
        self.server_pid = server_pid
        self.tmp = tmp
        self.cpus = cpus
        self.sqlite_dir: str | None = args.sqlite_dir
        self.spec = str(proc.write_spec(tmp))
        self._databases = 0

    @contextlib.contextmanager
    def database(self, label: str) -> Iterator[str]:
        """Yield the URL of a fresh, empty database; drop it afterwards."""
        self._databases += 1
        name = f"b{self._databases}_{label}"
        url = self.cluster.create_database(name)
        try:
            yield url
        finally:
            self.cluster.drop_database(name)

    def adopt(
        self, store: str, jobs: int, scale: float
    ) -> tuple[float, dict[str, Any]]:
        """Adopt ``jobs`` jobs into ``store`` in a child process; return its anchor and report."""
        anchor = time.time()
        child = _Child(
            self,
            [
                "adopt",
                "--store",
                store,
                "--spec",
                self.spec,
                "--jobs",
                str(jobs),
                "--time-scale",
                repr(scale),
                "--anchor",
                repr(anchor),
            ],
            "adopt",
        )
        # A million jobs take minutes: allow 2 ms per job on top.
        report = child.line(timeout=_START_BUDGET + jobs * 0.002)
        child.finish()
        return anchor, report

    def worker(
        self,
        store: str,
        scale: float,
        *,
        anchor: float | None,
        label: str,
        profile: Path | None = None,
    ) -> _Child:
        argv = [
            "worker",
            "--store",
            store,
            "--spec",
            self.spec,
            "--time-scale",
            repr(scale),
            "--server",
            self.server,
            "--concurrency",
            str(self.args.concurrency),
            "--sample",
            repr(self.args.sample),
        ]
        if anchor is not None:
            argv += ["--anchor", repr(anchor)]
        if profile is not None:
            argv += ["--profile", str(profile)]
        return _Child(self, argv, label)

    def engine(self, store: str, jobs: int, scale: float, *, label: str) -> _Child:
        argv = [
            "engine",
            "--store",
            store,
            "--spec",
            self.spec,
            "--jobs",
            str(jobs),
            "--time-scale",
            repr(scale),
            "--server",
            self.server,
            "--concurrency",
            str(self.args.concurrency),
        ]
        return _Child(self, argv, label)

    def drive(
        self, children: list[_Child], seconds: float, database: str | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Let the drivers warm up, measure them for ``seconds``; return their reports and ours."""
        try:
            for child in children:
                child.line(timeout=_START_BUDGET)
            start = time.time() + self.args.warmup
            end = start + seconds
            for child in children:
                child.send(f"{start!r} {end!r}\n")
            time.sleep(max(0.0, start - time.time()))
            before = _Sample(self, children, database)
            time.sleep(max(0.0, end - time.time()))
            measured = _Sample(self, children, database).since(before)
            for child in children:
                child.send("stop\n")
            reports = [child.line(timeout=_REPORT_BUDGET) for child in children]
        except BaseException:
            for child in children:
                child.kill()
            raise
        for child in children:
            child.finish()
        return reports, measured

    def wait_for_quiet(self) -> float:
        """Wait (at most ``--max-wait`` s) until other processes leave the CPUs quiet; return the wait."""
        started = time.perf_counter()
        while time.perf_counter() - started < self.args.max_wait:
            before = _Sample(self, [])
            time.sleep(0.5)
            if _Sample(self, []).since(before)["others_cpu"] / 0.5 <= self.args.quiet:
                break
        return time.perf_counter() - started


# -- report helpers ---------------------------------------------------------------------------


def _cell(found: list[float | None], fmt: Callable[[float], str]) -> str:
    """Return ``median [min-max]``, or the value alone, or ``-``."""
    values = [v for v in found if v is not None]
    if not values:
        return "-"
    mid = fmt(statistics.median(values))
    if len(values) < 2:
        return mid
    return f"{mid} [{fmt(min(values))}-{fmt(max(values))}]"


def _us(value: float) -> str:
    return f"{value * 1e6:,.0f}"


def _rate(value: float) -> str:
    return f"{value:,.0f}"


def _share(value: float) -> str:
    return f"{value:.0%}"


def _cpus(value: float) -> str:
    return f"{value:.2f}"


def _xacts(value: float) -> str:
    return f"{value:.2f}"


def _ms(value: float) -> str:
    return f"{value * 1e3:,.1f}"


def _table(headings: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [headings, *rows]) for i in range(len(headings))]
    for row in [headings, *rows]:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        print("  " + "  ".join(cells))


def _summary(
    reports: list[dict[str, Any]], measured: dict[str, float]
) -> dict[str, Any]:
    """One run's figures: polls/s and CPU per poll of the drivers, the database, the server."""
    polls = sum(r["polls"] for r in reports)
    wall = statistics.mean(r["wall"] for r in reports)
    window = measured["window"]
    cpu = sum(r["cpu"] for r in reports)
    lates = [r["late_p99"] for r in reports if r.get("late_p99") is not None]
    return {
        "rate": polls / wall,
        "driver_cpu": cpu / polls if polls else None,
        "driver_share": cpu / wall / len(reports),
        "pg_cpu": measured["pg_cpu"] / polls if polls else None,
        "pg_share": measured["pg_cpu"] / window,
        "pg_xacts": measured["pg_xacts"] / polls if polls else None,
        "server_cpu": measured["server_cpu"] / polls if polls else None,
        "total_cpu": (cpu + measured["pg_cpu"] + measured["server_cpu"]) / polls
        if polls
        else None,
        "others": measured["others_cpu"] / window,
        # Workers only: an engine does not report lateness.
        "late_p99": max(lates) if lates else None,
        "problems": sum(r["problems"] for r in reports),
        "first_problems": [p for r in reports for p in r["first_problems"]],
        "reports": reports,
    }


def _progress(label: str, run: dict[str, Any]) -> None:
    print(
        f"    {label}: {run['rate']:,.0f} polls/s, driver {_us(run['driver_cpu'] or 0)} µs/poll, "
        f"PostgreSQL {_share(run['pg_share'])} of a CPU, others {run['others']:.2f} CPU"
        + (
            f", {run['problems']} warnings: {run['first_problems'][:1]}"
            if run["problems"]
            else ""
        ),
        flush=True,
    )


# -- part 1: claim-and-commit throughput, 1 and 2 workers ---------------------------------------


def part1(bench: _Bench) -> dict[str, Any]:
    args = bench.args
    scale = proc.scale_for(args.interval)
    print(
        f"\n1. Claim-and-commit throughput on PostgreSQL: {args.jobs:,} jobs due every "
        f"{args.interval:g} s on average (far more than the workers poll), "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s",
        flush=True,
    )
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for round_no in range(args.rounds):
        for workers in (1, 2) if round_no % 2 == 0 else (2, 1):
            with bench.database(f"p1_r{round_no}_w{workers}") as url:
                anchor, _ = bench.adopt(url, args.jobs, scale)
                bench.wait_for_quiet()
                children = [
                    bench.worker(url, scale, anchor=anchor, label=f"worker{i}")
                    for i in range(workers)
                ]
                run = _summary(*bench.drive(children, args.seconds, url))
            runs[workers].append(run)
            _progress(f"round {round_no + 1}, {workers} worker(s)", run)
    profile = None
    if args.profile:
        path = bench.tmp / "worker.prof"
        with bench.database("p1_profile") as url:
            anchor, _ = bench.adopt(url, args.jobs, scale)
            bench.wait_for_quiet()
            child = bench.worker(
                url, scale, anchor=anchor, label="profiled", profile=path
            )
            profiled = _summary(*bench.drive([child], args.seconds, url))
        profile = (proc.split_profile(path), profiled)
    _print_part1(runs, profile)
    return {"runs": runs, "profile": profile and profile[0]}


def _print_part1(
    runs: dict[int, list[dict[str, Any]]],
    profile: tuple[tuple[float, dict[str, float], float], dict[str, Any]] | None,
) -> None:
    print("\n  median [min-max] of the rounds; CPU per poll in µs")
    headings = [
        "workers",
        "polls/s",
        "worker CPU/poll",
        "worker CPU share",
        "PostgreSQL CPU/poll",
        "PostgreSQL share",
        "PostgreSQL xacts/poll",
        "server CPU/poll",
        "total CPU/poll",
        "others (CPUs)",
        "warnings",
    ]
    rows = []
    for workers, rs in runs.items():
        rows.append(
            [
                str(workers),
                _cell([r["rate"] for r in rs], _rate),
                _cell([r["driver_cpu"] for r in rs], _us),
                _cell([r["driver_share"] for r in rs], _share),
                _cell([r["pg_cpu"] for r in rs], _us),
                _cell([r["pg_share"] for r in rs], _share),
                _cell([r["pg_xacts"] for r in rs], _xacts),
                _cell([r["server_cpu"] for r in rs], _us),
                _cell([r["total_cpu"] for r in rs], _us),
                _cell([r["others"] for r in rs], _cpus),
                str(sum(r["problems"] for r in rs)),
            ]
        )
    _table(headings, rows)
    print(
        "  worker CPU share: each worker's CPU time / wall time; PostgreSQL share: all its\n"
        "  processes' CPU time / wall time (of one CPU); xacts: transactions PostgreSQL counted\n"
        "  (pg_stat_database; a statement outside BEGIN is one); total: workers + PostgreSQL + server;\n"
        "  others: CPUs' worth of time other processes of the machine used meanwhile (noise)."
    )
    ratios = [
        two["rate"] / one["rate"] for one, two in zip(runs[1], runs[2], strict=True)
    ]
    verdict = "met" if statistics.median(ratios) >= 1.7 else "NOT met"
    print(
        f"\n  2 workers / 1 worker, polls/s (paired by round): "
        f"{_cell(ratios, lambda v: f'{v:.2f}')} (target >= 1.7): {verdict}"
    )
    total = statistics.median(r["total_cpu"] for r in runs[2])
    cpus = os.cpu_count() or 1
    print(
        f"  at the 2-worker total of {total * 1e6:,.0f} µs per poll, {cpus} CPUs can do at most "
        f"{cpus / total:,.0f} polls/s = {cpus / total / statistics.median(r['rate'] for r in runs[1]):.2f}x "
        "the median 1-worker rate"
    )
    if profile is None:
        return
    (total_cpu, split, store), run = profile
    share = store / total_cpu
    # Profiling slows the worker down; the share is applied to the unprofiled cost.
    per_poll = statistics.median(r["driver_cpu"] for r in runs[1])
    polls = sum(r["polls"] for r in run["reports"])
    print(
        f"\n  One worker profiled (cProfile, {polls:,} polls; profiling slows it, "
        "so shares are what count):"
    )
    print(
        "    inside the store's calls (claim, commit, next_due, wait_changed, heartbeat): "
        f"{share:.0%} of the profiled worker's time (profiled: {store / polls * 1e6:,.0f} of "
        f"{total_cpu / polls * 1e6:,.0f} µs per poll);\n    applied to the unprofiled "
        f"1-worker median of {per_poll * 1e6:,.0f} µs: {share * per_poll * 1e6:,.0f} µs of "
        "worker CPU per poll in the store, besides PostgreSQL's own (above)"
    )
    print(
        "    own time by package (C built-ins charged to their callers), µs per poll profiled:"
    )
    for package, seconds in sorted(split.items(), key=lambda kv: -kv[1]):
        if seconds / total_cpu >= 0.005:
            print(
                f"      {package:<28}{seconds / polls * 1e6:8,.0f}  {seconds / total_cpu:4.0%}"
            )


# -- part 2: a million jobs in PostgreSQL --------------------------------------------------------


def part2(bench: _Bench) -> dict[str, Any]:
    args = bench.args
    mean = args.million / args.rate
    scale = proc.scale_for(mean)
    print(
        f"\n2. {args.million:,} jobs in PostgreSQL: adopted with AsyncEngine.track_many, then one "
        f"worker for {args.million_seconds:g} s; first polls spread evenly over {mean:,.0f} s "
        f"({args.rate:,.0f} due per second)",
        flush=True,
    )
    with bench.database("p2_million") as url:
        bench.wait_for_quiet()
        anchor, adopted = bench.adopt(url, args.million, scale)
        sizes = _sizes(url)
        bench.wait_for_quiet()
        # Due times run from anchor + (1 - JITTER) x mean: the worker's clock starts just before.
        start = anchor + (1 - proc.JITTER) * mean - _LEAD
        child = bench.worker(url, scale, anchor=start, label="million")
        run = _summary(*bench.drive([child], args.million_seconds, url))
    _print_part2(args, adopted, sizes, run)
    return {"adopted": adopted, "sizes": sizes, "run": run}


def _sizes(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM statepoll.jobs), "
            "pg_total_relation_size('statepoll.jobs'), "
            "pg_total_relation_size('statepoll.audit'), "
            "pg_database_size(current_database())"
        ).fetchone()
    assert row is not None
    return dict(
        zip(("jobs", "jobs_bytes", "audit_bytes", "db_bytes"), row, strict=True)
    )


def _print_part2(
    args: argparse.Namespace,
    adopted: dict[str, Any],
    sizes: dict[str, Any],
    run: dict[str, Any],
) -> None:
    jobs = adopted["jobs"]
    print(
        f"\n  adopting: {jobs:,} jobs in {adopted['adopt_s']:,.1f} s = "
        f"{jobs / adopted['adopt_s']:,.0f} jobs/s (track_many(drive=False), 1,000 per transaction; "
        f"{adopted['cpu'] / jobs * 1e6:,.0f} µs CPU per job in the adopting process); "
        f"opening {adopted['open_s']:.1f} s, letting them go on close "
        f"{adopted['release_s']:,.1f} s; the adopting engine's peak RSS "
        f"{adopted['hwm_kb'] / 1024:,.0f} MB (drive=False: it holds none of them)"
    )
    marks = ", ".join(f"{n:,} at {t:,.0f} s" for n, t in adopted["progress"])
    if marks:
        print(f"    progress: {marks}")
    print(
        f"  stored: {sizes['jobs']:,} jobs; jobs table {sizes['jobs_bytes'] / 2**20:,.0f} MB, "
        f"audit table {sizes['audit_bytes'] / 2**20:,.0f} MB, database "
        f"{sizes['db_bytes'] / 2**20:,.0f} MB"
    )
    report = run["reports"][0]
    print(
        f"\n  one worker, {report['wall']:,.0f} s: {run['rate']:,.0f} polls/s "
        f"(due: {args.rate:,.0f}/s), {_us(run['driver_cpu'])} µs CPU per poll "
        f"({_share(run['driver_share'])} of a CPU), PostgreSQL {_us(run['pg_cpu'])} µs per poll "
        f"({_share(run['pg_share'])} of a CPU, {run['pg_xacts']:.2f} transactions per poll); others {run['others']:.2f} CPU; "
        f"{run['problems']} warnings"
    )
    print(
        f"  lateness of {report['claims']:,} claims (claimed - due): p50 "
        f"{_ms(report['late_p50'] or 0)} ms, p99 {_ms(report['late_p99'] or 0)} ms, max "
        f"{_ms(report['late_max'] or 0)} ms"
    )
    print("\n  over time (each row: the interval that ends then)")
    rows = [
        [
            f"{s['t']:,.0f}",
            f"{s['rss_kb'] / 1024:,.1f}",
            f"{s['steps'] / args.sample:,.0f}",
            _ms(s["late_p99"]) if s["late_p99"] is not None else "-",
        ]
        for s in report["samples"]
    ]
    _table(["t s", "RSS MB", "polls/s", "lateness p99 ms"], rows)
    samples = report["samples"]
    if len(samples) >= 2:
        grew = (samples[-1]["rss_kb"] - samples[0]["rss_kb"]) / 1024
        minutes = (samples[-1]["t"] - samples[0]["t"]) / 60
        print(
            f"  RSS grew {grew:+,.1f} MB over {minutes:.1f} min ({grew / minutes:+,.1f} MB/min); "
            f"peak {report['hwm_kb'] / 1024:,.0f} MB"
        )
    rss_ok = report["hwm_kb"] / 1024 <= 200
    late_ok = (report["late_p99"] or 0) <= 0.1
    print(
        f"  targets: worker RSS <= 200 MB: {'met' if rss_ok else 'NOT met'}; "
        f"p99 lateness <= 100 ms: {'met' if late_ok else 'NOT met'}"
    )


# -- part 3: the cost of leases and of the store -------------------------------------------------

_CONTENDERS = (
    "(a) AsyncEngine, no store",
    "(b) AsyncEngine, SQLite store",
    "(c) Worker, SQLite",
    "(d) Worker, PostgreSQL",
)


def _contender(bench: _Bench, name: str, jobs: int, scale: float) -> dict[str, Any]:
    label = name[1]
    seconds = bench.args.seconds
    if name.startswith("(a)"):
        bench.wait_for_quiet()
        return _summary(
            *bench.drive([bench.engine("none", jobs, scale, label=label)], seconds)
        )
    if name.startswith("(d)"):
        with bench.database(f"p3_{jobs}") as url:
            anchor, _ = bench.adopt(url, jobs, scale)
            bench.wait_for_quiet()
            child = bench.worker(url, scale, anchor=anchor, label=label)
            return _summary(*bench.drive([child], seconds, url))
    folder = Path(tempfile.mkdtemp(prefix="stores-sqlite-", dir=bench.sqlite_dir))
    store = f"sqlite:///{folder / 'jobs.db'}"
    try:
        if name.startswith("(b)"):
            bench.wait_for_quiet()
            child = bench.engine(store, jobs, scale, label=label)
        else:
            anchor, _ = bench.adopt(store, jobs, scale)
            bench.wait_for_quiet()
            child = bench.worker(store, scale, anchor=anchor, label=label)
        return _summary(*bench.drive([child], seconds))
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def part3(bench: _Bench) -> dict[str, Any]:
    args = bench.args
    scale = proc.scale_for(args.b3_interval)
    print(
        f"\n3. The cost of leases and of the store: N jobs polled every {args.b3_interval:g} s "
        f"on average, {args.rounds} interleaved rounds of {args.seconds:g} s; SQLite files in "
        f"{bench.sqlite_dir or tempfile.gettempdir()}",
        flush=True,
    )
    results: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for jobs in args.b3_jobs:
        results[jobs] = {name: [] for name in _CONTENDERS}
        for round_no in range(args.rounds):
            names = _CONTENDERS if round_no % 2 == 0 else _CONTENDERS[::-1]
            for name in names:
                run = _contender(bench, name, jobs, scale)
                results[jobs][name].append(run)
                _progress(f"{jobs:,} jobs, round {round_no + 1}, {name}", run)
    for jobs, runs in results.items():
        _print_part3(args, jobs, runs)
    return results


def _print_part3(
    args: argparse.Namespace, jobs: int, runs: dict[str, list[dict[str, Any]]]
) -> None:
    due = jobs / args.b3_interval
    print(
        f"\n  {jobs:,} jobs every {args.b3_interval:g} s ({due:,.0f} polls/s due): "
        "median [min-max] of the rounds; CPU per poll in µs"
    )
    headings = [
        "driver",
        "polls/s",
        "driver CPU/poll",
        "driver share",
        "PostgreSQL CPU/poll",
        "PostgreSQL xacts/poll",
        "driver + DB CPU/poll",
        "lateness p99 ms",
        "others (CPUs)",
        "warnings",
    ]
    rows = []
    for name, rs in runs.items():
        # Only (d) has a database in a process of its own; SQLite runs in the driver's.
        postgres = name.startswith("(d)")
        rows.append(
            [
                name,
                _cell([r["rate"] for r in rs], _rate),
                _cell([r["driver_cpu"] for r in rs], _us),
                _cell([r["driver_share"] for r in rs], _share),
                _cell([r["pg_cpu"] for r in rs], _us) if postgres else "-",
                _cell([r["pg_xacts"] for r in rs], _xacts) if postgres else "-",
                _cell([_with_database(r, postgres=postgres) for r in rs], _us),
                _cell([r["late_p99"] for r in rs], _ms),
                _cell([r["others"] for r in rs], _cpus),
                str(sum(r["problems"] for r in rs)),
            ]
        )
    _table(headings, rows)
    base = runs[_CONTENDERS[0]]
    base_cpu = statistics.median(r["driver_cpu"] for r in base)
    base_rate = statistics.median(r["rate"] for r in base)
    print(
        f"\n  {'ratio to (a)':<32}{'driver CPU/poll':>16}{'driver + DB':>13}{'polls/s':>9}"
    )
    for name, rs in runs.items():
        postgres = name.startswith("(d)")
        cpu = statistics.median(r["driver_cpu"] for r in rs) / base_cpu
        total = (
            statistics.median(_with_database(r, postgres=postgres) for r in rs)
            / base_cpu
        )
        rate = statistics.median(r["rate"] for r in rs) / base_rate
        print(f"  {name:<32}{cpu:>16.2f}{total:>13.2f}{rate:>9.2f}")
    print(
        "  The SQLite store's work runs on a thread of the driver's process: it is in the"
        " driver's CPU.\n  lateness (workers only): Worker.lateness, seconds past due when claimed."
    )


def _with_database(run: dict[str, Any], *, postgres: bool) -> float:
    """Return the driver's CPU per poll, plus PostgreSQL's when it has a database server."""
    return float(run["driver_cpu"]) + (float(run["pg_cpu"]) if postgres else 0.0)


# -- the whole run ---------------------------------------------------------------------------


def _versions(cluster: PostgresCluster) -> str:
    import psycopg

    with psycopg.connect(cluster.url("postgres")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    found = [f"PostgreSQL {row[0] if row else '?'}", f"SQLite {sqlite3.sqlite_version}"]
    for package in ("psycopg", "psycopg-binary", "httpx", "aiohttp", "httpx-aiohttp"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{package} {importlib.metadata.version(package)}")
    return ", ".join(found)


#: The defaults of a full run, and of --quick; an option given on the command line wins.
_FULL: dict[str, Any] = {
    "rounds": 3,
    "seconds": 10.0,
    "warmup": 3.0,
    "jobs": 5000,
    "million": 1_000_000,
    "million_seconds": 120.0,
    "sample": 10.0,
    "b3_jobs": [1000, 5000],
    "max_wait": 30.0,
}
_QUICK: dict[str, Any] = {
    "rounds": 1,
    "seconds": 3.0,
    "warmup": 2.0,
    "jobs": 2000,
    "million": 20_000,
    "million_seconds": 15.0,
    "sample": 3.0,
    "b3_jobs": [1000],
    "max_wait": 2.0,
}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    add = parser.add_argument
    add("--parts", type=int, nargs="+", choices=[1, 2, 3], default=[1, 2, 3])
    add("--rounds", type=int, help="interleaved rounds, parts 1 and 3 (3; quick 1)")
    add("--seconds", type=float, help="window of parts 1 and 3 (10; quick 3)")
    add("--warmup", type=float, help="seconds before each window (3; quick 2)")
    add("--jobs", type=int, help="part 1: jobs (5,000; quick 2,000)")
    add("--interval", type=float, default=0.2, help="part 1: mean s between polls")
    add("--million", type=int, help="part 2: jobs (1,000,000; quick 20,000)")
    add("--rate", type=float, default=500.0, help="part 2: polls due per second")
    add("--million-seconds", type=float, help="part 2: the window (120; quick 15)")
    add("--sample", type=float, help="part 2: RSS sampling period (10; quick 3)")
    add("--b3-jobs", type=int, nargs="+", help="part 3: jobs (1000 5000; quick 1000)")
    add("--b3-interval", type=float, default=1.0, help="part 3: mean s between polls")
    add("--concurrency", type=int, default=64, help="Worker concurrency, max_in_flight")
    add("--no-profile", dest="profile", action="store_false", help="part 1: no profile")
    add("--sqlite-dir", help="where part 3's SQLite files go (default: the temp dir)")
    add("--quiet", type=float, default=0.25, help="start once others use <= this CPU")
    add("--max-wait", type=float, help="at most this long (30; quick 2)")
    add("--raw", type=Path, help="also write every measurement to this JSON file")
    add("--quick", action="store_true", help="1 round, short windows (about 1.5 min)")
    args = parser.parse_args()
    for key, value in (_QUICK if args.quick else _FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main() -> None:
    args = _parse()
    started = time.perf_counter()
    cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())} at the start"
    )
    print(f"command: python bench/stores.py {' '.join(sys.argv[1:])}".rstrip())
    results: dict[str, Any] = {}
    # The cluster first: started while this process may use every CPU, so are its backends.
    with (
        running_cluster() as cluster,
        _server.running(pin=True, lifetime=24 * 3600) as (
            server,
            server_pid,
            server_cpu,
        ),
        tempfile.TemporaryDirectory(prefix="stores-bench-") as tmp,
    ):
        print(_versions(cluster))
        print(
            f"PostgreSQL on 127.0.0.1:{cluster.port} (data in {cluster.base}); the server on CPU "
            f"{server_cpu}; drivers and PostgreSQL on CPUs {cpus}"
        )
        bench = _Bench(
            args=args,
            cluster=cluster,
            server=server,
            server_pid=server_pid,
            tmp=Path(tmp),
            cpus=cpus,
        )
        for part, run in ((1, part1), (2, part2), (3, part3)):
            if part in args.parts:
                results[str(part)] = run(bench)
    if args.raw:
        args.raw.write_text(json.dumps(results, indent=1, default=str))
    print(f"\n(ran {time.perf_counter() - started:,.0f} s)")


if __name__ == "__main__":
    main()
