"""botocore's waiters → statepoll specs: one spec per service, one lifecycle per waiter.

A waiter polls one operation every ``delay`` seconds, at most ``maxAttempts``
times, and its acceptors, in order, say ``success``, ``failure`` or
``retry``; no acceptor matching means "poll again", unless the reply is an
error, which ends the wait. The lifecycle says the same: states ``waiting``
(initial), ``success`` and ``failure``; one observe rule per acceptor, in
order (``retry`` observes ``waiting``); a last rule keeps a reply that is not
an error ``waiting``; error replies reach the observe rules only through the
error rules the ``error`` and ``status`` acceptors add, so any other error
ends the job as botocore's ``WaiterError`` does (5xx and throttling are
retried first, as botocore's client retries them).

The request is the operation's, by its protocol (``json``: ``POST /`` with
``X-Amz-Target``; ``rest-json``/``rest-xml``: its method and URI;
``query``/``ec2``: a form with ``Action`` and ``Version``), signed with SigV4.
The job id is the operation's one required string member (``TableName``)
when it has exactly one: ``statepoll track botocore-dynamodb.json
table_exists my-table``. Otherwise it is a label the request does not use,
and the members are ``--input`` values. Every other top-level member is an
optional input of the same name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from statemachines import SpecError, load_spec

# The pieces live in modules by responsibility (_installed, _report, _spec and,
# under it, _request and _rules); the names the CLI and users import from here
# stay importable from here.
from ._installed import _loader, botocore_version, waiter_services
from ._report import KINDS, Kind, Report, ServiceReport, WaiterReport, summary_lines
from ._spec import convert_service, snake_case

__all__ = [
    "KINDS",
    "Kind",
    "Report",
    "ServiceReport",
    "WaiterReport",
    "botocore_version",
    "convert_service",
    "import_botocore",
    "snake_case",
    "summary_lines",
    "waiter_services",
]


def import_botocore(
    services: Sequence[str], out: Path, *, every_api_version: bool = False
) -> Report:
    """Convert ``services``' waiters, write one spec per service into ``out``, and report.

    Each service's latest API version is converted (what boto3 uses); with
    ``every_api_version``, also the older ones botocore still ships, into
    ``botocore-SERVICE-VERSION.json``.
    """
    loader = _loader()
    out.mkdir(parents=True, exist_ok=True)
    reports: list[ServiceReport] = []
    for service in services:
        versions: list[str | None] = [None]
        if every_api_version:
            # Dated versions: the newest sorts last, and is the one without a suffix.
            versions += sorted(loader.list_api_versions(service, "waiters-2"))[:-1]
        for version in versions:
            waiters = loader.load_service_model(service, "waiters-2", version)
            if version is not None and not waiters.get("waiters"):
                continue
            model = loader.load_service_model(service, "service-2", version)
            name = service if version is None else f"{service}-{version}"
            report = _write(name, waiters, model, out)
            reports.append(attrs.evolve(report, service=service, api_version=version))
    return Report(botocore_version(), tuple(reports))


def _write(
    service: str, waiters: Mapping[str, Any], model: Mapping[str, Any], out: Path
) -> ServiceReport:
    """Convert, write and load one service's spec; drop lifecycles that do not validate."""
    document, reports = convert_service(service, waiters, model)
    path = out / f"botocore-{service}.json"
    dropped: dict[str, str] = {}
    while document["lifecycles"]:
        text = json.dumps(document, indent=2, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        try:
            spec = load_spec(path)
        except SpecError as exc:
            broken = _broken_lifecycles(exc, document["lifecycles"])
            for name, message in broken.items():
                dropped[name] = message
                del document["lifecycles"][name]
            continue
        warnings = tuple(str(w) for w in spec.warnings)
        return ServiceReport(service, _dropped(reports, dropped), path, warnings)
    path.unlink(missing_ok=True)
    return ServiceReport(service, _dropped(reports, dropped))


def _dropped(
    reports: tuple[WaiterReport, ...], dropped: Mapping[str, str]
) -> tuple[WaiterReport, ...]:
    """The reports, with the waiters whose lifecycle was dropped not converted, and why."""
    return tuple(
        # A waiter already not converted may share the dropped lifecycle's name
        # (the name it was refused for): its own reason stays.
        attrs.evolve(w, kind="not_converted", reason=dropped[w.lifecycle])
        if w.lifecycle in dropped and w.kind != "not_converted"
        else w
        for w in reports
    )


def _broken_lifecycles(exc: SpecError, lifecycles: Mapping[str, Any]) -> dict[str, str]:
    """Name → first problem of each lifecycle a spec error is about (all, if it is about none)."""
    broken: dict[str, str] = {}
    for problem in exc.problems:
        parts = problem.pointer.split("/")
        name = parts[2] if len(parts) > 2 and parts[1] == "lifecycles" else ""
        if name in lifecycles and name not in broken:
            broken[name] = f"does not validate: {problem.message[:80]}"
    if broken:
        return broken
    first = exc.problems[0].message[:80] if exc.problems else "?"
    return dict.fromkeys(lifecycles, f"spec does not validate: {first}")
