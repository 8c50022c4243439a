"""Reports: each job's timeline (show) and time-in-state statistics (stats), of a log or a store."""

from __future__ import annotations

import itertools
import os
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from ._describe import describe, detail, parse_time
from ._format import locate_log
from ._legality import SESSION_ENDS
from ._read import log_records
from ._store import StoreRow, open_store_audit, store_records

_RETRIES: Final = frozenset({"retrying", "retry", "retry_after"})
_Record = Mapping[str, Any]


# -- show -----------------------------------------------------------------------------


def show_log(path: str | os.PathLike[str], *, job: str | None = None) -> list[str]:
    """Return each job's timeline as readable lines (or one job's), from a log or a store.

    ``spec`` records are listed first, as the specs the log carries. A
    submission not yet known by its job id (``intent``, ``lookup``,
    ``unresolved_submission``) is shown by its client reference, and joins its
    job's timeline once a record names both. ``job`` matches a job id or a
    client reference (or, in a job store, a job's key).

    A job store's timelines follow each job's chain (whichever driver wrote
    each record), the jobs in the order they were first committed.
    """
    where, fmt = locate_log(path)
    if fmt == "store":
        return _show_store(where, os.fspath(path), job)
    specs: list[str] = []
    groups: dict[tuple[str, str], list[_Record]] = {}
    for record in log_records(Path(where), fmt):
        if record.get("kind") == "spec":
            specs.append(f"  {record.get('time')}  {describe(record)}")
            continue
        _place(groups, record)
    if job is not None:
        groups = {key: rs for key, rs in groups.items() if _matches(key, rs, job)}
    lines: list[str] = []
    if specs and job is None:
        lines += ["specs recorded in this log", *specs, ""]
    for (service, name), records in groups.items():
        lines += _timeline(f"{service}/{records[0].get('lifecycle')} {name}", records)
    if job is not None and not groups:
        lines.append(f"no records for job {job}")
    return lines


def _timeline(title: str, records: Sequence[_Record]) -> list[str]:
    lines = [title]
    start = parse_time(records[0].get("time"))
    for r in records:
        offset = parse_time(r.get("time")) - start
        lines.append(f"  {r.get('time')}  +{offset:8.3f}s  {describe(r)}")
    lines.append("")
    return lines


def _show_store(where: Path | str, name: str, job: str | None) -> list[str]:
    specs: list[str] = []
    timelines: list[tuple[int, list[str]]] = []
    with open_store_audit(where, name) as audit:
        for row in audit.without_job():
            if isinstance(row.record, dict):
                specs.append(f"  {row.record.get('time')}  {describe(row.record)}")
        for key, records, first in _chains(audit.by_job()):
            if records and (job is None or _store_matches(key, records, job)):
                timelines.append(
                    (first, _timeline(_store_title(key, records), records))
                )
    lines: list[str] = []
    if specs and job is None:
        lines += ["specs recorded in this store", *specs, ""]
    for _, timeline in sorted(timelines, key=lambda t: t[0]):
        lines += timeline
    if job is not None and not timelines:
        lines.append(f"no records for job {job}")
    return lines


def _chains(
    rows: Iterable[tuple[StoreRow, Any]],
) -> Iterator[tuple[Any, list[_Record], int]]:
    """Yield (key, its records in chain order, its first row's id), one job at a time."""
    for key, group in itertools.groupby((row for row, _ in rows), lambda r: r.job):
        chain = list(group)
        records: list[_Record] = [r.record for r in chain if isinstance(r.record, dict)]
        yield key, records, min(r.id for r in chain)


def _store_title(key: Any, records: Sequence[_Record]) -> str:
    first = records[0]
    ids = [r.get("job_id") for r in records if r.get("job_id")]
    refs = [detail(r).get("client_ref") for r in records if detail(r).get("client_ref")]
    name = f"job {ids[-1]}" if ids or not refs else f"submission {refs[0]}"
    return f"{first.get('service')}/{first.get('lifecycle')} {name} (key {key})"


def _store_matches(key: Any, records: Sequence[_Record], wanted: str) -> bool:
    return key == wanted or any(
        r.get("job_id") == wanted or detail(r).get("client_ref") == wanted
        for r in records
    )


def _place(groups: dict[tuple[str, str], list[_Record]], record: _Record) -> None:
    service = str(record.get("service"))
    job_id = str(record.get("job_id") or "")
    # A chained job's records before its submit name it by key.
    ref = detail(record).get("client_ref") or detail(record).get("key")
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
        r.get("job_id") == wanted or detail(r).get("client_ref") == wanted
        for r in records
    ) or key[1] in (f"job {wanted}", f"submission {wanted}")


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
    """Per (service, lifecycle): time in each state, polls per job, outcomes, retries.

    A job store's records are read job by job, each in its chain's order.
    """
    where, fmt = locate_log(path)
    records = (
        store_records(where, os.fspath(path), by_job=True)
        if fmt == "store"
        else log_records(Path(where), fmt)
    )
    tallies: dict[tuple[str, str], _Tally] = defaultdict(_Tally)
    entered: dict[tuple[str, str], tuple[str, float]] = {}
    for r in records:
        kind = r.get("kind")
        if kind in ("item_transition", "spec"):
            continue
        group = (str(r.get("service")), str(r.get("lifecycle")))
        tally = tallies[group]
        job = (group[0], str(r.get("job_id") or ""))
        at = parse_time(r.get("time"))
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
            done = detail(r)
            tally.outcomes[str(done.get("outcome"))] += 1
            if isinstance(done.get("polls"), int):
                tally.polls.append(done["polls"])
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
