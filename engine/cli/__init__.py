"""The ``statepoll`` command (also ``python -m engine``).

``main(argv, stdout=, stderr=) -> int`` is testable in-process; exit codes live
in :data:`EXIT` (DESIGN's table) and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TextIO

from statemachines import (
    SpecError,
    StatepollError,
    UnknownSpecError,
    builtin_names,
    load_spec,
    mermaid,
)

__all__ = ["EXIT", "console_main", "main"]

#: Exit codes (DESIGN's command-line contract).
EXIT: Final = {
    "ok": 0,
    "outcome": 1,  # validate: invalid; run/track: a terminal state other than success
    "usage": 2,  # bad arguments, unknown or broken spec
    "timeout": 3,
    "remote": 4,  # transport or protocol error
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statepoll",
        description="Track asynchronous jobs on remote APIs from declarative JSON lifecycle specs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser(
        "specs",
        help="list the built-in specs and their lifecycles",
        description="List the built-in specs and their lifecycles.",
    )

    p = sub.add_parser(
        "validate",
        help="check specs against the schema and the semantic rules",
        description="Check specs; print each problem as FILE: /json/pointer: message. Exit 0 when every spec is valid, 1 otherwise.",
    )
    p.add_argument(
        "specs", nargs="+", metavar="SPEC", help="built-in name or path to a JSON spec"
    )

    p = sub.add_parser(
        "diagram",
        help="print a lifecycle as a Mermaid stateDiagram-v2",
        description="Print a Mermaid stateDiagram-v2 of a lifecycle (default: every lifecycle of the spec).",
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("lifecycle", nargs="?", metavar="LIFECYCLE")

    p = sub.add_parser(
        "simulate",
        help="run a simulator of a seed service on 127.0.0.1",
        description="Run a simulator on 127.0.0.1 until interrupted. --port 0 picks a free port and prints it.",
    )
    p.add_argument(
        "service", metavar="SERVICE", help="mindee, oneclickdz or azure-translator"
    )
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply every documented duration (0.01 = 100x shorter)",
    )
    p.add_argument(
        "--faults",
        default="",
        help="e.g. '429:0.1,reset@3,slow:0.05,delay=0.2,retry-after=1'",
    )
    p.add_argument("--api-key", default="sim-key")

    for name, text in (
        ("run", "submit a job and track it to its end"),
        ("track", "track an existing job to its end"),
    ):
        p = sub.add_parser(
            name,
            help=text,
            description=f"{text[0].upper()}{text[1:]}. Exit 0 success, 1 other outcome, 2 usage or spec error, 3 timed out, 4 transport or protocol error.",
        )
        p.add_argument("spec", metavar="SPEC")
        p.add_argument("lifecycle", metavar="LIFECYCLE")
        if name == "track":
            p.add_argument("job_id", metavar="JOB_ID")
            p.add_argument(
                "--state",
                help="the state the job is believed to be in (default: initial)",
            )
        _job_options(p)

    p = sub.add_parser(
        "resume",
        help="resume every unfinished job of a store after a crash",
        description="Resume every unfinished job of a job store. Exit code as run, for the worst job.",
    )
    p.add_argument("--store", required=True, metavar="PATH")
    p.add_argument("--audit", metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)

    p = sub.add_parser(
        "demo",
        help="drive every built-in lifecycle against its simulator",
        description="Start the three simulators in-process, run a job of every built-in lifecycle (success and failure outcomes, an Azure batch paged over several pages, a cancel) and show the transitions live. Exit 0 when every job ends as expected.",
    )
    p.add_argument("--audit", metavar="PATH")
    p.add_argument("--store", metavar="PATH")
    p.add_argument("--seed", type=int, default=7)

    p = sub.add_parser(
        "audit",
        help="show, verify or summarise an audit log",
        description="Inspect an audit log.",
    )
    audit = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    a = audit.add_parser(
        "show",
        help="timeline of each job (or one)",
        description="Print each job's timeline, or one job's with --job.",
    )
    a.add_argument("log", metavar="LOG")
    a.add_argument("--job", metavar="ID")
    a = audit.add_parser(
        "verify",
        help="check the hash chain and the legality of every transition",
        description="Re-check the hash chain and every transition against the spec its hash names. Exit 0 intact, 1 not.",
    )
    a.add_argument("log", metavar="LOG")
    a.add_argument(
        "--spec",
        action="append",
        default=[],
        metavar="SPEC",
        help="extra spec files to match hashes against",
    )
    a = audit.add_parser(
        "stats",
        help="time in each state, polls per job, outcomes",
        description="Per service and lifecycle: time in each state (count, median, p95, max), polls per job, outcomes.",
    )
    a.add_argument("log", metavar="LOG")
    return parser


def _job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-url",
        help="service base URL (default: the spec's, or its base_url_env variable)",
    )
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="K=V",
        help="a job input (JSON for non-string types)",
    )
    p.add_argument(
        "--file", metavar="PATH", help="the file to upload (the lifecycle's file input)"
    )
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="K=V",
        help="an item filter (e.g. statuses=Failed)",
    )
    p.add_argument(
        "--audit",
        metavar="PATH",
        help="append the audit log here (.jsonl, or .db for SQLite)",
    )
    p.add_argument(
        "--store",
        metavar="PATH",
        help="keep live jobs in this SQLite store (for resume)",
    )
    p.add_argument(
        "--timeout", type=float, help="stop polling and exit 3 after this many seconds"
    )
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; return the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else EXIT["usage"]
    handler = _HANDLERS[args.command]
    try:
        return handler(args, out, err)
    except UnknownSpecError as exc:
        print(f"statepoll: {exc}", file=err)
        return EXIT["usage"]
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return EXIT["usage"]
    except (StatepollError, KeyError) as exc:
        print(
            f"statepoll: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=err
        )
        return EXIT["usage"]


def console_main() -> None:
    """Entry point of the ``statepoll`` script."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`statepoll run … | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT["ok"]
    sys.exit(code)


# -- specs, validate, diagram ------------------------------------------------------------


def _cmd_specs(_args: argparse.Namespace, out: TextIO, _err: TextIO) -> int:
    for name in builtin_names():
        spec = load_spec(name)
        print(f"{name}  ({spec.service.title})", file=out)
        for lifecycle in spec.lifecycles:
            states = " ".join(s.name for s in lifecycle.states)
            kind = " [item]" if lifecycle.item_only else ""
            print(f"  {lifecycle.name}{kind}: {states}", file=out)
    return EXIT["ok"]


def _cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    invalid = 0
    for source in args.specs:
        try:
            spec = load_spec(source)
        except SpecError as exc:
            invalid += 1
            for problem in exc.problems:
                print(problem, file=out)
        except UnknownSpecError as exc:
            invalid += 1
            print(f"{source}: (root): {exc}", file=out)
        else:
            print(
                f"{source}: ok ({spec.name} {spec.spec_version}, {len(spec.lifecycles)} lifecycles, {spec.content_hash[:19]})",
                file=err,
            )
    return EXIT["outcome"] if invalid else EXIT["ok"]


def _cmd_diagram(args: argparse.Namespace, out: TextIO, _err: TextIO) -> int:
    spec = load_spec(args.spec)
    names = [args.lifecycle] if args.lifecycle else list(spec.lifecycle_names)
    for i, name in enumerate(names):
        if i:
            print(file=out)
        out.write(mermaid(spec.lifecycle(name)))
    return EXIT["ok"]


# -- simulate ------------------------------------------------------------------------------


def _cmd_simulate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from engine.simulators import create_simulator, parse_faults, serve  # noqa: PLC0415 - only this verb serves

    try:
        faults = parse_faults(args.faults)
        app = create_simulator(
            args.service,
            seed=args.seed,
            time_scale=args.time_scale,
            api_key=args.api_key,
            faults=faults,
        )
    except (LookupError, ValueError) as exc:
        print(f"statepoll: {exc}", file=err)
        return EXIT["usage"]
    handle = serve(app, args.port)
    print(
        f"statepoll simulator {args.service} listening on {handle.url} (port {handle.port})",
        file=out,
        flush=True,
    )
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop["now"]:
            time.sleep(0.2)
    finally:
        handle.close()
    return EXIT["ok"]


# -- run, track, resume --------------------------------------------------------------------


def _parse_inputs(
    spec: Any, lifecycle_name: str, pairs: Sequence[str], file: str | None
) -> dict[str, Any]:
    lifecycle = spec.lifecycle(lifecycle_name)
    values: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            msg = f"--input needs K=V, got {pair!r}"
            raise _UsageError(msg)
        key, raw = pair.split("=", 1)
        declared = lifecycle.input(key)
        kind = declared.type if declared is not None else "string"
        values[key] = _coerce(key, raw, kind)
    if file is not None:
        target = next((i for i in lifecycle.inputs if i.where == "file"), None)
        if target is None:
            msg = f"{spec.name}/{lifecycle_name} takes no file"
            raise _UsageError(msg)
        path = Path(file)
        if not path.is_file():
            msg = f"--file {file}: no such file"
            raise _UsageError(msg)
        values[target.name] = path
    return values


def _coerce(key: str, raw: str, kind: str) -> Any:
    if kind in ("string", "file"):
        return raw
    try:
        if kind == "boolean":
            lowered = raw.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)  # noqa: TRY301 - reported below with the input's name
            return lowered in ("true", "1", "yes")
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
        return json.loads(raw)
    except ValueError as exc:
        msg = f"--input {key}: expected {kind}, got {raw!r}"
        raise _UsageError(msg) from exc


class _UsageError(StatepollError, ValueError):
    """A command-line mistake (exit 2)."""


def _pairs(items: Sequence[str], flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            msg = f"{flag} needs K=V, got {item!r}"
            raise _UsageError(msg)
        key, value = item.split("=", 1)
        out[key] = value
    return out


class _Progress:
    """Prints transitions as they happen: plain lines, or a live status line on a TTY."""

    def __init__(self, out: TextIO, *, quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.start = time.monotonic()

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.start:7.2f}s]"

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.tty:
            self.out.write("\r\x1b[2K")
        print(f"{self.stamp()} {text}", file=self.out, flush=True)

    def status(self, text: str) -> None:
        if self.tty and not self.quiet:
            self.out.write(f"\r\x1b[2K{self.stamp()} {text}")
            self.out.flush()

    def attach(self, engine: Any) -> None:
        def short(event: Any) -> str:
            return f"{event.service}/{event.lifecycle} {event.job_id[:12]}"

        engine.on(
            "submitted",
            lambda e: self.line(
                f"{short(e)} {'adopted' if e.adopted else 'submitted'} in {e.state}"
            ),
        )
        engine.on(
            "transition",
            lambda e: self.line(
                f"{short(e)} {e.source} -> {e.dest}{' (inferred)' if e.inferred else ''}"
            ),
        )
        engine.on(
            "item_transition",
            lambda e: self.line(
                f"{short(e)}   item {e.item_id[:12]} {e.source} -> {e.dest}"
            ),
        )
        engine.on(
            "polled",
            lambda e: self.status(f"{short(e)} poll #{e.attempt}: {e.observed!r}"),
        )
        engine.on(
            "illegal_transition",
            lambda e: self.line(
                f"{short(e)} refused illegal {e.state} -> {e.dest} ({e.policy})"
            ),
        )
        engine.on(
            "unknown_state",
            lambda e: self.line(
                f"{short(e)} unknown state {e.observed!r} ({e.policy})"
            ),
        )
        engine.on(
            "completed",
            lambda e: self.line(f"{short(e)} completed: {e.state} ({e.outcome})"),
        )
        engine.on(
            "timed_out",
            lambda e: self.line(f"{short(e)} timed out in {e.state}: {e.reason}"),
        )
        engine.on(
            "errored",
            lambda e: self.line(
                f"{short(e)} error ({e.kind}) {e.code or ''} {e.message}"
            ),
        )


def _exit_for(result: Any) -> int:
    from engine._errors import JobTimedOut, RemoteError, WaitTimeout  # noqa: PLC0415 - keeps `statepoll specs` light

    if isinstance(result, (JobTimedOut, WaitTimeout)):
        return EXIT["timeout"]
    if isinstance(result, RemoteError):
        return EXIT["remote"]
    if isinstance(result, BaseException):
        return EXIT["remote"]
    return EXIT["ok"] if result.ok else EXIT["outcome"]


def _result_json(ref: Any, result: Any) -> dict[str, Any]:
    from engine._errors import JobError, RemoteError  # noqa: PLC0415 - see _exit_for

    if isinstance(result, JobError):
        error: dict[str, Any] = {"type": type(result).__name__, "message": str(result)}
        if isinstance(result, RemoteError):
            error.update(
                kind=result.kind,
                status=result.status,
                code=result.code,
                remote_message=result.remote_message,
            )
        return {
            "service": ref.service,
            "lifecycle": ref.lifecycle,
            "job_id": ref.job_id,
            "state": result.last_state,
            "outcome": None,
            "error": error,
        }
    return {
        "service": ref.service,
        "lifecycle": ref.lifecycle,
        "job_id": ref.job_id,
        "state": result.state,
        "outcome": result.outcome.value if result.outcome else None,
        "status": result.status,
        "attempts": result.attempts,
        "result": result.result,
        "items": dict(result.items),
        "error": None,
    }


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        return asyncio.run(_run_async(args, out, err))
    except _UsageError as exc:
        print(f"statepoll: {exc}", file=err)
        return EXIT["usage"]


async def _run_async(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from engine._engine import AsyncEngine  # noqa: PLC0415 - see _exit_for
    from engine._errors import JobError, RemoteError, WaitTimeout  # noqa: PLC0415 - see _exit_for

    spec = load_spec(args.spec)
    inputs = _parse_inputs(spec, args.lifecycle, args.input, args.file)
    filters = _pairs(args.filter, "--filter")
    base_urls = {spec.name: args.base_url} if args.base_url else None
    progress = _Progress(err if args.json else out)
    engine = AsyncEngine(
        [spec],
        audit=args.audit,
        store=args.store,
        base_urls=base_urls,
        time_scale=args.time_scale,
    )
    progress.attach(engine)
    async with engine:
        try:
            if args.command == "track":
                ref = await engine.track(
                    spec,
                    args.lifecycle,
                    args.job_id,
                    inputs,
                    item_filters=filters or None,
                    state=args.state,
                )
            else:
                ref = await engine.submit(
                    spec, args.lifecycle, inputs, item_filters=filters or None
                )
        except RemoteError as exc:
            print(f"statepoll: {exc}", file=err)
            return EXIT["remote"]
        outcome: Any
        try:
            outcome = await engine.wait(ref, timeout=args.timeout)
        except WaitTimeout as exc:
            print(f"statepoll: {exc}", file=err)
            return EXIT["timeout"]
        except JobError as exc:
            outcome = exc
    return _report([(ref, outcome)], as_json=args.json, out=out, err=err)


def _report(
    results: Sequence[tuple[Any, Any]], *, as_json: bool, out: TextIO, err: TextIO
) -> int:
    from engine._errors import JobError  # noqa: PLC0415 - see _exit_for

    worst = EXIT["ok"]
    rows = []
    for ref, outcome in results:
        code = _exit_for(outcome)
        worst = max(worst, code)
        rows.append(_result_json(ref, outcome))
        if not as_json:
            if isinstance(outcome, JobError):
                print(
                    f"{ref.service}/{ref.lifecycle} {ref.job_id}: {type(outcome).__name__}: {outcome}",
                    file=err,
                )
            else:
                print(
                    f"{ref.service}/{ref.lifecycle} {ref.job_id}: {outcome.state} ({outcome.outcome.value if outcome.outcome else '-'}) after {outcome.attempts} polls",
                    file=out,
                )
    if as_json:
        json.dump(rows[0] if len(rows) == 1 else rows, out, indent=2, default=str)
        out.write("\n")
    return worst


def _cmd_resume(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return asyncio.run(_resume_async(args, out, err))


async def _resume_async(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from engine._engine import AsyncEngine  # noqa: PLC0415 - see _exit_for
    from engine._errors import JobError  # noqa: PLC0415 - see _exit_for

    if not Path(args.store).exists():  # noqa: ASYNC240 - one stat before the loop has work
        print(f"statepoll: no store at {args.store}", file=err)
        return EXIT["usage"]
    engine = AsyncEngine(audit=args.audit, store=args.store, time_scale=args.time_scale)
    progress = _Progress(err if args.json else out)
    progress.attach(engine)
    results: list[tuple[Any, Any]] = []
    async with engine:
        refs = engine.jobs()
        if not refs:
            print("statepoll: nothing to resume", file=err)
            return EXIT["ok"]
        for ref in refs:
            try:
                results.append((ref, await engine.wait(ref)))
            except JobError as exc:
                results.append((ref, exc))
    return _report(results, as_json=args.json, out=out, err=err)


# -- demo ----------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ._demo import run_demo  # noqa: PLC0415 - the demo starts servers; load it only here

    return run_demo(
        out=out, err=err, audit=args.audit, store=args.store, seed=args.seed
    )


# -- audit ---------------------------------------------------------------------------------


def _cmd_audit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from engine import audit  # noqa: PLC0415 - see _exit_for

    path = Path(args.log)
    if not path.exists():
        print(f"statepoll: no audit log at {path}", file=err)
        return EXIT["usage"]
    if args.audit_command == "show":
        for line in audit.show_log(path, job=args.job):
            print(line, file=out)
        return EXIT["ok"]
    if args.audit_command == "stats":
        for line in audit.format_stats(audit.log_stats(path)):
            print(line, file=out)
        return EXIT["ok"]
    specs = [load_spec(s) for s in args.spec]
    problems = audit.verify_log(path, specs=specs)
    for problem in problems:
        print(f"{path}: {problem}", file=out)
    if problems:
        print(f"{path}: NOT intact: {len(problems)} problem(s)", file=err)
        return EXIT["outcome"]
    print(f"{path}: intact", file=out)
    return EXIT["ok"]


_HANDLERS: Final[dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]]] = {
    "audit": _cmd_audit,
    "demo": _cmd_demo,
    "diagram": _cmd_diagram,
    "resume": _cmd_resume,
    "run": _cmd_run,
    "simulate": _cmd_simulate,
    "specs": _cmd_specs,
    "track": _cmd_run,
    "validate": _cmd_validate,
}
