"""The ``statepoll`` argument parser: DESIGN's verbs, their options and value checks.

A bad value is refused here, before a spec is loaded or a request is sent, as
one line: ``statepoll run: argument --time-scale: ... (see statepoll run --help)``.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from typing import NoReturn
from urllib.parse import urlsplit

from engine.simulators import FAULT_SYNTAX, OUTCOMES

from ._import import add_import

__all__ = ["build_parser"]

_MAX_PORT = 65535


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: MESSAGE (see PROG --help)`` on stderr and exit 2."""
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


# -- value checks (argparse types) ------------------------------------------------------


def _positive(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        msg = f"{what} must be a positive number, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _time_scale(text: str) -> float:
    # 0 freezes every job in its first state; a negative one ends them at once.
    return _positive(text, "the time scale")


def _seconds(text: str) -> float:
    return _positive(text, "a timeout")


def _port(text: str) -> int:
    if not (text.isdigit() and int(text) <= _MAX_PORT):
        msg = f"a port is 0 to {_MAX_PORT} (0 picks a free one), not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _base_url(text: str) -> str:
    # Checked here: a URL without a scheme reaches the client as a relative
    # one and fails later as "connection to None127.0.0.1:…".
    shown = text.split("?", 1)[0]  # a query may carry a token
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        msg = f"{shown!r} is not an http(s) URL with a host; write it like http://127.0.0.1:8001"
        raise argparse.ArgumentTypeError(msg)
    try:
        parts.port  # noqa: B018 - the property is the check (out of range raises)
    except ValueError as exc:
        msg = f"{shown!r} has a bad port: {exc}"
        raise argparse.ArgumentTypeError(msg) from exc
    return text


# -- the verbs ---------------------------------------------------------------------------

_RUN_EXITS = "Exit 0 success, 1 other outcome, 2 usage or spec error, 3 timed out, 4 transport or protocol error, 130 interrupted."


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every verb (``args.command`` names the verb)."""
    parser = _Parser(
        prog="statepoll",
        description="Track asynchronous jobs on remote APIs from declarative JSON lifecycle specs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "specs",
        help="list specs, their lifecycles and inputs",
        description="List each spec's lifecycles, their states and their inputs (name, type, where it goes, required or default, description). Default: every built-in spec.",
    )
    p.add_argument(
        "specs", nargs="*", metavar="SPEC", help="built-in name or path to a JSON spec"
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

    _add_simulate(sub)

    for name, text in (
        ("run", "submit a job and track it to its end"),
        ("track", "track an existing job to its end"),
    ):
        p = sub.add_parser(
            name, help=text, description=f"{text[0].upper()}{text[1:]}. {_RUN_EXITS}"
        )
        p.add_argument(
            "spec", metavar="SPEC", help="built-in name or path to a JSON spec"
        )
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
        help="drive a store's unfinished jobs to their end",
        description="Resume every unfinished job of a job store (after a crash, an interrupt or run --timeout) and drive each to its end. Exit code as run, for the worst job.",
    )
    p.add_argument("--store", required=True, metavar="PATH")
    p.add_argument("--audit", metavar="PATH", help="the audit log to append to")
    p.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="stop waiting after S seconds and exit 3; unfinished jobs stay in the store",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--time-scale", type=_time_scale, default=1.0, help=argparse.SUPPRESS
    )

    _add_workers(sub)

    p = sub.add_parser(
        "demo",
        help="drive every built-in lifecycle against its simulator",
        description="Start the three simulators in-process, run a job of every built-in lifecycle (success and failure outcomes, an Azure batch paged over several pages, a cancel) and show the transitions live. Exit 0 when every job ends as expected.",
    )
    p.add_argument("--audit", metavar="PATH")
    p.add_argument("--store", metavar="PATH")
    p.add_argument("--seed", type=int, default=7)

    _add_audit(sub)
    add_import(sub)
    return parser


def _add_simulate(sub: argparse._SubParsersAction[_Parser]) -> None:
    outcomes = "\n".join(
        f"  {service}:\n" + "\n".join(f"    {line}" for line in lines)
        for service, lines in OUTCOMES.items()
    )
    faults = textwrap.fill(
        f"--faults: {FAULT_SYNTAX}.", width=79, subsequent_indent="  "
    )
    p = sub.add_parser(
        "simulate",
        help="run a simulator of a seed service on 127.0.0.1",
        description="Run a simulator on 127.0.0.1 until interrupted. --port 0 picks a free port and prints it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"terminal outcomes on purpose (durations are multiplied by --time-scale):\n{outcomes}\n\n{faults}",
    )
    p.add_argument(
        "service", metavar="SERVICE", help="mindee, oneclickdz or azure-translator"
    )
    p.add_argument(
        "--port", type=_port, default=0, help="0 (default) picks a free port"
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--time-scale",
        type=_time_scale,
        default=1.0,
        help="multiply every documented duration (0.01 = 100x shorter)",
    )
    p.add_argument(
        "--faults",
        default="",
        help="e.g. '429:0.1,reset@3,slow:0.05,delay=0.2,retry-after=1' (see below)",
    )
    p.add_argument("--api-key", default="sim-key")


def _positive_int(text: str) -> int:
    if not (text.isdigit() and int(text) > 0):
        msg = f"must be a positive whole number, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return int(text)


def _add_workers(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser(
        "enqueue",
        help="submit a job into a store for workers to drive",
        description="Submit a job (its intent committed first, so a crash cannot lose it), commit its id and first state to the store and print its key; a worker drives it from there. Exit 0 enqueued, 2 usage or spec error, 4 the service refused.",
    )
    p.add_argument("spec", metavar="SPEC", help="built-in name or path to a JSON spec")
    p.add_argument("lifecycle", metavar="LIFECYCLE")
    _store_url(p)
    _job_inputs(p)
    _job_limits(p)
    p.add_argument(
        "--time-scale", type=_time_scale, default=1.0, help=argparse.SUPPRESS
    )

    p = sub.add_parser(
        "worker",
        help="drive the due jobs of a store until SIGTERM",
        description="Claim the due jobs of a store, poll them, commit each step with its audit records, until SIGTERM or SIGINT; then finish the requests in flight, let the jobs go and exit 0. Run as many as you like on one store.",
    )
    _store_url(p)
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=32,
        metavar="N",
        help="jobs stepped at once (default 32)",
    )
    p.add_argument(
        "--lease",
        type=lambda text: _positive(text, "a lease"),
        default=30.0,
        metavar="S",
        help="seconds before another worker may take this one's jobs if it stops renewing (default 30)",
    )
    p.add_argument(
        "--spec",
        action="append",
        default=[],
        metavar="SPEC",
        help="a spec file besides the built-in ones and those the jobs record",
    )
    p.add_argument("--audit", metavar="PATH", help="also append the audit records here")
    p.add_argument(
        "--metrics-port",
        type=_port,
        metavar="P",
        help="serve counters in the Prometheus text format on 127.0.0.1:P (0 picks one)",
    )
    p.add_argument(
        "--time-scale", type=_time_scale, default=1.0, help=argparse.SUPPRESS
    )


def _add_audit(sub: argparse._SubParsersAction[_Parser]) -> None:
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
        description="Re-check the hash chain and every transition against the spec its hash names. Exit 0 intact, 1 tampered (or an illegal move), 2 cannot check (a spec not found: pass it with --spec).",
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


def _store_url(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="a SQLite path (or sqlite:///PATH) or a postgresql:// URL",
    )


def _job_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-url",
        type=_base_url,
        help="service base URL (default: the spec's, or its base_url_env variable)",
    )
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="K=V",
        help="a job input (JSON for non-string types); statepoll specs lists them",
    )
    p.add_argument(
        "--file", metavar="PATH", help="the file to upload (the lifecycle's file input)"
    )


def _job_limits(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--deadline",
        type=lambda text: _positive(text, "a deadline"),
        metavar="S",
        help="this job gives up S seconds after it starts (instead of the spec's schedule.deadline)",
    )
    p.add_argument(
        "--max-attempts",
        type=_positive_int,
        metavar="N",
        help="this job gives up after N polls (instead of the spec's schedule.max_attempts)",
    )


def _job_options(p: argparse.ArgumentParser) -> None:
    _job_inputs(p)
    _job_limits(p)
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
        "--timeout",
        type=_seconds,
        metavar="S",
        help="stop waiting after S seconds and exit 3; the job goes on (resume it with --store)",
    )
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.add_argument(
        "--time-scale", type=_time_scale, default=1.0, help=argparse.SUPPRESS
    )
