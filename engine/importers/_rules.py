"""A waiter's acceptors → observe rules and error rules; where a protocol's errors say their code.

:func:`_acceptors` turns the acceptors, in order, into a lifecycle's observe
rules and the error rules that let its ``error`` and ``status`` acceptors see
error replies; :func:`_errors` is the error block (code and message, by
protocol, and throttling retried as botocore's client retries it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._jmespath import acceptor_condition
from ._request import _XML

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
#: An XML error's code and message (query: <ErrorResponse><Error><Type/><Code/>…; ec2 and S3 alike).
_XML_CODE: Final = r"<Error>\s*(?:<Type>[^<]*</Type>\s*)?<Code>([^<]+)</Code>"
_XML_MESSAGE: Final = r"<Error>[\s\S]*?<Message>([^<]*)</Message>"
#: ``__type`` is "Code", "prefix#Code" or "Code:detail".
_TYPE_CODE: Final = r"(?:^|#)([^#:]+)(?::[^#]*)?$"


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
