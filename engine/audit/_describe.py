"""One readable line per audit record, for ``show``: what happened, when, and how."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Final

_EXCERPT: Final = 120
_Record = Mapping[str, Any]


def parse_time(text: Any) -> float:
    """Return a record's ``time`` as an epoch (0.0 when it is not one)."""
    try:
        return (
            dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%fZ")
            .replace(tzinfo=dt.UTC)
            .timestamp()
        )
    except ValueError:
        return 0.0


def detail(r: _Record) -> Mapping[str, Any]:
    """Return a record's ``detail`` (empty when it is not a mapping)."""
    detail = r.get("detail")
    return detail if isinstance(detail, Mapping) else {}


def _excerpt(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def describe(r: _Record) -> str:
    """Return one line saying what ``r`` records."""
    kind = str(r.get("kind"))
    describe = _DESCRIBE.get(kind)
    if describe is not None:
        return describe(r, detail(r), _status(r), _item(r))
    extra = ", ".join(f"{k}={_excerpt(v)}" for k, v in detail(r).items())
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
    then = d.get("then")
    started = (
        f"; then {then.get('spec')}/{then.get('lifecycle')} (key {then.get('key')})"
        if isinstance(then, Mapping)
        else ""
    )
    return (
        f"completed: {r.get('to')} ({d.get('outcome')}) after {d.get('polls')} polls"
        f"{started}"
    )


def _chained(r: _Record, d: Mapping[str, Any], _s: str, _i: str) -> str:
    return (
        f"chained from {r.get('service')}/{d.get('from_lifecycle')} job "
        f"{d.get('from_job_id')} (key {d.get('chained_from')}), in {r.get('to')}"
    )


def _observed(r: _Record, d: Mapping[str, Any], status: str, item: str) -> str:
    seen = _excerpt(r.get("observed"))
    return f"{r.get('kind')}{item}: observed {seen} in {r.get('from')} ({d.get('policy')}){status}"


def _progress(_r: _Record, d: Mapping[str, Any], status: str, _i: str) -> str:
    fraction = d.get("progress")
    if not isinstance(fraction, (int, float)):
        return f"progress: {_excerpt(fraction)}{status}"
    return f"progress: {fraction:.0%} done{status}"


def _forgotten(r: _Record, _d: Mapping[str, Any], _s: str, _i: str) -> str:
    where = f" in {r.get('to')}" if r.get("to") else ""
    return f"forgotten{where}: no longer tracked, whatever the service does next"


def _intent(_r: _Record, d: Mapping[str, Any], _s: str, _i: str) -> str:
    ref = d.get("client_ref")
    # A chained job without a client reference is named by its key instead.
    return f"about to submit (client_ref {ref})" if ref else "about to submit"


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
    "progress": _progress,
    "chained": _chained,
    "intent": _intent,
    "lookup": _lookup,
    "unresolved_submission": _unresolved,
    "spec": _spec,
}
