"""``run``, ``track`` and ``resume``: drive jobs, and say how to go on when stopped early.

A caller's ``--timeout`` or Ctrl-C stops the *waiting*, not the job: the
command says where the job was left (in the store, or running on the service)
and prints the exact command that picks it up again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import attrs

from statemachines import load_spec

from ._checks import (
    UsageError,
    check_audit_target,
    check_targets,
    lifecycle_of,
    parse_inputs,
    parse_pairs,
    stored_jobs,
)
from ._commands import ExitName
from ._progress import Progress, seconds

if TYPE_CHECKING:
    from engine import (
        AsyncEngine,
        JobError,
        JobRef,
        JobResult,
        JobStatus,
        WaitTimeout,
    )
    from statemachines import Spec

    #: How a job ended, as ``_report`` takes it.
    Ending = JobResult | JobError | WaitTimeout

__all__ = ["SEVERITY", "cmd_resume", "cmd_run"]

#: The exits a job can end with, least to most severe (EXIT's numeric order,
#: checked by a test): ``resume`` exits as its worst job.
SEVERITY: Final[tuple[ExitName, ...]] = ("ok", "outcome", "timeout", "remote")


@attrs.define
class _Session:
    """What an interrupted or timed-out command needs to say how to go on."""

    args: argparse.Namespace
    refs: list[JobRef] = attrs.field(factory=list)
    #: Job key → its state when the engine closed.
    states: dict[str, str] = attrs.field(factory=dict)

    def resume_command(self) -> str:
        """Return the ``statepoll resume`` command that picks the jobs up again."""
        words = ["statepoll", "resume", "--store", self.args.store]
        if self.args.audit:
            words += ["--audit", self.args.audit]
        if self.args.time_scale != 1.0:
            words += ["--time-scale", str(self.args.time_scale)]
        return shlex.join(words)

    def track_command(self, ref: JobRef) -> str:
        """Return the ``statepoll track`` command that adopts ``ref`` again."""
        args = self.args
        words = ["statepoll", "track", args.spec, args.lifecycle, ref.job_id]
        state = self.states.get(ref.key)
        if state:
            words += ["--state", state]
        if args.base_url:
            words += ["--base-url", args.base_url]
        for item in args.filter:
            words += ["--filter", item]
        if args.audit:
            words += ["--audit", args.audit]
        if args.time_scale != 1.0:
            words += ["--time-scale", str(args.time_scale)]
        return shlex.join(words)

    def interrupted(self, err: TextIO) -> ExitName:
        """Say what was left where, and how to go on; exit "interrupted"."""
        if self.args.store:
            left = len(stored_jobs(self.args.store))
            text = (
                f"interrupted; {left} job(s) left in the store — resume with: {self.resume_command()}"
                if left
                else "interrupted; no job left in the store"
            )
        elif self.refs:
            ref = self.refs[-1]
            text = f"interrupted; {_describe(ref)} left running on the service — track it again with: {self.track_command(ref)}"
        else:
            text = "interrupted before a job id came back"
        print(f"statepoll: {text}", file=err)
        return "interrupted"

    async def close(self, engine: AsyncEngine) -> None:
        """Note each job's state, then close ``engine`` (live jobs stay in its store)."""
        try:
            for ref in self.refs:
                self.states[ref.key] = engine.state_of(ref)
        finally:
            await engine.aclose()


def _describe(ref: JobRef) -> str:
    return f"{ref.service}/{ref.lifecycle} job {ref.job_id}"


def cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> ExitName:
    """Submit (``run``) or adopt (``track``) a job and wait for its end."""
    spec = load_spec(args.spec)
    lifecycle = lifecycle_of(spec, args.lifecycle)
    submit = args.command == "run"
    if submit and lifecycle.submit is None:
        msg = f"{spec.name}/{lifecycle.name} has no submit; adopt an existing job with statepoll track"
        raise UsageError(msg)
    inputs = parse_inputs(spec, lifecycle, args.input, args.file, submit=submit)
    filters = parse_pairs(args.filter, "--filter") or None
    check_targets(args.audit, args.store)
    session = _Session(args)
    try:
        return asyncio.run(_run(args, spec, inputs, filters, session, out, err))
    except KeyboardInterrupt:
        return session.interrupted(err)


async def _run(  # noqa: PLR0917 - one caller, cmd_run
    args: argparse.Namespace,
    spec: Spec,
    inputs: dict[str, Any],
    filters: dict[str, str] | None,
    session: _Session,
    out: TextIO,
    err: TextIO,
) -> ExitName:
    from engine import AsyncEngine, JobError, RemoteError, WaitTimeout  # noqa: PLC0415 - `statepoll specs` does not load the engine

    progress = Progress(err if args.json else out)
    engine = AsyncEngine(
        [spec],
        audit=args.audit,
        store=args.store,
        base_urls={spec.name: args.base_url} if args.base_url else None,
        time_scale=args.time_scale,
        # Drive this job only; other jobs of the store are resume's or a worker's.
        take_over=False,
    )
    progress.attach(engine)
    ending: Ending
    try:
        await engine.open()
        try:
            if args.command == "track":
                ref = await engine.track(
                    spec,
                    args.lifecycle,
                    args.job_id,
                    inputs,
                    item_filters=filters,
                    state=args.state,
                    deadline=args.deadline,
                    max_attempts=args.max_attempts,
                )
            else:
                ref = await engine.submit(
                    spec,
                    args.lifecycle,
                    inputs,
                    item_filters=filters,
                    deadline=args.deadline,
                    max_attempts=args.max_attempts,
                )
        except RemoteError as exc:
            print(f"statepoll: {exc}", file=err)
            return "remote"
        session.refs.append(ref)
        try:
            ending = await engine.wait(ref, timeout=args.timeout)
        except (WaitTimeout, JobError) as exc:
            ending = exc
    finally:
        progress.close()
        await session.close(engine)
    if not isinstance(ending, WaitTimeout):
        return _report([(ref, ending)], as_json=args.json, out=out, err=err)
    if args.json:
        _report([(ref, ending)], as_json=True, out=out, err=err)
    waited = f"stopped waiting after {_seconds(args.timeout)}"
    if args.store:
        text = f"{waited}: {_describe(ref)} is still running (in {ending.state}) and stays in the store — resume with: {session.resume_command()}"
    else:
        text = f"{waited}: {_describe(ref)} was left running on the service (in {ending.state}) — track it again with: {session.track_command(ref)}"
    print(f"statepoll: {text}", file=err)
    return "timeout"


def cmd_resume(args: argparse.Namespace, out: TextIO, err: TextIO) -> ExitName:
    """Drive every unfinished job of a store to its end."""
    from engine.stores import store_path  # noqa: PLC0415 - `statepoll specs` does not load the engine

    path = store_path(args.store)
    if path is not None and not Path(path).is_file():
        msg = f"no store at {args.store}"
        raise UsageError(msg)
    stored = stored_jobs(args.store)
    if args.audit:
        check_audit_target(args.audit)
    session = _Session(args)
    try:
        return asyncio.run(_resume(args, stored, session, out, err))
    except KeyboardInterrupt:
        return session.interrupted(err)


async def _resume(
    args: argparse.Namespace,
    stored: dict[str, JobStatus],
    session: _Session,
    out: TextIO,
    err: TextIO,
) -> ExitName:
    from engine import AsyncEngine, JobError, WaitTimeout  # noqa: PLC0415 - `statepoll specs` does not load the engine

    progress = Progress(err if args.json else out)
    engine = AsyncEngine(audit=args.audit, store=args.store, time_scale=args.time_scale)
    progress.attach(engine)
    results: list[tuple[JobRef, Ending]] = []
    try:
        await engine.open()
        session.refs.extend(engine.jobs())
        # Said before the first await: the driver has not run yet, so each
        # state is where the job was stored (or where the audit log says).
        _say_what_resumes(engine, session.refs, stored, args.store, progress, err)
        if not session.refs:
            print("statepoll: nothing to resume", file=err)
            return "ok"
        loop = asyncio.get_running_loop()
        deadline = None if args.timeout is None else loop.time() + args.timeout
        for ref in session.refs:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                results.append((ref, await engine.wait(ref, timeout=left)))
            except (WaitTimeout, JobError) as exc:
                results.append((ref, exc))
    finally:
        progress.close()
        await session.close(engine)
    code = _report(results, as_json=args.json, out=out, err=err)
    running = sum(isinstance(ending, WaitTimeout) for _, ending in results)
    if running:
        print(
            f"statepoll: stopped waiting after {_seconds(args.timeout)}: {running} job(s) still running stay in the store — resume with: {session.resume_command()}",
            file=err,
        )
    return code


def _say_what_resumes(  # noqa: PLR0917 - one caller, _resume
    engine: AsyncEngine,
    refs: Sequence[JobRef],
    stored: dict[str, JobStatus],
    store: str,
    progress: Progress,
    err: TextIO,
) -> None:
    """One line per resumed job (state, when due), and why any other stored one is not."""
    now = time.time()
    for ref in refs:
        due = stored[ref.key].due if ref.key in stored else None
        when = "now" if due is None or due <= now else f"in {_seconds(due - now)}"
        progress.line(f"resuming {_describe(ref)}: {engine.state_of(ref)}, due {when}")
    resumed = {ref.key for ref in refs}
    skipped = {k: v for k, v in stored.items() if k not in resumed}
    # Not taken over: held by a driver that is alive, or its spec is not at hand.
    still = stored_jobs(store) if skipped else {}
    for key, status in skipped.items():
        what = _describe(status.job)
        if key not in still:
            progress.line(f"not resuming {what}: it ended meanwhile")
        else:
            print(
                f"statepoll: not resuming {what}: another live driver holds it, or its spec cannot be loaded (or changed since the job was stored)",
                file=err,
            )


# -- results ----------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "-" if value is None else seconds(value)


def _exit_for(ending: Ending) -> ExitName:
    from engine import JobFailed, JobResult, JobTimedOut, WaitTimeout  # noqa: PLC0415 - `statepoll specs` does not load the engine

    if isinstance(ending, JobResult):
        return "ok" if ending.ok else "outcome"
    if isinstance(ending, (JobTimedOut, WaitTimeout)):
        return "timeout"
    if isinstance(ending, JobFailed):
        return "outcome"
    return "remote"


def _result_json(ref: JobRef, ending: Ending) -> dict[str, Any]:
    from engine import JobResult, RemoteError, WaitTimeout  # noqa: PLC0415 - `statepoll specs` does not load the engine

    row: dict[str, Any] = {
        "service": ref.service,
        "lifecycle": ref.lifecycle,
        "job_id": ref.job_id,
    }
    if isinstance(ending, JobResult):
        if ending.chained_from:
            row["chain"] = [
                {"lifecycle": j.lifecycle, "job_id": j.job_id} for j in ending.chain
            ]
        return {
            **row,
            "state": ending.state,
            "outcome": ending.outcome.value if ending.outcome else None,
            "status": ending.status,
            "attempts": ending.attempts,
            "result": ending.result,
            "items": dict(ending.items),
            "error": None,
        }
    error: dict[str, Any] = {"type": type(ending).__name__, "message": str(ending)}
    if isinstance(ending, RemoteError):
        error.update(
            kind=ending.kind,
            status=ending.status,
            code=ending.code,
            remote_message=ending.remote_message,
        )
    state = ending.state if isinstance(ending, WaitTimeout) else ending.last_state
    return {**row, "state": state, "outcome": None, "error": error}


def _report(
    results: Sequence[tuple[JobRef, Ending]], *, as_json: bool, out: TextIO, err: TextIO
) -> ExitName:
    from engine import JobResult, WaitTimeout  # noqa: PLC0415 - `statepoll specs` does not load the engine

    worst: ExitName = "ok"
    rows = []
    for first, ending in results:
        # A chain (a success state's then) ends at its last job: name that one.
        ref = ending.job if isinstance(ending, JobResult) else first
        code = _exit_for(ending)
        worst = max(worst, code, key=SEVERITY.index)
        rows.append(_result_json(ref, ending))
        if as_json:
            continue
        if isinstance(ending, JobResult):
            outcome = ending.outcome.value if ending.outcome else "-"
            chain = (
                " (chain: "
                + ", ".join(f"{j.lifecycle} {j.job_id}" for j in ending.chain)
                + ")"
                if ending.chained_from
                else ""
            )
            print(
                f"{_describe(ref)}: {ending.state} ({outcome}) after {ending.attempts} polls{chain}",
                file=out,
            )
        elif isinstance(ending, WaitTimeout):
            print(f"{_describe(ref)}: still running in {ending.state}", file=err)
        else:
            print(f"{_describe(ref)}: {type(ending).__name__}: {ending}", file=err)
    if as_json and rows:
        json.dump(rows[0] if len(rows) == 1 else rows, out, indent=2, default=str)
        out.write("\n")
    return worst
