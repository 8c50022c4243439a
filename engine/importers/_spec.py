"""One service's waiters → its spec document: the service block and one lifecycle per waiter.

:func:`convert_service` assembles the document (base URL, SigV4 auth, the
default error block) and reports what became of each waiter; a waiter's
lifecycle is its states, its request, its observe and error rules and its
schedule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._installed import botocore_version
from ._jmespath import UnconvertibleError
from ._report import WaiterReport
from ._request import _XML, _protocol, _Request, _Shapes
from ._rules import _acceptors, _errors

__all__ = ["convert_service", "snake_case"]

_DEFAULT_REGION: Final = "us-east-1"


def snake_case(name: str) -> str:
    """Return a waiter's name in snake_case: ``DBInstanceAvailable`` → ``db_instance_available``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"[^a-z0-9_]+", "_", spaced.lower()).strip("_")


# -- one service ---------------------------------------------------------------------


def convert_service(
    service: str, waiters: Mapping[str, Any], model: Mapping[str, Any]
) -> tuple[dict[str, Any], tuple[WaiterReport, ...]]:
    """Return the spec document of ``service``'s waiters and what became of each.

    ``waiters`` and ``model`` are botocore's ``waiters-2`` and ``service-2``
    documents. The document holds every waiter that converted (it is not yet
    validated: :func:`import_botocore` loads it).
    """
    shapes = _Shapes(model["shapes"])
    metadata = model["metadata"]
    protocol = _protocol(metadata)
    operations = model["operations"]
    configs: Mapping[str, Any] = waiters["waiters"]
    prefixes = Counter(
        operations.get(c["operation"], {}).get("endpoint", {}).get("hostPrefix", "")
        for c in configs.values()
    )
    # A prefix with a label ("{AccountId}.") is per call: it cannot be the base URL's.
    fixed = [p for p, _ in prefixes.most_common() if "{" not in p]
    host_prefix = fixed[0] if fixed else ""
    lifecycles: dict[str, Any] = {}
    reports: list[WaiterReport] = []
    for name, config in configs.items():
        lifecycle_name = snake_case(name)
        operation = operations[config["operation"]]
        try:
            lifecycles[lifecycle_name] = _lifecycle(
                _Waiter(name, lifecycle_name, config, operation),
                shapes,
                metadata,
                protocol,
                taken=lifecycles,
            )
        except UnconvertibleError as exc:
            reports.append(
                WaiterReport(name, lifecycle_name, "not_converted", exc.reason)
            )
            continue
        prefix = operation.get("endpoint", {}).get("hostPrefix", "")
        if prefix != host_prefix:
            reports.append(
                WaiterReport(
                    name,
                    lifecycle_name,
                    "host",
                    f"its operation's host prefix is {prefix!r}, "
                    f"the spec's base URL has {host_prefix!r}",
                )
            )
        elif protocol in _XML:
            reason = f"its replies are XML ({protocol} protocol), which the engine does not read"
            reports.append(WaiterReport(name, lifecycle_name, "xml", reason))
        else:
            reports.append(WaiterReport(name, lifecycle_name, "runs"))
    document = _document(service, metadata, protocol, host_prefix, lifecycles)
    if protocol is not None:
        document["defaults"] = {
            "errors": _errors(protocol, metadata, _common_output(model, configs))
        }
    # The service block first, the lifecycles last, as people write specs.
    document["lifecycles"] = document.pop("lifecycles")
    return document, tuple(reports)


def _common_output(
    model: Mapping[str, Any], configs: Mapping[str, Any]
) -> dict[str, Any]:
    """The top-level output members of every waiter's operation (where "code" may be data)."""
    members: dict[str, Any] = {}
    for config in configs.values():
        operation = model["operations"].get(config["operation"], {})
        shape = model["shapes"].get(operation.get("output", {}).get("shape", ""), {})
        members.update(shape.get("members", {}))
    return {"members": members}


def _document(
    service: str,
    metadata: Mapping[str, Any],
    protocol: str | None,
    host_prefix: str,
    lifecycles: dict[str, Any],
) -> dict[str, Any]:
    prefix = metadata.get("endpointPrefix", service)
    global_host = metadata.get("globalEndpoint")
    host = global_host or f"{host_prefix}{prefix}.{_DEFAULT_REGION}.amazonaws.com"
    service_id = metadata.get("serviceId", service)
    env = re.sub(r"[^A-Z0-9]+", "_", service_id.upper()).strip("_")
    return {
        "$schema": "https://statepoll.dev/schema/statepoll.schema.json",
        "spec_version": "1",
        "service": {
            "name": f"botocore-{service}",
            "title": metadata.get("serviceFullName", service),
            "description": (
                f"{service} ({metadata.get('apiVersion')}, protocol {protocol}): "
                f"botocore {botocore_version()}'s waiters, converted by "
                "'statepoll import botocore'. Set AWS_REGION and this service's "
                f"endpoint (AWS_ENDPOINT_URL_{env}) for a region other than "
                f"{_DEFAULT_REGION}."
            ),
            "base_url": f"https://{host}",
            "base_url_env": f"AWS_ENDPOINT_URL_{env}",
            # A global endpoint (IAM, CloudFront, Route 53) signs for us-east-1 only.
            "auth": {
                "kind": "aws_sigv4",
                "service": metadata.get("signingName", prefix),
                "region": _DEFAULT_REGION,
                **({} if global_host else {"region_env": "AWS_REGION"}),
            },
        },
        "lifecycles": lifecycles,
    }


# -- one waiter ----------------------------------------------------------------------


@attrs.frozen
class _Waiter:
    name: str
    lifecycle: str
    config: Mapping[str, Any]
    operation: Mapping[str, Any]


def _lifecycle(
    waiter: _Waiter,
    shapes: _Shapes,
    metadata: Mapping[str, Any],
    protocol: str | None,
    *,
    taken: Mapping[str, Any],
) -> dict[str, Any]:
    """Return one waiter's lifecycle document.

    Raises:
        UnconvertibleError: the waiter cannot be said in the spec language.
    """
    if protocol is None:
        msg = f"protocol {metadata.get('protocol')} only (CBOR bodies)"
        raise UnconvertibleError(msg)
    if waiter.lifecycle in taken or not waiter.lifecycle[:1].isalpha():
        msg = "its snake_case name is taken or does not start with a letter"
        raise UnconvertibleError(msg)
    name, config, operation = waiter.name, waiter.config, waiter.operation
    output = shapes.get(operation.get("output", {}).get("shape"))
    request, inputs, job_id, left_out = _Request(
        operation, shapes, metadata, protocol
    ).build()
    names = "member" if protocol in _XML else "wire"
    observe, rules = _acceptors(config["acceptors"], shapes.resolver(output, names))
    states: dict[str, Any] = {"waiting": {"initial": True}}
    ends = [
        s for s in ("success", "failure") if any(r.get("state") == s for r in observe)
    ]
    if not ends:
        msg = "no acceptor leads to success or failure"
        raise UnconvertibleError(msg)
    for state in ends:
        states[state] = {"outcome": state}
    observe.append(
        {
            "when": {"error": False},
            "state": "waiting",
            "description": "no acceptor matched: botocore polls again",
        }
    )
    how = f"job id: its {job_id} member" if job_id else "job id: any label (not sent)"
    if left_out:
        how += f"; not sent: {', '.join(left_out)}"
    if protocol in _XML:
        how += (
            "; the service answers in XML, which the engine does not read: "
            "rules on the body never match"
        )
    return {
        "description": (
            f"botocore waiter {name}: {config['operation']} every {config['delay']} s, "
            f"at most {config['maxAttempts']} times ({how})."
        ),
        "states": states,
        "transitions": [{"from": "waiting", "to": ends}],
        **({"inputs": inputs} if inputs else {}),
        "poll": {"request": request, "observe": observe},
        "schedule": {
            "interval": config["delay"],
            "max_attempts": config["maxAttempts"],
            "backoff": {"kind": "fixed"},
            "jitter": {"kind": "none"},
        },
        # A lifecycle's own rules replace the default ones: throttling stays first.
        **(
            {
                "errors": {
                    "rules": [*rules, *_errors(protocol, metadata, output)["rules"]]
                }
            }
            if rules
            else {}
        ),
    }
