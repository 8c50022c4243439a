"""What stores.py measures outside its drivers: CPU time from /proc, the workload's spec, profiles.

- CPU time of a process, of a PostgreSQL cluster (the postmaster and every
  backend, reaped ones included), and of the whole machine (``/proc/stat``),
  so that the share other processes took meanwhile can be reported as noise;
- the spec every driver of stores.py polls with: one lifecycle that stays
  ``Running`` (``_server.py`` answers every GET with that), delays of 1 ms
  stretched by the drivers' ``time_scale``, and proportional jitter of ±50 %,
  so that jobs adopted together spread out instead of polling in lockstep;
- a cProfile split by package, with the time of C built-ins charged to the
  package that called them, and the CPU spent inside the store's own calls.
"""

from __future__ import annotations

import json
import os
import pstats
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The spec's delays (initial and interval) before ``time_scale``: scale = seconds / 0.001.
SPEC_DELAY = 0.001
#: Proportional jitter of the spec: each delay is drawn from delay x (1 ± this).
JITTER = 0.5

SPEC: dict[str, Any] = {
    "spec_version": "1",
    "service": {
        "name": "bench",
        "description": "bench/_server.py: every GET is answered {'status': 'Running'}.",
        "base_url": "http://127.0.0.1:9",
        "max_in_flight": 100000,
    },
    "lifecycles": {
        "job": {
            "description": "Stays Running: every poll is a no-change observation.",
            "states": {
                "Running": {"initial": True},
                "Done": {"outcome": "success"},
            },
            "transitions": [{"from": "Running", "to": "Done"}],
            "poll": {
                "request": {
                    "method": "GET",
                    "path": "/jobs/{job_id}",
                    "expect_status": [200],
                },
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {"Running": "Running", "Done": "Done"},
                    }
                ],
            },
            "schedule": {
                "initial_delay": SPEC_DELAY,
                "interval": SPEC_DELAY,
                "backoff": {"kind": "fixed"},
                "jitter": {"kind": "proportional", "ratio": JITTER},
                "max_attempts": 1_000_000_000,
            },
        }
    },
}


def write_spec(directory: Path) -> Path:
    """Write the workload's spec into ``directory``; return its path."""
    path = directory / "stores_spec.json"
    path.write_text(json.dumps(SPEC, indent=1), encoding="utf-8")
    return path


def scale_for(interval: float) -> float:
    """Return the ``time_scale`` that makes the spec's mean delay ``interval`` seconds."""
    return interval / SPEC_DELAY


# -- CPU time from /proc ------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ")".
    return text.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) process ``pid`` has used (0 once it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def tree_cpu_seconds(root: int) -> float:
    """Return the CPU time of ``root`` and its children, the exited ones it reaped included.

    A PostgreSQL cluster is its postmaster and one child per connection (and a
    few helpers): their own times, plus the postmaster's ``cutime``/``cstime``
    for children that have exited.
    """
    fields = _stat_fields(root)
    if fields is None:
        return 0.0
    total = sum(int(fields[i]) for i in (11, 12, 13, 14)) / _TICK
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        child = _stat_fields(int(entry.name))
        if child is not None and int(child[1]) == root:
            total += (int(child[11]) + int(child[12])) / _TICK
    return total


def machine_busy_seconds() -> float:
    """Return the CPU time every CPU of the machine has been busy (user, nice, system, steal).

    Interrupt time is left out: loopback networking is counted there, ours
    included, and it is no process's own time.
    """
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, first[1:9])
    return (user + nice + system + steal) / _TICK


def rss_kb(pid: int | str = "self") -> tuple[int, int]:
    """Return ``(VmRSS, VmHWM)`` of a process in KB (its resident set now and at its peak)."""
    found = {"VmRSS": 0, "VmHWM": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in found:
            found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


def percentile(values: Iterable[float], share: float) -> float | None:
    """Return the nearest-rank percentile of ``values`` (``None`` when empty)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, round(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -- profiles -----------------------------------------------------------------------------

#: The store's calls a driver makes (``add`` is left out: it calls ``add_many``).
STORE_CALLS = frozenset(
    {
        "claim",
        "commit",
        "next_due",
        "wait_changed",
        "heartbeat",
        "release",
        "add_many",
        "get",
    }
)
_PACKAGES = (
    ("/engine/stores/", "store (engine/stores)"),
    ("/psycopg_binary/", "psycopg"),
    ("/psycopg/", "psycopg"),
    ("/json/", "json (stdlib)"),
    ("/sqlite3/", "sqlite3"),
    ("/engine/", "engine (rest)"),
    ("/statemachines/", "statemachines"),
    ("/httpx_aiohttp/", "httpx, httpx_aiohttp"),
    ("/httpx/", "httpx, httpx_aiohttp"),
    ("/aiohttp/", "aiohttp, yarl, multidict"),
    ("/yarl/", "aiohttp, yarl, multidict"),
    ("/multidict/", "aiohttp, yarl, multidict"),
    ("/asyncio/", "asyncio"),
    ("/attr/", "attrs"),
)


def package_of(filename: str) -> str:
    """Name the package a profiled function belongs to (``C`` for a built-in)."""
    if filename == "~" or filename.startswith("<"):
        return "C"
    for marker, name in _PACKAGES:
        if marker in filename:
            return name
    return "other"


def split_profile(path: Path) -> tuple[float, dict[str, float], float]:
    """Return ``(total CPU, CPU by package, CPU inside the store's calls)`` of a profile.

    A C built-in's time (a socket read, ``json.dumps``' encoder, a psycopg
    C method) is charged to the packages of its callers, in proportion to
    what each caller spent in it. The store's calls are the top-level methods
    of ``engine/stores``: their cumulative time counts what they ran (the
    profiler stops a coroutine's clock while it is suspended), psycopg,
    json and the SQL's round trips included; the event loop's own work to
    wake them is not.
    """
    stats: dict[Any, Any] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    split: dict[str, float] = {}
    total = 0.0
    store = 0.0
    for (filename, _line, name), (_cc, _nc, tottime, cumtime, callers) in stats.items():
        total += tottime
        package = package_of(filename)
        if package == "store (engine/stores)" and name in STORE_CALLS:
            store += cumtime
        if package != "C":
            split[package] = split.get(package, 0.0) + tottime
            continue
        charged = 0.0
        for (cfile, _cline, _cname), timing in callers.items():
            owner = package_of(cfile)
            if owner == "C":
                continue
            split[owner] = split.get(owner, 0.0) + timing[2]
            charged += timing[2]
        if tottime > charged:
            split["C, called from C"] = (
                split.get("C, called from C", 0.0) + tottime - charged
            )
    return total, split, store
