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
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

import attrs

from statemachines import SpecError, load_spec

from ._jmespath import STAR, UnconvertibleError, acceptor_condition

__all__ = [
    "Report",
    "ServiceReport",
    "WaiterReport",
    "botocore_version",
    "convert_service",
    "import_botocore",
    "snake_case",
    "waiter_services",
]

#: Protocols a spec can send, by preference (botocore's own order lists CBOR first).
_PROTOCOLS: Final = ("json", "rest-json", "query", "ec2", "rest-xml")
_XML: Final = frozenset({"query", "ec2", "rest-xml"})
_DEFAULT_REGION: Final = "us-east-1"
#: Error codes botocore's client retries as throttling before a waiter sees them.
_THROTTLING: Final = (
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
)
_INPUT_TYPES: Final[Mapping[str, str]] = {
    "string": "string",
    "timestamp": "string",
    "blob": "string",
    "integer": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "list": "array",
    "structure": "object",
    "map": "object",
}
_SCALARS: Final = frozenset({"string", "integer", "number", "boolean"})
#: An XML error's code and message (query: <ErrorResponse><Error><Type/><Code/>…; ec2 and S3 alike).
_XML_CODE: Final = r"<Error>\s*(?:<Type>[^<]*</Type>\s*)?<Code>([^<]+)</Code>"
_XML_MESSAGE: Final = r"<Error>[\s\S]*?<Message>([^<]*)</Message>"
#: ``__type`` is "Code", "prefix#Code" or "Code:detail".
_TYPE_CODE: Final = r"(?:^|#)([^#:]+)(?::[^#]*)?$"

Kind = Literal["runs", "xml", "host", "not_converted"]

#: What each kind means, for the summary.
KINDS: Final[Mapping[Kind, str]] = {
    "runs": "runs (JSON replies, SigV4)",
    "xml": "validates; XML replies are not readable by the engine",
    "host": "validates; its operation needs another host prefix than the spec's base URL",
    "not_converted": "not converted",
}


@attrs.frozen
class WaiterReport:
    """What became of one waiter."""

    waiter: str
    lifecycle: str
    kind: Kind
    #: Why it was not converted (or what limits it), short and groupable.
    reason: str | None = None


@attrs.frozen
class ServiceReport:
    """One service's waiters and the spec written for them (``None``: nothing converted)."""

    service: str
    waiters: tuple[WaiterReport, ...]
    path: Path | None = None
    #: Warnings ``statepoll validate`` gives the written spec.
    warnings: tuple[str, ...] = ()
    #: An older API version's (``None``: the latest, what boto3 uses).
    api_version: str | None = None

    @property
    def converted(self) -> int:
        """How many of its waiters are lifecycles of a spec that loads."""
        return sum(w.kind != "not_converted" for w in self.waiters)


@attrs.frozen
class Report:
    """Every service converted, and the counts the summary prints."""

    version: str
    services: tuple[ServiceReport, ...]

    @property
    def waiters(self) -> tuple[WaiterReport, ...]:
        """Every waiter, service by service."""
        return tuple(w for s in self.services for w in s.waiters)

    @property
    def total(self) -> int:
        """Waiters looked at."""
        return len(self.waiters)

    @property
    def converted(self) -> int:
        """Waiters that are lifecycles of a written spec that loads."""
        return sum(s.converted for s in self.services)

    def by_kind(self) -> Counter[Kind]:
        """Waiters per kind."""
        return Counter(w.kind for w in self.waiters)

    def reasons(self) -> Counter[str]:
        """Waiters not converted, per reason."""
        return Counter(
            w.reason or "?" for w in self.waiters if w.kind == "not_converted"
        )


def botocore_version() -> str:
    """Return the installed botocore's version."""
    import botocore  # noqa: PLC0415 - the aws extra, only when importing

    return str(botocore.__version__)


def _loader() -> Any:
    from botocore.loaders import Loader  # noqa: PLC0415 - the aws extra, only when importing

    return Loader()


def waiter_services() -> tuple[str, ...]:
    """Return the services whose installed botocore model has waiters, sorted.

    Many services ship an empty ``waiters-2`` model; those are left out.
    """
    loader = _loader()
    return tuple(
        sorted(
            name
            for name in loader.list_available_services("waiters-2")
            if loader.load_service_model(name, "waiters-2").get("waiters")
        )
    )


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
        final = tuple(
            attrs.evolve(w, kind="not_converted", reason=dropped[w.lifecycle])
            if w.lifecycle in dropped
            else w
            for w in reports
        )
        return ServiceReport(service, final, path, warnings)
    path.unlink(missing_ok=True)
    return ServiceReport(
        service,
        tuple(
            attrs.evolve(w, kind="not_converted", reason=dropped[w.lifecycle])
            if w.lifecycle in dropped
            else w
            for w in reports
        ),
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


def _protocol(metadata: Mapping[str, Any]) -> str | None:
    offered = metadata.get("protocols") or [metadata.get("protocol")]
    return next((p for p in _PROTOCOLS if p in offered), None)


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


def _errors(
    protocol: str, metadata: Mapping[str, Any], output: Mapping[str, Any]
) -> dict[str, Any]:
    """Where the error code and message are, and throttling retried (the rules)."""
    code_from: list[dict[str, str]] = []
    if "awsQueryCompatible" in metadata:
        code_from.append({"header": "x-amzn-query-error", "pattern": "^([^;]+)"})
    if protocol in _XML:
        code_from.append({"pattern": _XML_CODE})
        message_from = [{"pattern": _XML_MESSAGE}]
    else:
        type_code = {"pointer": "/__type", "pattern": _TYPE_CODE}
        header_code = {"header": "x-amzn-ErrorType", "pattern": "^([^:]+)"}
        code_from += (
            [type_code, header_code] if protocol == "json" else [header_code, type_code]
        )
        if protocol == "rest-json":
            # botocore also reads "code"/"Code"; not where a success reply has such a member.
            members = output.get("members", {})
            code_from += [
                {"pointer": f"/{k}"} for k in ("code", "Code") if k not in members
            ]
        message_from = [{"pointer": "/message"}, {"pointer": "/Message"}]
    return {
        "code_from": code_from,
        "message_from": message_from,
        "rules": [
            {
                "when": {"any": [{"status": 429}, {"error": list(_THROTTLING)}]},
                "as": "transient",
                "description": "throttling: botocore's client retries it before the waiter sees it",
            }
        ],
    }


def _acceptors(
    acceptors: Iterable[Mapping[str, Any]], resolve: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (observe rules, error rules) for a waiter's acceptors, in order."""
    observe: list[dict[str, Any]] = []
    codes: list[str] = []
    statuses: list[int] = []
    any_error = False
    for number, acceptor in enumerate(acceptors, 1):
        matcher, expected = acceptor["matcher"], acceptor["expected"]
        if matcher == "status":
            condition: dict[str, Any] = {"status": int(expected)}
            if int(expected) >= 300:
                statuses.append(int(expected))
        elif matcher == "error":
            condition = {"error": expected}
            if isinstance(expected, bool):
                any_error = any_error or expected
            else:
                codes.append(str(expected))
        else:
            condition = acceptor_condition(
                matcher, acceptor["argument"], expected, resolve
            )
        state = "waiting" if acceptor["state"] == "retry" else acceptor["state"]
        what = " ".join((matcher, acceptor.get("argument", ""))).strip()
        observe.append(
            {
                "when": condition,
                "state": state,
                "description": (
                    f"acceptor {number}: {what} == {json.dumps(expected)} "
                    f"→ {acceptor['state']}"
                ),
            }
        )
    rules: list[dict[str, Any]] = []
    if any_error:
        rules.append({"when": {"error": True}, "as": "observe"})
    else:
        if codes:
            rules.append({"when": {"error": sorted(set(codes))}, "as": "observe"})
        if statuses:
            rules.append({"when": {"status": sorted(set(statuses))}, "as": "observe"})
    if rules:
        # An error body must not satisfy a negated path test (botocore skips
        # path acceptors on errors).
        for rule in observe:
            if _negates(rule["when"]):
                rule["when"] = {"all": [{"error": False}, rule["when"]]}
    return observe, rules


def _negates(condition: Any) -> bool:
    if isinstance(condition, Mapping):
        return "not" in condition or any(_negates(v) for v in condition.values())
    if isinstance(condition, list):
        return any(_negates(v) for v in condition)
    return False


# -- shapes and requests ------------------------------------------------------------


@attrs.frozen
class _Shapes:
    """botocore's shapes: member names → wire names, and what a path names."""

    shapes: Mapping[str, Any]

    def get(self, name: str | None) -> Mapping[str, Any]:
        """Return the shape called ``name`` (an empty one when there is none)."""
        shape: Mapping[str, Any] = self.shapes.get(name or "", {})
        return shape

    def resolver(self, output: Mapping[str, Any], names: str = "wire") -> Any:
        """Return a resolver of paths from the output shape: (names, type of what they name).

        ``names`` "wire" gives JSON wire names (``locationName``); "member"
        keeps botocore's member names (XML replies: no JSON wire to match).
        """

        def resolve(tokens: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
            wire, kind = self._walk(output, tokens)
            return (wire if names == "wire" else tokens), kind

        return resolve

    def _walk(
        self, shape: Mapping[str, Any], tokens: tuple[str, ...]
    ) -> tuple[tuple[str, ...], str | None]:
        wire: list[str] = []
        current: Mapping[str, Any] | None = shape
        if shape.get("payload") and tokens and tokens[0] == shape["payload"]:
            # The payload member is the body itself.
            current = self.get(shape["members"][tokens[0]]["shape"])
            tokens = tokens[1:]
        for token in tokens:
            current, name = self._step(current, token)
            wire.append(name)
        kind = None if current is None else current.get("type")
        return tuple(wire), kind

    def _step(
        self, shape: Mapping[str, Any] | None, token: str
    ) -> tuple[Mapping[str, Any] | None, str]:
        if shape is None:
            return None, token
        kind = shape.get("type")
        if token == STAR or token.isdigit():
            inner = {"list": "member", "map": "value"}.get(kind or "")
            return (self.get(shape[inner]["shape"]) if inner else None), token
        member = shape.get("members", {}).get(token)
        if member is None:
            return None, token
        return self.get(member["shape"]), member.get("locationName", token)


@attrs.define
class _Request:
    """The poll request of one operation, its inputs and its job id member."""

    operation: Mapping[str, Any]
    shapes: _Shapes
    metadata: Mapping[str, Any]
    protocol: str
    inputs: dict[str, Any] = attrs.Factory(dict)
    left_out: list[str] = attrs.Factory(list)

    def build(self) -> tuple[dict[str, Any], dict[str, Any], str | None, list[str]]:
        """Return (request, inputs, job id member, members not sent)."""
        shape = self.shapes.get(self.operation.get("input", {}).get("shape"))
        members: Mapping[str, Any] = shape.get("members", {})
        required = [
            m
            for m in shape.get("required", [])
            if m in members
            and self._type(members[m]) == "string"
            and members[m].get("location") != "header"
        ]
        job_id = required[0] if len(required) == 1 else None
        for member, spec in members.items():
            if member != job_id:
                self.inputs[member] = {
                    "in": "none",
                    "type": self._type(spec),
                    **(
                        {"required": True}
                        if member in shape.get("required", [])
                        else {}
                    ),
                    "description": f"{member} ({self.shapes.get(spec['shape']).get('type')})",
                }
        if self.protocol == "json":
            request = self._json(members, job_id)
        elif self.protocol in {"query", "ec2"}:
            request = self._form(members, job_id)
        else:
            request = self._rest(shape, members, job_id)
        return request, self.inputs, job_id, self.left_out

    def _type(self, member: Mapping[str, Any]) -> str:
        return _INPUT_TYPES.get(
            self.shapes.get(member["shape"]).get("type", ""), "string"
        )

    def _value(self, member: str, job_id: str | None) -> str:
        return "{job_id}" if member == job_id else "{" + member + "}"

    def _json(self, members: Mapping[str, Any], job_id: str | None) -> dict[str, Any]:
        target = f"{self.metadata['targetPrefix']}.{self.operation['name']}"
        version = self.metadata.get("jsonVersion", "1.0")
        return {
            "method": "POST",
            "path": "/",
            "headers": {
                "X-Amz-Target": target,
                "Content-Type": f"application/x-amz-json-{version}",
            },
            "body": {
                "json": {
                    spec.get("locationName", member): self._value(member, job_id)
                    for member, spec in members.items()
                }
            },
        }

    def _form(self, members: Mapping[str, Any], job_id: str | None) -> dict[str, Any]:
        form: dict[str, Any] = {
            "Action": self.operation["name"],
            "Version": self.metadata["apiVersion"],
        }
        for member, spec in members.items():
            if self._type(spec) not in _SCALARS:
                # Lists and structures flatten to numbered fields (Name.member.1).
                self._leave_out(member)
                continue
            name = spec.get("queryName") or spec.get("locationName", member)
            if self.protocol == "ec2" and "queryName" not in spec:
                name = name[:1].upper() + name[1:]
            form[name] = self._value(member, job_id)
        return {"method": "POST", "path": "/", "body": {"form": form}}

    def _rest(
        self, shape: Mapping[str, Any], members: Mapping[str, Any], job_id: str | None
    ) -> dict[str, Any]:
        http = self.operation["http"]
        method = http["method"]
        if method not in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
            msg = f"HTTP method {method} (requests are GET, POST, PUT, PATCH or DELETE)"
            raise UnconvertibleError(msg)
        uri, _, fixed = http["requestUri"].partition("?")
        by_location = {
            spec.get("locationName", member): member
            for member, spec in members.items()
            if spec.get("location") == "uri"
        }

        def label(match: re.Match[str]) -> str:
            name, greedy = match.group(1), match.group(2)
            member = by_location.get(name, name)
            if member in self.inputs:
                self.inputs[member]["in"] = "path"
            value = "job_id" if member == job_id else member
            return "{+" + value + "}" if greedy else "{" + value + "}"

        request: dict[str, Any] = {
            "method": method,
            "path": re.sub(r"\{([^}+]+)(\+?)\}", label, uri),
        }
        query = dict(parse_qsl(fixed, keep_blank_values=True))
        body: dict[str, Any] = {}
        for member, spec in members.items():
            location = spec.get("location")
            if location == "querystring":
                self._query(member, spec, job_id, query)
            elif location in {"header", "headers"}:
                self._leave_out(member)
            elif location is None:
                if (
                    method == "GET"
                    or self.protocol == "rest-xml"
                    or shape.get("payload")
                ):
                    self._leave_out(member)
                else:
                    body[spec.get("locationName", member)] = self._value(member, job_id)
        if query:
            request["query"] = query
        if body:
            request["body"] = {"json": body}
        return request

    def _query(
        self,
        member: str,
        spec: Mapping[str, Any],
        job_id: str | None,
        query: dict[str, str],
    ) -> None:
        name = spec.get("locationName", member)
        if member == job_id:
            query[name] = "{job_id}"
        elif self._type(spec) in _SCALARS:
            self.inputs[member]["in"] = "query"
            if name != member:
                self.inputs[member]["name"] = name
        else:
            self._leave_out(member)

    def _leave_out(self, member: str) -> None:
        self.left_out.append(member)
        self.inputs.pop(member, None)


def summary_lines(report: Report) -> Iterator[str]:
    """The summary the command prints after the per-service lines."""
    total = report.total
    kinds = report.by_kind()
    share = report.converted / total if total else 0.0
    services = len({s.service for s in report.services if s.waiters})
    yield (
        f"botocore {report.version}: {total} waiters in {services} services; "
        f"converted to specs that validate: {report.converted} ({share:.1%})"
    )
    for kind in ("runs", "xml", "host"):
        if kinds[kind]:
            yield f"  {kinds[kind]:4d} {KINDS[kind]}"
    if kinds["not_converted"]:
        yield f"  {kinds['not_converted']:4d} not converted:"
        for reason, count in sorted(
            report.reasons().items(), key=lambda x: (-x[1], x[0])
        ):
            yield f"    {count:4d} {reason}"
