"""Reports: a job's timeline (show) and time-in-state statistics (stats)."""

from __future__ import annotations

import datetime as dt
import os
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._read import read_records


def _parse_time(text: Any) -> float:
    try:
        return (
            dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%fZ")
            .replace(tzinfo=dt.UTC)
            .timestamp()
        )
    except ValueError:
        return 0.0


def show_log(path: str | os.PathLike[str], *, job: str | None = None) -> list[str]:
    """Return each job's timeline as readable lines (or one job's)."""
    by_job: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for record in read_records(path):
        if job is None or record.get("job_id") == job:
            by_job[(str(record.get("service")), str(record.get("job_id")))].append(
                record
            )
    lines: list[str] = []
    for (service, job_id), records in by_job.items():
        first = records[0]
        lines.append(f"{service}/{first.get('lifecycle')} job {job_id}")
        start = _parse_time(first.get("time"))
        for r in records:
            offset = _parse_time(r.get("time")) - start
            lines.append(f"  {r.get('time')}  +{offset:8.3f}s  {_describe(r)}")
        lines.append("")
    if job is not None and not by_job:
        lines.append(f"no records for job {job}")
    return lines


def _describe(r: Mapping[str, Any]) -> str:
    kind = r.get("kind")
    detail = r.get("detail") or {}
    status = f" HTTP {r['http_status']}" if r.get("http_status") is not None else ""
    item = f" item {r.get('item_id')}" if r.get("item_id") else ""
    if kind in ("transition", "item_transition"):
        how = f" ({r.get('trigger')})" if r.get("trigger") else ""
        return f"{kind}{item}: {r.get('from')} -> {r.get('to')}{how}{status}"
    if kind == "submitted":
        return f"{r.get('trigger') or 'submit'}ted in {r.get('to')}{status}"
    if kind in ("retry", "retry_after"):
        return f"{kind}: {detail.get('error', '')} (next in {detail.get('delay')}s){status}"
    if kind == "completed":
        outcome, polls = detail.get("outcome"), detail.get("polls")
        return f"completed: {r.get('to')} ({outcome}) after {polls} polls"
    if kind in ("illegal_transition", "unknown_state"):
        seen, policy = r.get("observed"), detail.get("policy")
        return f"{kind}{item}: observed {seen!r} in {r.get('from')} ({policy}){status}"
    extra = ", ".join(f"{k}={v}" for k, v in detail.items())
    return f"{kind}{item}{status}{': ' + extra if extra else ''}"


@attrs.frozen(kw_only=True)
class StateTime:
    """Time spent in one state, over every visit."""

    state: str
    count: int
    median: float
    p95: float
    max: float


@attrs.frozen(kw_only=True)
class LifecycleStats:
    """What a log says about one service's lifecycle."""

    service: str
    lifecycle: str
    jobs: int
    states: tuple[StateTime, ...]
    polls_median: float | None
    polls_max: int | None
    outcomes: tuple[tuple[str, int], ...]


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def log_stats(path: str | os.PathLike[str]) -> list[LifecycleStats]:
    """Per (service, lifecycle): time in each state, polls per job, outcomes."""
    entered: dict[tuple[str, str], tuple[str, float]] = {}
    durations: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    jobs: dict[tuple[str, str], set[str]] = defaultdict(set)
    polls: dict[tuple[str, str], list[int]] = defaultdict(list)
    outcomes: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: defaultdict(int)
    )
    for r in read_records(path):
        kind = r.get("kind")
        if kind == "item_transition":
            continue
        group = (str(r.get("service")), str(r.get("lifecycle")))
        job = str(r.get("job_id"))
        at = _parse_time(r.get("time"))
        jobs[group].add(job)
        if kind in ("submitted", "resumed") and r.get("to"):
            entered.setdefault((group[0], job), (str(r["to"]), at))
        elif kind == "transition":
            before = entered.get((group[0], job))
            if before is not None:
                durations[group][before[0]].append(at - before[1])
            entered[(group[0], job)] = (str(r.get("to")), at)
        elif kind == "completed":
            detail = r.get("detail") or {}
            outcomes[group][str(detail.get("outcome"))] += 1
            if isinstance(detail.get("polls"), int):
                polls[group].append(detail["polls"])
        elif kind in ("timed_out", "errored"):
            outcomes[group][str(kind)] += 1
    stats = []
    for group in sorted(jobs):
        states = tuple(
            StateTime(
                state=s,
                count=len(v),
                median=statistics.median(v),
                p95=_p95(v),
                max=max(v),
            )
            for s, v in durations[group].items()
        )
        counts = polls[group]
        stats.append(
            LifecycleStats(
                service=group[0],
                lifecycle=group[1],
                jobs=len(jobs[group]),
                states=states,
                polls_median=statistics.median(counts) if counts else None,
                polls_max=max(counts) if counts else None,
                outcomes=tuple(sorted(outcomes[group].items())),
            )
        )
    return stats


def format_stats(stats: Sequence[LifecycleStats]) -> list[str]:
    """Render :func:`log_stats` as aligned tables."""
    lines: list[str] = []
    for s in stats:
        polls = (
            "-"
            if s.polls_median is None
            else f"median {s.polls_median:g}, max {s.polls_max}"
        )
        outcomes = ", ".join(f"{k} {v}" for k, v in s.outcomes) or "none yet"
        lines.append(
            f"{s.service}/{s.lifecycle}: {s.jobs} jobs; "
            f"polls per job: {polls}; outcomes: {outcomes}"
        )
        if s.states:
            width = max(len(t.state) for t in s.states)
            lines.append(
                f"  {'state':<{width}}  {'visits':>6}  {'median s':>9}  {'p95 s':>9}  {'max s':>9}"
            )
            for t in s.states:
                lines.append(
                    f"  {t.state:<{width}}  {t.count:>6}  "
                    f"{t.median:>9.3f}  {t.p95:>9.3f}  {t.max:>9.3f}"
                )
        lines.append("")
    return lines
