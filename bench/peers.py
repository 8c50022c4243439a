"""statepoll beside the pollers users would otherwise pick, on one Azure-shaped workload.

N Azure Document Translation batches, each polled every 1 s with ``GET
/translator/document/batches/{id}?api-version=2024-05-01`` and an
``Ocp-Apim-Subscription-Key`` header, answered with the service's ~300 B batch
status JSON by ``_peers_server.py`` (raw asyncio, its own process, pinned to
the second CPU; every run prints its CPU share). Each batch turns ``Succeeded``
at a known wall-clock time, spread over the run, so that the detection lag
(seen terminal by the client - turned terminal on the server) is measured for
every job (``_peers_workload.py`` has the timeline).

The contenders (``_peers_contenders.py``), each run in its own fresh process
pinned to the first CPU, so that its CPU time, peak RSS and threads are its own:

- bare socket: hand-rolled HTTP/1.1 keep-alive GETs on asyncio protocols (the floor);
- aiohttp loop: one task per job, ``asyncio.sleep(1)`` between polls, one ClientSession;
- tenacity + aiohttp: ``@retry(retry_if_result(not terminal), wait_fixed(1))``;
- httpx + semaphore: one task per job, an AsyncClient with limits, a semaphore;
- polling2 threads: ``polling2.poll(step=1)`` on requests, one thread per job;
- botocore waiter threads: botocore's ``Waiter`` (``create_waiter_with_client``)
  over botocore's URLLib3Session, one thread per job;
- azure-core LROPoller: ``LROPoller.from_continuation_token(LROBasePolling(1))``
  over a generated Azure client's pipeline, one poller thread per job;
- statepoll: ``AsyncEngine.track(spec, "batch", id)`` (``peers_spec.json``: the
  built-in azure-translator batch lifecycle minus items, 1 s, no jitter), the
  default client (httpx-aiohttp's transport with the ``fast`` extra);
- statepoll, httpx only: the same over an ``httpx.AsyncClient`` on httpx's transport.

Per contender: client CPU per poll (process CPU time / status polls the
server answered, over the run), polls/s, peak RSS and RSS per job (peak -
before the first job), peak OS threads, connections opened, detection lag
p50/p99, jobs seen to their end, errors; medians of interleaved rounds (the
order reversed every other round) with ranges, and ratios to statepoll.
Thread-per-job contenders run at a size only if a probe process could start
that many threads; every run is bounded by the timeline's deadline (the
contender stops and reports what it saw) and a wall-clock budget (the
process is killed: "did not finish").

Targets (issue #10): statepoll's CPU per poll <= 1.25 x the aiohttp loop's;
statepoll over httpx alone below httpx + semaphore; p99 detection lag <= 1.5 s
at 10,000 jobs.

    python bench/peers.py [--quick] [--jobs 1000 10000] [--rounds 3]
        [--contenders NAME ...] [--in-flight 64] [--lead 4] [--spread 10]
        [--grace 10] [--no-pin] [--raw FILE]

Needs ``pip install -e '.[bench]'`` (azure-core, botocore, tenacity,
polling2, requests, and the ``fast`` transport).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _peers_server
import _peers_workload as work
from _peers_contenders import CONTENDERS, THREADED

HERE = Path(__file__).parent
#: Time a child may spend outside the timeline (start-up, imports, set-up, exit).
SETUP_ALLOWANCE = 90.0
REFERENCE = "statepoll"
_PACKAGES = (
    "aiohttp",
    "httpx",
    "httpx-aiohttp",
    "tenacity",
    "polling2",
    "requests",
    "urllib3",
    "botocore",
    "azure-core",
)


# -- running one contender ---------------------------------------------------------


def _run_child(
    name: str, url: str, jobs: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Run one contender in a fresh process; return its measurements or why it has none."""
    timeline = _timeline(args)
    argv = [
        sys.executable,
        str(HERE / "_peers_contenders.py"),
        name,
        "--url",
        url,
        "--jobs",
        str(jobs),
        "--in-flight",
        str(args.in_flight),
        "--timeline",
        f"{timeline.stagger},{timeline.lead},{timeline.spread},{timeline.grace}",
    ]
    budget = timeline.deadline + SETUP_ALLOWANCE
    waited = _wait_for_quiet(args)
    before = _Load.read(args)
    started = time.perf_counter()
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            out, err = process.communicate(timeout=budget)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return {"failed": f"did not finish: killed after {budget:.0f} s"}
    elapsed = time.perf_counter() - started
    noise = _Load.read(args).noise_since(before, elapsed, args)
    lines = out.strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = " | ".join(err.strip().splitlines()[-3:])
        return {"failed": f"exit {process.returncode}: {tail}"}
    return {**json.loads(lines[-1]), "process_wall": elapsed, "waited": waited, **noise}


def _wait_for_quiet(args: argparse.Namespace) -> float:
    """Wait (at most ``--max-wait`` s) until other processes leave both CPUs quiet; return the wait.

    On a shared machine, a run started while other work holds the contender's
    or the server's CPU measures that work as much as the contender.
    """
    if args.client_cpu is None or args.max_wait <= 0:
        return 0.0
    started = time.perf_counter()
    while True:
        before = _Load.read(args)
        time.sleep(0.5)
        noise = _Load.read(args).noise_since(before, 0.5, args)
        waited = time.perf_counter() - started
        if max(noise.values()) <= args.quiet or waited >= args.max_wait:
            return waited


class _Load:
    """CPU time used on the client's and the server's CPUs, in all and by our own processes.

    The machine may be shared with other work: what the two CPUs did beyond
    the contender (its whole process, start-up included) and the server is
    other processes' (or the kernel's) load, reported as noise. Interrupt
    time is left out: loopback networking is counted there, ours included.
    """

    def __init__(self, cpus: dict[int, float], child: float, server: float) -> None:
        self.cpus, self.child, self.server = cpus, child, server

    @classmethod
    def read(cls, args: argparse.Namespace) -> _Load:
        tick = os.sysconf("SC_CLK_TCK")
        cpus = {}
        for line in Path("/proc/stat").read_text().splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name != "cpu":
                user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(
                    int, fields[:8]
                )
                cpus[int(name[3:])] = (user + nice + system + steal) / tick
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        server = _peers_server.cpu_seconds(args.server_pid)
        return cls(cpus, usage.ru_utime + usage.ru_stime, server)

    def noise_since(
        self, before: _Load, wall: float, args: argparse.Namespace
    ) -> dict[str, float]:
        """Return the other processes' share of the client and the server CPUs since ``before``."""
        result = {}
        for key, cpu, ours in (
            ("noise_client", args.client_cpu, self.child - before.child),
            ("noise_server", args.server_cpu, self.server - before.server),
        ):
            if cpu is not None:
                busy = self.cpus[cpu] - before.cpus[cpu]
                result[key] = max(0.0, busy - ours) / wall
        return result


def _probe_threads(jobs: int) -> str | None:
    """Return why ``jobs`` threads cannot run here, or ``None`` if a probe process started them."""
    argv = [sys.executable, str(Path(__file__)), "--probe-threads", str(jobs)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return f"starting {jobs:,} threads took over 60 s"
    if done.returncode != 0:
        return done.stdout.strip() or done.stderr.strip().splitlines()[-1]
    return None


def _probe(jobs: int) -> None:
    """Start ``jobs`` idle threads (the ``--probe-threads`` child); exit 1 if that fails."""
    gate = threading.Event()
    started = time.perf_counter()
    for i in range(jobs):
        try:
            threading.Thread(target=gate.wait, daemon=True).start()
        except RuntimeError as exc:
            print(f"only {i:,} of {jobs:,} threads could start: {exc}")
            sys.exit(1)
    gate.set()
    print(f"{jobs:,} threads started in {time.perf_counter() - started:.2f} s")


# -- the report ---------------------------------------------------------------------------


def _med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _cell(
    values: list[float], fmt: Callable[[float], str], *, spread: bool = True
) -> str:
    """Return ``median [min-max]`` (or ``-`` when there are no values)."""
    if not values:
        return "-"
    mid = fmt(statistics.median(values))
    if not spread or len(values) < 2:
        return mid
    return f"{mid} [{fmt(min(values))}-{fmt(max(values))}]"


class _Table:
    """The measurements of one size: every round of every contender."""

    def __init__(self, jobs: int, names: list[str]) -> None:
        self.jobs = jobs
        self.names = names
        self.runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        self.skipped: dict[str, str] = {}

    def ok(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.runs[name] if "failed" not in r]

    def metric(self, name: str, key: str) -> list[float]:
        values = []
        for run in self.ok(name):
            value = _metric(run, key, self.jobs)
            if value is not None:
                values.append(value)
        return values

    def print(self, rounds: int) -> None:
        print(
            f"\n{self.jobs:,} jobs polled every 1 s: median of {rounds} interleaved "
            "rounds [min-max]"
        )
        headings = list(_COLUMNS)
        rows = [headings]
        notes: list[str] = []
        for name in self.names:
            if name in self.skipped:
                notes.append(f"{name}: skipped: {self.skipped[name]}")
                continue
            if self.ok(name):
                rows.append([name] + [self._cell(name, h) for h in headings[1:]])
            for run in self.runs[name]:
                if "failed" in run:
                    notes.append(f"{name}: one round {run['failed']}")
                elif run["notes"]:
                    notes.append(f"{name}: one round: {'; '.join(run['notes'])}")
        widths = [max(len(row[i]) for row in rows) for i in range(len(headings))]
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [
                cell.rjust(width)
                for cell, width in zip(row[1:], widths[1:], strict=True)
            ]
            print("  " + "  ".join(cells))
        for note in notes:
            print(f"    {note}")
        print(_LEGEND)

    def _cell(self, name: str, column: str) -> str:
        key, fmt, spread = _COLUMNS[column]
        if key == "finished":
            return f"{_cell(self.metric(name, key), fmt, spread=spread)}/{self.jobs:,}"
        return _cell(self.metric(name, key), fmt, spread=spread)

    def print_ratios(self) -> None:
        reference = {
            key: _med(self.metric(REFERENCE, key))
            for key in ("cpu_per_poll", "rss_per_job", "lag_p99")
        }
        if reference["cpu_per_poll"] is None:
            return
        print(
            f"\n  {'contender / statepoll':<25}{'CPU/poll':>9} {'RSS/job':>8} {'lag p99':>8}"
        )
        partial = False
        for name in self.names:
            if not self.ok(name):
                continue
            cells = []
            for key, ref in reference.items():
                mine = _med(self.metric(name, key))
                cells.append(f"{mine / ref:.2f}" if mine is not None and ref else "-")
            if min(self.metric(name, "finished"), default=0) < self.jobs:
                cells[2] += "*"
                partial = True
            print(f"  {name:<25}{cells[0]:>9} {cells[1]:>8} {cells[2]:>8}")
        if partial:
            print(
                "  * some jobs were not seen to their end in some round: "
                "the lag is over the jobs seen only"
            )


def _bytes(value: float) -> str:
    return f"{value / 1024:,.1f} KB" if value >= 1024 else f"{value:,.0f} B"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _share(value: float) -> str:
    return f"{value:.0%}"


#: The table's columns: heading -> (metric, format, whether to show the range).
_COLUMNS: dict[str, tuple[str, Callable[[float], str], bool]] = {
    "contender": ("", str, False),
    "CPU/poll µs": ("cpu_per_poll", _count, True),
    "polls/s": ("rate", _count, False),
    "peak RSS": ("hwm_mb", lambda v: f"{v:,.0f} MB", False),
    "RSS/job": ("rss_per_job", _bytes, False),
    "threads": ("threads", _count, False),
    "conns": ("connections", _count, False),
    "lag p50 s": ("lag_p50", lambda v: f"{v:.2f}", False),
    "lag p99 s": ("lag_p99", lambda v: f"{v:.2f}", True),
    "seen end": ("finished", _count, False),
    "errors": ("errors", _count, False),
    "server": ("server_share", _share, False),
    "noise c": ("noise_client", _share, False),
    "noise s": ("noise_server", _share, False),
}
_LEGEND = """\
  CPU/poll: the contender's process CPU time / status polls the server answered, over the run;
  RSS/job: (peak RSS - RSS before the first job) / jobs; threads: peak OS threads; conns: TCP
  connections opened during the run; lag: seen terminal - turned terminal, over the jobs seen;
  server: the server's share of its CPU; noise c / noise s: share of the client's / the
  server's CPU used by other processes meanwhile (the machine is shared: high noise, slow run)."""


def _metric(run: dict[str, Any], key: str, jobs: int) -> float | None:
    derived = {
        "cpu_per_poll": lambda: (
            run["cpu"] / run["polls"] * 1e6 if run["polls"] else None
        ),
        "rate": lambda: run["polls"] / run["wall"],
        "hwm_mb": lambda: run["hwm_kb"] / 1024,
        "rss_per_job": lambda: (run["hwm_kb"] - run["rss0_kb"]) * 1024 / jobs,
        "errors": lambda: run["errors"] + run["bad"],
        "server_share": lambda: run["server_cpu"] / run["server_wall"],
    }
    if key in derived:
        return derived[key]()
    return run.get(key)


def _targets(tables: dict[int, _Table]) -> None:
    print("\nTargets (issue #10):")
    for jobs, table in tables.items():
        cpu = {n: _med(table.metric(n, "cpu_per_poll")) for n in table.names}
        if cpu.get(REFERENCE) and cpu.get("aiohttp loop"):
            ratio = cpu[REFERENCE] / cpu["aiohttp loop"]  # type: ignore[operator]
            verdict = "met" if ratio <= 1.25 else "NOT met"
            print(
                f"  {jobs:>6,} jobs: statepoll CPU/poll / aiohttp loop = {ratio:.2f} "
                f"(target <= 1.25): {verdict}"
            )
        httpx_only, semaphore = (
            cpu.get("statepoll, httpx only"),
            cpu.get("httpx + semaphore"),
        )
        if httpx_only and semaphore:
            verdict = "met" if httpx_only < semaphore else "NOT met"
            print(
                f"  {jobs:>6,} jobs: statepoll over httpx alone {httpx_only:,.0f} µs/poll "
                f"vs httpx + semaphore {semaphore:,.0f} (target: below): {verdict}"
            )
        lag = _med(table.metric(REFERENCE, "lag_p99"))
        if jobs >= 10_000 and lag is not None:
            verdict = "met" if lag <= 1.5 else "NOT met"
            print(
                f"  {jobs:>6,} jobs: statepoll p99 detection lag {lag:.2f} s "
                f"(target <= 1.5 s): {verdict}"
            )


# -- the whole run ------------------------------------------------------------------------


def _timeline(args: argparse.Namespace) -> work.Timeline:
    return work.Timeline(1.0, args.lead, args.spread, args.grace)


@contextlib.contextmanager
def _pinned(cpu: int | None) -> Iterator[None]:
    """Pin this process (and so every child it starts) to ``cpu`` for the block."""
    if cpu is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def _versions() -> str:
    found = []
    for package in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found.append(f"{package} {importlib.metadata.version(package)}")
    return ", ".join(found)


def _measure(args: argparse.Namespace) -> dict[int, _Table]:
    client_cpu, server_cpu = _peers_server.split_cpus(pin=args.pin)
    args.client_cpu, args.server_cpu = client_cpu, server_cpu
    timeline = _timeline(args)
    lifetime = (
        len(args.contenders)
        * len(args.jobs)
        * args.rounds
        * (timeline.deadline + SETUP_ALLOWANCE)
        + 300
    )
    tables = {jobs: _Table(jobs, args.contenders) for jobs in args.jobs}
    with (
        _peers_server.running(server_cpu=server_cpu, lifetime=lifetime) as (url, pid),
        _pinned(client_cpu),
    ):
        args.server_pid = pid
        where = (
            f"server pid {pid} on CPU {server_cpu}, each contender on CPU {client_cpu}"
            if server_cpu is not None
            else "not pinned"
        )
        print(
            f"{where}; {args.in_flight} requests in flight at most (asyncio contenders)"
        )
        for jobs, table in tables.items():
            started = time.perf_counter()
            if set(args.contenders) & THREADED:
                reason = _probe_threads(jobs)
                for name in set(args.contenders) & THREADED if reason else ():
                    table.skipped[name] = f"{jobs:,} threads: {reason}"
            for round_no in range(args.rounds):
                names = args.contenders if round_no % 2 == 0 else args.contenders[::-1]
                for name in names:
                    if name in table.skipped:
                        continue
                    result = _run_child(name, url, jobs, args)
                    table.runs[name].append(result)
                    _progress(jobs, round_no, name, result)
            print(
                f"  ({jobs:,} jobs: {time.perf_counter() - started:.0f} s)", flush=True
            )
    return tables


def _progress(jobs: int, round_no: int, name: str, result: dict[str, Any]) -> None:
    if "failed" in result:
        line = result["failed"]
    else:
        cpu = _metric(result, "cpu_per_poll", jobs)
        line = (
            f"{cpu or 0:,.0f} µs/poll, {result['polls']:,} polls, "
            f"lag p99 {result['lag_p99'] or float('nan'):.2f} s, "
            f"{result['finished']:,}/{jobs:,} seen, {result['process_wall']:.0f} s, "
            f"noise {result.get('noise_client', 0):.0%}/{result.get('noise_server', 0):.0%}"
            f" after waiting {result['waited']:.0f} s"
        )
    print(f"  {jobs:>6,} jobs, round {round_no + 1}, {name}: {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--contenders",
        nargs="+",
        choices=list(CONTENDERS),
        default=list(CONTENDERS),
        metavar="NAME",
        help=f"run only these, in this order (default: all): {', '.join(CONTENDERS)}",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=64,
        help="connection and in-flight limit of the asyncio contenders",
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=4.0,
        help="seconds every job runs before the first turns terminal",
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=10.0,
        help="seconds over which the jobs turn terminal",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds after the last terminal time before a contender stops",
    )
    parser.add_argument(
        "--quiet",
        type=float,
        default=0.25,
        help="start a run once other processes use at most this share of either CPU",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="seconds to wait for that before each run (default 30, 2 with --quick; 0: never)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin server and contenders to CPUs",
    )
    parser.add_argument(
        "--raw", type=Path, help="also write every run's measurements to this JSON file"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000 jobs, 1 round, a shorter timeline (under 2 minutes)",
    )
    parser.add_argument("--probe-threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe_threads:
        _probe(args.probe_threads)
        return
    if args.max_wait is None:
        args.max_wait = 2.0 if args.quick else 30.0
    if args.quick:
        args.jobs, args.rounds, args.lead, args.spread, args.grace = (
            [1000],
            1,
            2.0,
            4.0,
            4.0,
        )
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; {_versions()}"
    )
    print(f"command: python bench/peers.py {' '.join(sys.argv[1:])}".rstrip())
    started = time.perf_counter()
    tables = _measure(args)
    if args.raw:
        args.raw.write_text(
            json.dumps({str(j): t.runs for j, t in tables.items()}, indent=1)
        )
    for table in tables.values():
        table.print(args.rounds)
        table.print_ratios()
    _targets(tables)
    print(f"\n(ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
