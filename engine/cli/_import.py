"""``statepoll import botocore``: the installed botocore's waiters as statepoll specs.

One spec per service (``botocore-<service>.json`` in ``--out``), one
lifecycle per waiter; per service a line of what converted, then a summary
(total, converted and validating, not converted by reason). Exit 0 when a
spec was written, 1 when none was, 2 for a usage mistake.
"""

from __future__ import annotations

import argparse
import difflib
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from ._checks import UsageError
from ._commands import ExitName

__all__ = ["add_import", "cmd_import"]


def add_import(sub: argparse._SubParsersAction[Any]) -> None:
    """Add the ``import`` verb (its sources as sub-verbs) to the parser."""
    p = sub.add_parser(
        "import",
        help="convert other tools' polling definitions into specs",
        description="Convert other tools' polling definitions into statepoll specs.",
    )
    source = p.add_subparsers(dest="import_source", metavar="SOURCE", required=True)
    b = source.add_parser(
        "botocore",
        help="botocore's waiters, one spec per service",
        description="Convert the installed botocore's waiters (pip install 'statepoll[aws]') into one spec per service, botocore-SERVICE.json in --out, one lifecycle per waiter; print what converted and why the rest did not. Exit 0 when a spec was written, 1 when none was.",
    )
    b.add_argument(
        "services",
        nargs="*",
        metavar="SERVICE",
        help="botocore service names (dynamodb, ecs…)",
    )
    b.add_argument(
        "--out", required=True, metavar="DIR", help="where the specs are written"
    )
    b.add_argument(
        "--all",
        action="store_true",
        help="every service whose botocore model has waiters",
    )
    b.add_argument(
        "--every-api-version",
        action="store_true",
        help="also the older API versions botocore ships (botocore-SERVICE-VERSION.json)",
    )


def cmd_import(args: argparse.Namespace, out: TextIO, _err: TextIO) -> ExitName:
    """Convert botocore's waiters; print per service and a summary."""
    try:
        from engine.importers._botocore import (  # noqa: PLC0415 - needs the aws extra
            import_botocore,
            summary_lines,
            waiter_services,
        )
    except ImportError as exc:
        msg = f"statepoll import botocore needs botocore ({exc.name} is missing): pip install 'statepoll[aws]'"
        raise UsageError(msg) from exc
    known = waiter_services()
    services = _chosen(args, known)
    target = Path(args.out)
    if target.exists() and not target.is_dir():
        msg = f"--out {args.out} is not a directory"
        raise UsageError(msg)
    report = import_botocore(services, target, every_api_version=args.every_api_version)
    for service in report.services:
        where = f" → {service.path}" if service.path else ""
        name = " ".join(filter(None, (service.service, service.api_version)))
        print(
            f"{name}: {service.converted} of {len(service.waiters)} waiters converted{where}",
            file=out,
        )
        limited = Counter(
            w.reason for w in service.waiters if w.kind in {"xml", "host"}
        )
        for reason, count in limited.items():
            print(f"  {count} of them validate only: {reason}", file=out)
        for waiter in service.waiters:
            if waiter.kind == "not_converted":
                print(f"  {waiter.lifecycle}: not converted: {waiter.reason}", file=out)
        for warning in service.warnings:
            print(f"  {warning}", file=out)
    for line in summary_lines(report):
        print(line, file=out)
    return "ok" if any(s.path for s in report.services) else "outcome"


def _chosen(args: argparse.Namespace, known: tuple[str, ...]) -> tuple[str, ...]:
    """The services named (each checked), or all of them with --all."""
    if args.all and args.services:
        msg = "name services or give --all, not both"
        raise UsageError(msg)
    if args.all:
        return known
    if not args.services:
        msg = "name at least one service (statepoll import botocore dynamodb --out DIR) or give --all"
        raise UsageError(msg)
    for name in args.services:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            msg = f"botocore {_version()} has no waiters for a service {name!r}{hint} (--all converts the {len(known)} services that have waiters)"
            raise UsageError(msg)
    return tuple(dict.fromkeys(args.services))


def _version() -> str:
    from engine.importers._botocore import botocore_version  # noqa: PLC0415 - needs the aws extra

    return botocore_version()
