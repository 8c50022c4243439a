"""The auditable transition log: append-only, hash-chained, redacted records.

Every record names its job, the move, the trigger, the HTTP status, the raw
observed value, the spec's content hash, and the hash of the record before it,
so a removed, reordered or edited record breaks the chain. Two sinks take the
same records: JSON Lines (default; one ``write()`` of a whole line per record,
flushed) and SQLite (WAL, a commit per record). Secrets never reach disk: each
sink replaces every configured secret in every string before hashing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import sqlite3
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import attrs

from statemachines import (
    Spec,
    StatepollError,
    build_machine,
    builtin_names,
    load_builtin,
    load_spec,
    split_pointer,
)

__all__ = [
    "AUDIT_KINDS",
    "GENESIS",
    "AuditEntry",
    "AuditProblem",
    "AuditSink",
    "AuditWriteError",
    "JsonlAuditLog",
    "LifecycleStats",
    "Redactor",
    "SqliteAuditLog",
    "format_stats",
    "log_stats",
    "open_audit",
    "read_records",
    "record_hash",
    "show_log",
    "verify_log",
]

AUDIT_KINDS: Final = (
    "submitted",
    "transition",
    "item_transition",
    "retry",
    "retry_after",
    "gave_up",
    "illegal_transition",
    "unknown_state",
    "cancel_requested",
    "hook_failed",
    "completed",
    "timed_out",
    "errored",
    "resumed",
)

#: ``prev`` of the first record.
GENESIS: Final = "sha256:" + "0" * 64
REDACTED: Final = "[REDACTED]"
_SQLITE_SUFFIXES: Final = (".db", ".sqlite", ".sqlite3")


class AuditWriteError(StatepollError, OSError):
    """A sink could not write a record; nothing of it was written."""


@attrs.frozen(kw_only=True)
class AuditEntry:
    """What the engine hands to a sink (the sink adds seq, time and hashes)."""

    kind: str
    service: str
    lifecycle: str
    job_id: str
    spec_hash: str
    spec_source: str = ""
    item_id: str | None = None
    from_state: str | None = None
    to_state: str | None = None
    trigger: str | None = None
    attempt: int = 0
    http_status: int | None = None
    observed: Any = attrs.field(default=None, hash=False)
    detail: Mapping[str, Any] = attrs.field(factory=dict, hash=False)


class AuditSink(Protocol):
    """Where audit records go."""

    def append(self, entry: AuditEntry) -> Mapping[str, Any]:
        """Write one record and return it as written."""
        ...

    def close(self) -> None:
        """Flush and release the sink."""
        ...


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def record_hash(record: Mapping[str, Any]) -> str:
    """Return the hash of a record: sha256 of its canonical JSON without ``hash``."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return "sha256:" + hashlib.sha256(_canonical(body).encode("utf-8")).hexdigest()


def _scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Replace every secret in every string of ``value`` (deep copy)."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {_scrub(k, secrets): _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets) for v in value]
    return value


class Redactor:
    """Blanks what a spec marks sensitive, and secrets, in values bound for the log."""

    def __init__(
        self,
        *,
        secrets: Iterable[str] = (),
        pointers: Iterable[str] = (),
        query_params: Iterable[str] = (),
    ) -> None:
        """Redact ``secrets`` anywhere, values at ``pointers``, and ``query_params`` in URLs."""
        # A live set (the engine adds credentials as it meets them) is kept by reference.
        self._secrets = secrets if isinstance(secrets, set) else set(secrets)
        self._pointers = tuple(split_pointer(p) for p in pointers)
        params = tuple(query_params)
        self._query = (
            re.compile(
                r"([?&](?:" + "|".join(re.escape(p) for p in params) + r")=)[^&#\s\"']*"
            )
            if params
            else None
        )

    @classmethod
    def for_spec(cls, spec: Spec, secrets: Iterable[str] = ()) -> Redactor:
        """Return the redactor of ``spec`` (its redact pointers and query parameters)."""
        return cls(
            secrets=secrets,
            pointers=spec.service.redact_pointers,
            query_params=spec.service.redact_query_params,
        )

    def redact(self, value: Any) -> Any:
        """Return a redacted deep copy of ``value`` (the input is never changed)."""
        value = _copy(value)
        for tokens in self._pointers:
            _blank(value, tokens)
        return self._strings(value)

    def _strings(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret and secret in value:
                    value = value.replace(secret, REDACTED)
            if self._query is not None and ("?" in value or "&" in value):
                value = self._query.sub(r"\1" + REDACTED, value)
            return value
        if isinstance(value, dict):
            return {k: self._strings(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._strings(v) for v in value]
        return value


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def _blank(node: Any, tokens: tuple[str, ...]) -> None:
    *parents, last = tokens or ("",)
    for token in parents:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return
    if isinstance(node, dict) and last in node and node[last] is not None:
        node[last] = REDACTED


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(
    entry: AuditEntry, seq: int, prev: str, secrets: Sequence[str]
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "seq": seq,
        "time": _now(),
        "kind": entry.kind,
        "service": entry.service,
        "lifecycle": entry.lifecycle,
        "job_id": entry.job_id,
        "item_id": entry.item_id,
        "from": entry.from_state,
        "to": entry.to_state,
        "trigger": entry.trigger,
        "attempt": entry.attempt,
        "http_status": entry.http_status,
        "observed": entry.observed,
        "spec_hash": entry.spec_hash,
        "spec": entry.spec_source,
        "detail": dict(entry.detail),
        "prev": prev,
    }
    # Secrets are scrubbed before hashing: the hash covers what is on disk.
    record = _scrub(record, secrets)
    # Round-trip so that the hash covers exactly what a reader will parse.
    record = json.loads(json.dumps(record, ensure_ascii=False, default=str))
    record["hash"] = record_hash(record)
    return record


class JsonlAuditLog:
    """JSON Lines sink: one record per line, appended and flushed per record.

    ``fsync``: ``"never"`` (the OS decides), ``"always"`` (after every record),
    or ``"interval"`` (at most every ``fsync_interval`` seconds).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: str = "never",
        fsync_interval: float = 1.0,
        secrets: Iterable[str] = (),
    ) -> None:
        """Open ``path`` for appending, continuing its sequence and chain."""
        if fsync not in ("never", "always", "interval"):
            msg = f"fsync must be 'never', 'always' or 'interval', not {fsync!r}"
            raise ValueError(msg)
        self.path = Path(path)
        self._fsync = fsync
        self._fsync_interval = fsync_interval
        self._last_sync = time.monotonic()
        self._secrets = tuple(s for s in secrets if s)
        self._seq, self._prev, torn = _jsonl_tail(self.path)
        self._file = self.path.open("ab")
        if torn:
            # A crash mid-write left a partial last line: start on a fresh line;
            # verify_log reports the torn one, the chain goes on from the last
            # valid record.
            self._file.write(b"\n")
            self._file.flush()

    def append(self, entry: AuditEntry) -> Mapping[str, Any]:
        """Write one record (a single write of the whole line) and return it."""
        record = _record(entry, self._seq + 1, self._prev, self._secrets)
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self._file.write(line)
            self._file.flush()
            if self._fsync == "always" or (
                self._fsync == "interval"
                and time.monotonic() - self._last_sync >= self._fsync_interval
            ):
                os.fsync(self._file.fileno())
                self._last_sync = time.monotonic()
        except (OSError, ValueError) as exc:
            msg = f"cannot append to audit log {self.path}: {exc}"
            raise AuditWriteError(msg) from exc
        self._seq += 1
        self._prev = record["hash"]
        return record

    def close(self) -> None:
        """Flush, sync and close the file."""
        if not self._file.closed:
            with contextlib.suppress(OSError):
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()


def _jsonl_tail(path: Path) -> tuple[int, str, bool]:
    """Return (last seq, last hash, torn last line?) reading only the file's tail."""
    if not path.exists() or path.stat().st_size == 0:
        return 0, GENESIS, False
    size = path.stat().st_size
    with path.open("rb") as handle:
        chunk = 1 << 16
        while True:
            start = max(0, size - chunk)
            handle.seek(start)
            data = handle.read(size - start)
            lines = data.split(b"\n")
            if start > 0:
                lines = lines[1:]  # the first one may be cut
            torn = not data.endswith(b"\n")
            for raw in reversed([line for line in lines if line.strip()]):
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict) and "seq" in record and "hash" in record:
                    return int(record["seq"]), str(record["hash"]), torn
            if start == 0:
                return 0, GENESIS, torn
            chunk *= 4


class SqliteAuditLog:
    """SQLite sink: WAL mode, one row per record, a commit per record."""

    def __init__(
        self, path: str | os.PathLike[str], *, secrets: Iterable[str] = ()
    ) -> None:
        """Open (or create) the log at ``path``, continuing its chain."""
        self.path = Path(path)
        self._secrets = tuple(s for s in secrets if s)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS audit "
            "(seq INTEGER PRIMARY KEY, record TEXT NOT NULL, hash TEXT NOT NULL)"
        )
        row = self._db.execute(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        self._seq, self._prev = (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def append(self, entry: AuditEntry) -> Mapping[str, Any]:
        """Write one record in its own transaction and return it."""
        record = _record(entry, self._seq + 1, self._prev, self._secrets)
        try:
            self._db.execute(
                "INSERT INTO audit (seq, record, hash) VALUES (?, ?, ?)",
                (record["seq"], json.dumps(record, ensure_ascii=False), record["hash"]),
            )
        except sqlite3.Error as exc:
            msg = f"cannot append to audit log {self.path}: {exc}"
            raise AuditWriteError(msg) from exc
        self._seq += 1
        self._prev = record["hash"]
        return record

    def close(self) -> None:
        """Close the database."""
        self._db.close()


def open_audit(
    path: str | os.PathLike[str], *, fsync: str = "never", secrets: Iterable[str] = ()
) -> AuditSink:
    """Open the sink for ``path``: SQLite for .db/.sqlite/.sqlite3, else JSON Lines."""
    if Path(path).suffix.lower() in _SQLITE_SUFFIXES:
        return SqliteAuditLog(path, secrets=secrets)
    return JsonlAuditLog(path, fsync=fsync, secrets=secrets)


# -- reading ----------------------------------------------------------------------------------


@attrs.frozen
class AuditProblem:
    """Something wrong in a log, at a record (``seq``) and a line."""

    seq: int | None
    line: int
    message: str

    def __str__(self) -> str:
        """Render as ``seq N (line L): message``."""
        seq = "?" if self.seq is None else str(self.seq)
        return f"seq {seq} (line {self.line}): {self.message}"


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed record or the raw bytes when unparseable)."""
    if path.suffix.lower() in _SQLITE_SUFFIXES:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for number, (text,) in enumerate(
                db.execute("SELECT record FROM audit ORDER BY seq"), 1
            ):
                try:
                    yield number, json.loads(text)
                except ValueError:
                    yield number, text
        finally:
            db.close()
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except ValueError:
                yield number, raw


def read_records(path: str | os.PathLike[str]) -> Iterator[Mapping[str, Any]]:
    """Yield every valid record of a log, in order (torn lines are skipped; verify reports them)."""
    for _, record in _lines(Path(path)):
        if isinstance(record, dict):
            yield record


def _spec_index(specs: Sequence[Spec]) -> dict[str, Spec]:
    index = {spec.content_hash: spec for spec in specs}
    for name in builtin_names():
        spec = load_builtin(name)
        index.setdefault(spec.content_hash, spec)
    return index


def verify_log(
    path: str | os.PathLike[str], *, specs: Sequence[Spec] = ()
) -> list[AuditProblem]:
    """Re-check the hash chain and the legality of every transition.

    Checks: each line is a record; seq is consecutive from 1; each ``prev`` is
    the previous record's hash and each ``hash`` recomputes; every transition
    and item transition is legal in the spec whose content hash the record
    names (built-in specs, ``specs``, or the record's ``spec`` file), and
    continues from the job's (or item's) previous state; a job completes once.
    """
    problems: list[AuditProblem] = []
    index = _spec_index(specs)
    prev_hash = GENESIS
    expected_seq = 1
    positions: dict[tuple[Any, ...], str] = {}
    completed: set[tuple[Any, ...]] = set()
    for line, record in _lines(Path(path)):
        if not isinstance(record, dict):
            problems.append(
                AuditProblem(None, line, "not a JSON record (torn or corrupted line)")
            )
            continue
        seq = record.get("seq")
        if seq != expected_seq:
            problems.append(
                AuditProblem(
                    seq, line, f"sequence {seq} where {expected_seq} was expected"
                )
            )
        if record.get("prev") != prev_hash:
            problems.append(
                AuditProblem(
                    seq,
                    line,
                    "previous-hash link broken (a record was removed, reordered or edited)",
                )
            )
        if record.get("hash") != record_hash(record):
            problems.append(
                AuditProblem(
                    seq, line, "hash does not match the record's content (edited)"
                )
            )
        prev_hash = str(record.get("hash"))
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
        problems.extend(_legality(record, line, index, positions, completed))
    return problems


def _legality(
    record: Mapping[str, Any],
    line: int,
    index: dict[str, Spec],
    positions: dict[tuple[Any, ...], str],
    completed: set[tuple[Any, ...]],
) -> list[AuditProblem]:
    seq = record.get("seq")
    kind = record.get("kind")
    job = (record.get("service"), record.get("job_id"))
    if kind == "completed":
        if job in completed:
            return [
                AuditProblem(seq, line, f"job {record.get('job_id')} completed twice")
            ]
        completed.add(job)
        return []
    if kind == "submitted" and record.get("to"):
        positions[job] = str(record["to"])
    if kind == "resumed" and record.get("to"):
        positions[job] = str(record["to"])
    if kind not in ("transition", "item_transition"):
        return []
    spec = index.get(str(record.get("spec_hash")))
    if spec is None and record.get("spec"):
        with contextlib.suppress(StatepollError, OSError):
            candidate = load_spec(str(record["spec"]).removeprefix("builtin:"))
            if candidate.content_hash == record.get("spec_hash"):
                spec = index[candidate.content_hash] = candidate
    if spec is None:
        return [
            AuditProblem(
                seq,
                line,
                f"no spec with hash {record.get('spec_hash')} (pass it with --spec)",
            )
        ]
    try:
        lifecycle = spec.lifecycle(str(record.get("lifecycle")))
    except KeyError:
        return [
            AuditProblem(
                seq,
                line,
                f"spec {spec.name} has no lifecycle {record.get('lifecycle')!r}",
            )
        ]
    source, dest = record.get("from"), record.get("to")
    out: list[AuditProblem] = []
    if not build_machine(lifecycle).is_legal(str(source), str(dest)):
        out.append(
            AuditProblem(
                seq,
                line,
                f"illegal transition {source} -> {dest} in lifecycle {lifecycle.name}",
            )
        )
    key = (*job, record.get("item_id")) if kind == "item_transition" else job
    before = positions.get(
        key, lifecycle.initial if kind == "item_transition" else None
    )
    if before is not None and before != source:
        out.append(
            AuditProblem(
                seq, line, f"transition from {source} but the job was in {before}"
            )
        )
    positions[key] = str(dest)
    return out


# -- show and stats ---------------------------------------------------------------------------


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
