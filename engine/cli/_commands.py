"""One function per ``statepoll`` verb: ``(args, out, err) -> ExitName``.

A command returns the NAME of its exit, a key of ``engine.cli.EXIT``; ``main``
turns it into the number, so the codes live in that one dict. The verbs that
drive jobs (``run``, ``track``, ``resume``) are in ``_jobs``. The engine, audit
and simulator modules are imported inside the commands that use them:
``statepoll specs`` does not pay for httpx.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TextIO

from statemachines import SpecError, UnknownSpecError, builtin_names, load_spec, mermaid

from ._checks import (
    UsageError,
    check_targets,
    lifecycle_of,
    stored_jobs,
)

if TYPE_CHECKING:
    from statemachines import Lifecycle

__all__ = [
    "Command",
    "ExitName",
    "cmd_audit",
    "cmd_demo",
    "cmd_diagram",
    "cmd_simulate",
    "cmd_specs",
    "cmd_validate",
]

ExitName = Literal["ok", "outcome", "usage", "timeout", "remote", "interrupted"]

#: A verb's function: ``(args, stdout, stderr) -> ExitName``.
Command = Callable[[argparse.Namespace, TextIO, TextIO], ExitName]


# -- specs, validate, diagram ----------------------------------------------------------


def cmd_specs(args: argparse.Namespace, out: TextIO, _err: TextIO) -> ExitName:
    """List each spec's lifecycles, states and inputs."""
    for source in args.specs or builtin_names():
        spec = load_spec(source)
        print(f"{source}  ({spec.service.title or spec.name})", file=out)
        for lifecycle in spec.lifecycles:
            states = " ".join(s.name for s in lifecycle.states)
            kind = " [item]" if lifecycle.item_only else ""
            print(f"  {lifecycle.name}{kind}: {states}", file=out)
            if lifecycle.inputs or not lifecycle.item_only:
                for line in _inputs_table(lifecycle):
                    print(f"    {line}", file=out)
    return "ok"


def _inputs_table(lifecycle: Lifecycle) -> list[str]:
    if not lifecycle.inputs:
        return ["inputs: none"]
    rows = [
        (
            i.name,
            i.type,
            i.where,
            "required"
            if i.required and i.default is None
            else "optional"
            if i.default is None
            else f"default {json.dumps(i.default)}",
            i.description,
        )
        for i in lifecycle.inputs
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(4)]
    lines = ["inputs:"]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append(f"  {'  '.join(cells)}  {row[4]}".rstrip())
    return lines


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> ExitName:
    """Check specs; each problem as ``FILE: /pointer: message``."""
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
            # Warnings arrive with the statemachines change that adds them.
            for warning in getattr(spec, "warnings", ()):
                print(warning, file=out)
            print(
                f"{source}: ok ({spec.name} {spec.spec_version}, {len(spec.lifecycles)} lifecycles, {spec.content_hash[:19]})",
                file=err,
            )
    return "outcome" if invalid else "ok"


def cmd_diagram(args: argparse.Namespace, out: TextIO, _err: TextIO) -> ExitName:
    """Print Mermaid diagrams of a spec's lifecycles."""
    spec = load_spec(args.spec)
    names = [args.lifecycle] if args.lifecycle else list(spec.lifecycle_names)
    for i, name in enumerate(names):
        if i:
            print(file=out)
        out.write(mermaid(lifecycle_of(spec, name)))
    return "ok"


# -- simulate ---------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace, out: TextIO, _err: TextIO) -> ExitName:
    """Serve a simulator on 127.0.0.1 until SIGINT or SIGTERM."""
    from engine.simulators import create_simulator, parse_faults, serve  # noqa: PLC0415 - only this verb serves

    try:
        app = create_simulator(
            args.service,
            seed=args.seed,
            time_scale=args.time_scale,
            api_key=args.api_key,
            faults=parse_faults(args.faults),
        )
        handle = serve(app, args.port)
    except (LookupError, ValueError, RuntimeError) as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        # serve() words it: "cannot listen on 127.0.0.1:8001: Address already in use".
        raise UsageError(exc.strerror or str(exc)) from exc
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
    return "ok"


# -- demo -------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> ExitName:
    """Run every built-in lifecycle against its simulator."""
    from ._demo import run_demo  # noqa: PLC0415 - the demo starts servers; load it only here

    check_targets(args.audit, args.store)
    try:
        ok = run_demo(out=out, audit=args.audit, store=args.store, seed=args.seed)
    except KeyboardInterrupt:
        # The demo's simulators live in this process: its jobs end with it.
        left = (
            f"; {len(stored_jobs(args.store))} job(s) left in the store cannot be resumed (their simulators stopped with the demo)"
            if args.store
            else ""
        )
        print(f"statepoll demo: interrupted{left}", file=err)
        return "interrupted"
    if not ok:
        print("statepoll demo: some jobs did not end as expected", file=err)
        return "outcome"
    return "ok"


# -- audit ------------------------------------------------------------------------------


def cmd_audit(args: argparse.Namespace, out: TextIO, err: TextIO) -> ExitName:
    """Show, verify or summarise an audit log, or the audit table of a job store."""
    from engine import audit  # noqa: PLC0415 - `statepoll specs` does not load the engine
    from engine.stores import shown_url  # noqa: PLC0415 - as above

    log = args.log
    try:
        if args.audit_command == "show":
            for line in audit.show_log(log, job=args.job):
                print(line, file=out)
            return "ok"
        if args.audit_command == "stats":
            for line in audit.format_stats(audit.log_stats(log)):
                print(line, file=out)
            return "ok"
        specs = [load_spec(s) for s in args.spec]
        report = audit.verify_log(log, specs=specs)
    except FileNotFoundError:
        msg = f"no audit log or job store at {log}"
        raise UsageError(msg) from None
    except audit.AuditFormatError as exc:
        raise UsageError(str(exc)) from None
    name = shown_url(log)
    for problem in report.problems:
        where = (
            f"row {problem.line}"
            if problem.seq is None
            else f"seq {problem.seq} (line {problem.line})"
        )
        print(f"{name}: {where}: {problem.message}", file=out)
    if not report.intact:
        broken = sum(p.kind != "unchecked" for p in report.problems)
        print(f"{name}: NOT intact: {broken} problem(s)", file=err)
        return "outcome"
    if not report.checked:
        unchecked = sum(p.kind == "unchecked" for p in report.problems)
        print(
            f"{name}: cannot check: spec not found ({unchecked} problem(s); pass the spec file with --spec)",
            file=err,
        )
        return "usage"
    print(f"{name}: intact", file=out)
    return "ok"
