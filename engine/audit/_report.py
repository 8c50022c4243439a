"""Reports: a job's timeline (show) and time-in-state statistics (stats)."""

from __future__ import annotations

import datetime as dt
import os
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import attrs

from ._read import read_records
from ._verify import SESSION_ENDS

#: Longest excerpt of a value a timeline line shows (a body may be megabytes).
_EXCERPT: Final = 120
_RETRIES: Final = frozenset({"retrying", "retry", "retry_after"})
_Record = Mapping[str, Any]


def _parse_time(text: Any) -> float:
    try:
        return (
            dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%fZ")
            .replace(tzinfo=dt.UTC)
            .timestamp()
        )
    except ValueError:
        return 0.0


def _detail(r: _Record) -> Mapping[str, Any]:
    detail = r.get("detail")
    return detail if isinstance(detail, Mapping) else {}


def _excerpt(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


# -- show -----------------------------------------------------------------------------


def show_log(path: str | os.PathLike[str], *, job: str | None = None) -> list[str]:
    """Return each job's timeline as readable lines (or one job's).

    ``spec`` records are listed first, as the specs the log carries. A
    submission not yet known by its job id (``intent``, ``lookup``,
    ``unresolved_submission``) is shown by its client reference, and joins its
    job's timeline once a record names both. ``job`` matches a job id or a
    client reference.
    """
    specs: list[str] = []
    groups: dict[tuple[str, str], list[_Record]] = {}
    for record in read_records(path):
        if record.get("kind") == "spec":
            specs.append(f"  {record.get('time')}  {_describe(record)}")
            continue
        _place(groups, record)
    if job is not None:
        groups = {key: rs for key, rs in groups.items() if _matches(key, rs, job)}
    lines: list[str] = []
    if specs and job is None:
        lines += ["specs recorded in this log", *specs, ""]
    for (service, name), records in groups.items():
        first = records[0]
        lines.append(f"{service}/{first.get('lifecycle')} {name}")
        start = _parse_time(first.get("time"))
        for r in records:
            offset = _parse_time(r.get("time")) - start
            lines.append(f"  {r.get('time')}  +{offset:8.3f}s  {_describe(r)}")
        lines.append("")
    if job is not None and not groups:
        lines.append(f"no records for job {job}")
    return lines


def _place(groups: dict[tuple[str, str], list[_Record]], record: _Record) -> None:
    service = str(record.get("service"))
    job_id = str(record.get("job_id") or "")
    ref = _detail(record).get("client_ref")
    by_ref = (service, f"submission {ref}")
    if not job_id:
        groups.setdefault(by_ref, []).append(record)
        return
    by_job = (service, f"job {job_id}")
    if ref is not None and by_ref in groups:
        # The job id is known now: the submission's earlier records join it.
        groups[by_job] = groups.pop(by_ref) + groups.get(by_job, [])
    groups.setdefault(by_job, []).append(record)


def _matches(key: tuple[str, str], records: list[_Record], wanted: str) -> bool:
    return any(
        r.get("job_id") == wanted or _detail(r).get("client_ref") == wanted
        for r in records
    ) or key[1] in (f"job {wanted}", f"submission {wanted}")


def _describe(r: _Record) -> str:
    kind = str(r.get("kind"))
    describe = _DESCRIBE.get(kind)
    if describe is not None:
        return describe(r, _detail(r), _status(r), _item(r))
    extra = ", ".join(f"{k}={_excerpt(v)}" for k, v in _detail(r).items())
    return f"{kind}{_item(r)}{_status(r)}{': ' + extra if extra else ''}"


def _status(r: _Record) -> str:
    return f" HTTP {r['http_status']}" if r.get("http_status") is not None else ""


def _item(r: _Record) -> str:
    return f" item {r.get('item_id')}" if r.get("item_id") else ""


_Describe = Callable[[_Record, Mapping[str, Any], str, str], str]


def _transition(r: _Record, _d: Mapping[str, Any], status: str, item: str) -> str:
    how = f" ({r.get('trigger')})" if r.get("trigger") else ""
    return f"{r.get('kind')}{item}: {r.get('from')} -> {r.get('to')}{how}{status}"


def _submitted(r: _Record, _d: Mapping[str, Any], status: str, _i: str) -> str:
    how = "tracked" if r.get("trigger") == "track" else "submitted"
    return f"{how} in {r.get('to')}{status}"


def _retry(r: _Record, d: Mapping[str, Any], status: str, _i: str) -> str:
    error = _excerpt(d.get("error", ""))
    return f"{r.get('kind')}: {error} (next in {d.get('delay')}s){status}"


def _retrying(_r: _Record, d: Mapping[str, Any], status: str, _i: str) -> str:
    budget = f" of {d['budget']}" if d.get("budget") is not None else ""
    failures = f"failure {d.get('failures')}{budget}; " if "failures" in d else ""
    what = f"{d['kind']} error" if d.get("kind") else "error"
    error = _excerpt(d.get("error", ""))
    return f"retrying after a {what}: {error} ({failures}next in {d.get('delay')}s){status}"


def _completed(r: _Record, d: Mapping[str, Any], _s: str, _i: str) -> str:
    return f"completed: {r.get('to')} ({d.get('outcome')}) after {d.get('polls')} polls"


def _observed(r: _Record, d: Mapping[str, Any], status: str, item: str) -> str:
    seen = _excerpt(r.get("observed"))
    return f"{r.get('kind')}{item}: observed {seen} in {r.get('from')} ({d.get('policy')}){status}"


def _forgotten(r: _Record, _d: Mapping[str, Any], _s: str, _i: str) -> str:
    where = f" in {r.get('to')}" if r.get("to") else ""
    return f"forgotten{where}: no longer tracked, whatever the service does next"


def _intent(_r: _Record, d: Mapping[str, Any], _s: str, _i: str) -> str:
    return f"about to submit (client_ref {d.get('client_ref')})"


def _lookup(r: _Record, d: Mapping[str, Any], status: str, _i: str) -> str:
    found = f"found job {r.get('job_id')}" if r.get("job_id") else "found no job"
    return f"looked up by client_ref {d.get('client_ref')}{status}: {found}"


def _unresolved(_r: _Record, d: Mapping[str, Any], status: str, _i: str) -> str:
    return (
        f"unresolved submission (client_ref {d.get('client_ref')}){status}: the service "
        "may have created a job; check it by hand (it is never re-sent)"
    )


def _spec(r: _Record, d: Mapping[str, Any], _s: str, _i: str) -> str:
    source = d.get("source") or r.get("spec") or "?"
    return f"spec {r.get('service')} {r.get('spec_hash')} from {source}"


_DESCRIBE: Final[dict[str, _Describe]] = {
    "transition": _transition,
    "item_transition": _transition,
    "submitted": _submitted,
    "retry": _retry,
    "retry_after": _retry,
    "retrying": _retrying,
    "completed": _completed,
    "illegal_transition": _observed,
    "unknown_state": _observed,
    "forgotten": _forgotten,
    "intent": _intent,
    "lookup": _lookup,
    "unresolved_submission": _unresolved,
    "spec": _spec,
}


# -- stats ----------------------------------------------------------------------------


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
    """What a log says about one service's lifecycle.

    ``outcomes`` counts completions by outcome, and jobs that ended otherwise
    by record kind (``timed_out``, ``errored``, ``forgotten``,
    ``unresolved_submission``); ``retries`` counts retried requests.
    """

    service: str
    lifecycle: str
    jobs: int
    states: tuple[StateTime, ...]
    polls_median: float | None
    polls_max: int | None
    outcomes: tuple[tuple[str, int], ...]
    retries: int = 0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


@attrs.define
class _Tally:
    """What one (service, lifecycle) adds up to while the log is read."""

    jobs: set[str] = attrs.Factory(set)
    durations: dict[str, list[float]] = attrs.Factory(lambda: defaultdict(list))
    polls: list[int] = attrs.Factory(list)
    outcomes: dict[str, int] = attrs.Factory(lambda: defaultdict(int))
    retries: int = 0

    def stats(self, service: str, lifecycle: str) -> LifecycleStats:
        states = tuple(
            StateTime(
                state=s,
                count=len(v),
                median=statistics.median(v),
                p95=_p95(v),
                max=max(v),
            )
            for s, v in self.durations.items()
        )
        return LifecycleStats(
            service=service,
            lifecycle=lifecycle,
            jobs=len(self.jobs),
            states=states,
            polls_median=statistics.median(self.polls) if self.polls else None,
            polls_max=max(self.polls) if self.polls else None,
            outcomes=tuple(sorted(self.outcomes.items())),
            retries=self.retries,
        )


def log_stats(path: str | os.PathLike[str]) -> list[LifecycleStats]:
    """Per (service, lifecycle): time in each state, polls per job, outcomes, retries."""
    tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    entered: dict[tuple[str, str], tuple[str, float]] = {}
    for r in read_records(path):
        kind = r.get("kind")
        if kind in ("item_transition", "spec"):
            continue
        group = (str(r.get("service")), str(r.get("lifecycle")))
        tally = tallies[group]
        job = (group[0], str(r.get("job_id") or ""))
        at = _parse_time(r.get("time"))
        if job[1]:
            tally.jobs.add(job[1])
        if kind == "submitted" and r.get("to"):
            entered[job] = (str(r["to"]), at)  # a re-track starts the clock again
        elif kind == "resumed" and r.get("to"):
            entered.setdefault(job, (str(r["to"]), at))
        elif kind == "transition":
            before = entered.get(job)
            if before is not None:
                tally.durations[before[0]].append(at - before[1])
            entered[job] = (str(r.get("to")), at)
        elif kind in _RETRIES:
            tally.retries += 1
        if kind == "completed":
            detail = _detail(r)
            tally.outcomes[str(detail.get("outcome"))] += 1
            if isinstance(detail.get("polls"), int):
                tally.polls.append(detail["polls"])
        elif kind in SESSION_ENDS:
            tally.outcomes[str(kind)] += 1
        if kind in SESSION_ENDS:
            entered.pop(job, None)
    return [
        tallies[g].stats(*g)
        for g in sorted(tallies)
        if tallies[g].jobs or tallies[g].outcomes
    ]


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
        retries = f"; retries: {s.retries}" if s.retries else ""
        lines.append(
            f"{s.service}/{s.lifecycle}: {s.jobs} jobs; "
            f"polls per job: {polls}; outcomes: {outcomes}{retries}"
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
