"""botocore waiter models → spec documents, on small hand-made models."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from engine.importers._botocore import (
    Report,
    ServiceReport,
    WaiterReport,
    _write,
    convert_service,
    snake_case,
    summary_lines,
)
from statemachines import load_document


def _model(protocol: str = "json", **metadata: Any) -> dict[str, Any]:
    """A service-2 model with one operation, DescribeThing(ThingName required, Limit)."""
    return {
        "metadata": {
            "protocol": protocol,
            "apiVersion": "2020-01-01",
            "endpointPrefix": "things",
            "serviceId": "Thing Store",
            "targetPrefix": "ThingStore_20200101",
            "jsonVersion": "1.1",
            **metadata,
        },
        "operations": {
            "DescribeThing": {
                "name": "DescribeThing",
                "http": {"method": "POST", "requestUri": "/"},
                "input": {"shape": "DescribeThingInput"},
                "output": {"shape": "DescribeThingOutput"},
            }
        },
        "shapes": {
            "DescribeThingInput": {
                "type": "structure",
                "required": ["ThingName"],
                "members": {
                    "ThingName": {"shape": "String"},
                    "Limit": {"shape": "Integer"},
                    "Tags": {"shape": "Strings"},
                },
            },
            "DescribeThingOutput": {
                "type": "structure",
                "members": {
                    "Thing": {"shape": "Thing", "locationName": "thing"},
                    "Parts": {"shape": "Parts"},
                    "Secret": {"shape": "String"},
                },
            },
            "Thing": {
                "type": "structure",
                "members": {"Status": {"shape": "String", "locationName": "status"}},
            },
            "Parts": {"type": "list", "member": {"shape": "Part"}},
            "Part": {"type": "structure", "members": {"State": {"shape": "String"}}},
            "Strings": {"type": "list", "member": {"shape": "String"}},
            "String": {"type": "string"},
            "Integer": {"type": "integer"},
        },
    }


def _waiters(*acceptors: dict[str, Any], name: str = "ThingReady") -> dict[str, Any]:
    return {
        "version": 2,
        "waiters": {
            name: {
                "operation": "DescribeThing",
                "delay": 5,
                "maxAttempts": 7,
                "acceptors": list(acceptors),
            }
        },
    }


READY = {
    "matcher": "path",
    "argument": "Thing.Status",
    "expected": "READY",
    "state": "success",
}
GONE = {"matcher": "error", "expected": "ThingNotFound", "state": "failure"}


def _convert(
    waiters: dict[str, Any], model: dict[str, Any] | None = None
) -> tuple[dict[str, Any], tuple[WaiterReport, ...]]:
    document, reports = convert_service("things", waiters, model or _model())
    if document["lifecycles"]:
        load_document(copy.deepcopy(document), source="things")
    return document, reports


def test_a_json_protocol_waiter_becomes_a_lifecycle() -> None:
    """States, transitions, schedule, the X-Amz-Target request, SigV4 and the job id member."""
    document, reports = _convert(_waiters(READY, GONE))

    assert reports == (WaiterReport("ThingReady", "thing_ready", "runs"),)
    service = document["service"]
    assert service["name"] == "botocore-things"
    assert service["base_url"] == "https://things.us-east-1.amazonaws.com"
    assert service["base_url_env"] == "AWS_ENDPOINT_URL_THING_STORE"
    assert service["auth"] == {
        "kind": "aws_sigv4",
        "service": "things",
        "region": "us-east-1",
        "region_env": "AWS_REGION",
    }
    lifecycle = document["lifecycles"]["thing_ready"]
    assert lifecycle["states"] == {
        "waiting": {"initial": True},
        "success": {"outcome": "success"},
        "failure": {"outcome": "failure"},
    }
    assert lifecycle["transitions"] == [
        {"from": "waiting", "to": ["success", "failure"]}
    ]
    assert lifecycle["schedule"] == {
        "interval": 5,
        "max_attempts": 7,
        "backoff": {"kind": "fixed"},
        "jitter": {"kind": "none"},
    }
    assert lifecycle["poll"]["request"] == {
        "method": "POST",
        "path": "/",
        "headers": {
            "X-Amz-Target": "ThingStore_20200101.DescribeThing",
            "Content-Type": "application/x-amz-json-1.1",
        },
        "body": {
            "json": {"ThingName": "{job_id}", "Limit": "{Limit}", "Tags": "{Tags}"}
        },
    }
    assert lifecycle["inputs"] == {
        "Limit": {"in": "none", "type": "integer", "description": "Limit (integer)"},
        "Tags": {"in": "none", "type": "array", "description": "Tags (list)"},
    }
    assert "job id: its ThingName member" in lifecycle["description"]


def test_acceptors_are_ordered_observe_rules_and_errors_reach_them_by_rules() -> None:
    """Each acceptor is a rule in order; retry stays waiting; error codes get an observe rule."""
    retry_missing = {"matcher": "error", "expected": "NotYet", "state": "retry"}
    document, _ = _convert(_waiters(READY, GONE, retry_missing))
    lifecycle = document["lifecycles"]["thing_ready"]

    assert [(r["when"], r["state"]) for r in lifecycle["poll"]["observe"]] == [
        ({"pointer": "/thing/status", "equals": "READY"}, "success"),
        ({"error": "ThingNotFound"}, "failure"),
        ({"error": "NotYet"}, "waiting"),
        ({"error": False}, "waiting"),
    ]
    rules = lifecycle["errors"]["rules"]
    assert rules[0] == {"when": {"error": ["NotYet", "ThingNotFound"]}, "as": "observe"}
    assert rules[1]["as"] == "transient"  # throttling, after the acceptors' own
    assert document["defaults"]["errors"]["rules"] == rules[1:]


def test_status_acceptors_observe_their_error_statuses() -> None:
    """A status acceptor of 300 or more is made observable; 200 needs no rule."""
    accept = {"matcher": "status", "expected": 200, "state": "success"}
    missing = {"matcher": "status", "expected": 404, "state": "retry"}
    document, _ = _convert(_waiters(accept, missing))
    lifecycle = document["lifecycles"]["thing_ready"]

    assert lifecycle["errors"]["rules"][0] == {
        "when": {"status": [404]},
        "as": "observe",
    }
    assert lifecycle["poll"]["observe"][0]["when"] == {"status": 200}
    assert "failure" not in lifecycle["states"]


def test_error_true_observes_every_error_and_false_needs_no_rule() -> None:
    """error: true matches any error (one observe rule for all); error: false any success."""
    any_error = {"matcher": "error", "expected": True, "state": "failure"}
    no_error = {"matcher": "error", "expected": False, "state": "success"}
    coded = {"matcher": "error", "expected": "Gone", "state": "failure"}
    document, _ = _convert(_waiters(coded, any_error, no_error))
    lifecycle = document["lifecycles"]["thing_ready"]

    assert lifecycle["errors"]["rules"][0] == {"when": {"error": True}, "as": "observe"}
    assert [r["when"] for r in lifecycle["poll"]["observe"][:3]] == [
        {"error": "Gone"},
        {"error": True},
        {"error": False},
    ]
    document, _ = _convert(_waiters(no_error))
    assert "errors" not in document["lifecycles"]["thing_ready"]


def test_a_negated_path_test_is_guarded_against_error_bodies() -> None:
    """Path acceptors never match errors in botocore: a negated test must not hold for one."""
    deleted = {
        "matcher": "path",
        "argument": "length(Parts) == `0`",
        "expected": True,
        "state": "success",
    }
    document, _ = _convert(_waiters(deleted, GONE))
    first = document["lifecycles"]["thing_ready"]["poll"]["observe"][0]["when"]

    assert first == {
        "all": [
            {"error": False},
            {"not": {"pointer": "/Parts/*", "exists": True, "match": "any"}},
        ]
    }
    document, _ = _convert(_waiters(deleted))
    assert document["lifecycles"]["thing_ready"]["poll"]["observe"][0]["when"] == {
        "not": {"pointer": "/Parts/*", "exists": True, "match": "any"}
    }
    nested = deleted | {"argument": "Secret == 'x' && Thing.Status != 'GONE'"}
    document, _ = _convert(_waiters(nested, GONE))
    assert document["lifecycles"]["thing_ready"]["poll"]["observe"][0]["when"]["all"][
        0
    ] == {"error": False}


def test_paths_use_wire_names_and_shapes() -> None:
    """The locationName is the JSON name; list elements and their members resolve through shapes."""
    part = {
        "matcher": "pathAll",
        "argument": "Parts[].State",
        "expected": "OK",
        "state": "success",
    }
    indexed = {
        "matcher": "path",
        "argument": "Parts[0].State",
        "expected": "BAD",
        "state": "failure",
    }
    unknown = {
        "matcher": "path",
        "argument": "Other.x",
        "expected": "y",
        "state": "failure",
    }
    secret = {
        "matcher": "path",
        "argument": "length(Secret) > `0`",
        "expected": True,
        "state": "failure",
    }
    document, _ = _convert(_waiters(part, indexed, unknown, secret))
    whens = [
        r["when"] for r in document["lifecycles"]["thing_ready"]["poll"]["observe"]
    ]

    assert whens[:3] == [
        {"pointer": "/Parts/*/State", "equals": "OK", "match": "all"},
        {"pointer": "/Parts/0/State", "equals": "BAD"},
        {"pointer": "/Other/x", "equals": "y"},
    ]
    assert whens[3]["all"][0] == {"pointer": "/Secret", "exists": True}


def test_a_payload_member_is_the_body() -> None:
    """An output payload member's path starts at the body itself."""
    model = _model("rest-json")
    model["shapes"]["DescribeThingOutput"]["payload"] = "Thing"
    model["operations"]["DescribeThing"]["http"] = {
        "method": "GET",
        "requestUri": "/things/{ThingName}",
    }
    model["shapes"]["DescribeThingInput"]["members"]["ThingName"] |= {
        "location": "uri",
        "locationName": "ThingName",
    }
    document, _ = _convert(_waiters(READY), model)

    assert document["lifecycles"]["thing_ready"]["poll"]["observe"][0]["when"] == {
        "pointer": "/status",
        "equals": "READY",
    }


def test_rest_json_binds_path_query_header_and_body_members() -> None:
    """{Name+} is {+name}; querystring members are query inputs; headers are not sent."""
    model = _model("rest-json")
    model["operations"]["DescribeThing"]["http"] = {
        "method": "POST",
        "requestUri": "/v1/{Scope+}/things/{ThingName}?mode=full",
    }
    members = model["shapes"]["DescribeThingInput"]["members"]
    members["ThingName"] |= {"location": "uri", "locationName": "ThingName"}
    members["Scope"] = {"shape": "String", "location": "uri", "locationName": "Scope"}
    members["Limit"] |= {"location": "querystring", "locationName": "limit"}
    members["Tags"] |= {"location": "querystring", "locationName": "tag"}
    members["Token"] = {
        "shape": "String",
        "location": "header",
        "locationName": "X-Token",
    }
    members["Note"] = {"shape": "String", "locationName": "note"}
    members["Page"] = {
        "shape": "String",
        "location": "querystring",
        "locationName": "Page",
    }
    document, _ = _convert(_waiters(READY), model)
    lifecycle = document["lifecycles"]["thing_ready"]

    assert lifecycle["poll"]["request"] == {
        "method": "POST",
        "path": "/v1/{+Scope}/things/{job_id}",
        "query": {"mode": "full"},
        "body": {"json": {"note": "{Note}"}},
    }
    inputs = lifecycle["inputs"]
    assert inputs["Scope"]["in"] == "path"
    assert (inputs["Limit"]["in"], inputs["Limit"]["name"]) == ("query", "limit")
    assert (inputs["Page"]["in"], "name" in inputs["Page"]) == ("query", False)
    assert "Tags" not in inputs
    assert "Token" not in inputs
    assert "not sent: Tags, Token" in lifecycle["description"]


def test_a_query_bound_job_id_and_a_get_without_body() -> None:
    """A job id member in the query is templated there; a GET sends no body members."""
    model = _model("rest-json")
    model["operations"]["DescribeThing"]["http"] = {
        "method": "GET",
        "requestUri": "/things",
    }
    members = model["shapes"]["DescribeThingInput"]["members"]
    members["ThingName"] |= {"location": "querystring", "locationName": "name"}
    document, _ = _convert(_waiters(READY), model)
    request = document["lifecycles"]["thing_ready"]["poll"]["request"]

    assert request == {
        "method": "GET",
        "path": "/things",
        "query": {"name": "{job_id}"},
    }


def test_rest_json_reads_code_members_only_when_no_output_has_them() -> None:
    """'code'/'Code' are error-code sources unless a success reply has such a member."""
    document, _ = _convert(_waiters(READY), _model("rest-json"))
    sources = document["defaults"]["errors"]["code_from"]
    assert sources[0] == {"header": "x-amzn-ErrorType", "pattern": "^([^:]+)"}
    assert {"pointer": "/code"} in sources
    assert {"pointer": "/Code"} in sources

    model = _model("rest-json")
    model["shapes"]["DescribeThingOutput"]["members"]["Code"] = {"shape": "String"}
    document, _ = _convert(_waiters(READY), model)
    assert {"pointer": "/Code"} not in document["defaults"]["errors"]["code_from"]


def test_a_query_compatible_service_reads_the_query_error_header_first() -> None:
    """JSON services marked awsQueryCompatible put the query code in x-amzn-query-error."""
    document, _ = _convert(_waiters(READY), _model(awsQueryCompatible={}))
    assert document["defaults"]["errors"]["code_from"][0] == {
        "header": "x-amzn-query-error",
        "pattern": "^([^;]+)",
    }


@pytest.mark.parametrize("protocol", ["query", "ec2"])
def test_query_protocols_send_a_form_and_validate_only(protocol: str) -> None:
    """query/ec2: POST / with Action and Version; lists are not sent; XML replies noted."""
    model = _model(protocol)
    model["shapes"]["DescribeThingInput"]["members"]["Limit"]["locationName"] = "limit"
    model["shapes"]["DescribeThingInput"]["members"]["Mode"] = {
        "shape": "String",
        "queryName": "QMode",
    }
    document, reports = _convert(_waiters(READY), model)
    lifecycle = document["lifecycles"]["thing_ready"]
    limit = "Limit" if protocol == "ec2" else "limit"

    assert lifecycle["poll"]["request"] == {
        "method": "POST",
        "path": "/",
        "body": {
            "form": {
                "Action": "DescribeThing",
                "Version": "2020-01-01",
                "ThingName": "{job_id}",
                limit: "{Limit}",
                "QMode": "{Mode}",
            }
        },
    }
    assert reports[0].kind == "xml"
    assert f"({protocol} protocol)" in (reports[0].reason or "")
    assert "XML" in lifecycle["description"]
    # Member names, not wire names: there is no JSON wire to match.
    assert lifecycle["poll"]["observe"][0]["when"]["pointer"] == "/Thing/Status"
    assert document["defaults"]["errors"]["code_from"] == [
        {"pattern": r"<Error>\s*(?:<Type>[^<]*</Type>\s*)?<Code>([^<]+)</Code>"}
    ]


def test_a_head_operation_is_not_converted() -> None:
    """HEAD is not among the language's methods: the waiter is reported, not guessed."""
    model = _model("rest-xml")
    model["operations"]["DescribeThing"]["http"] = {
        "method": "HEAD",
        "requestUri": "/{ThingName}",
    }
    document, reports = _convert(_waiters(READY), model)

    assert document["lifecycles"] == {}
    assert reports[0].kind == "not_converted"
    assert (reports[0].reason or "").startswith("HTTP method HEAD")


def test_a_cbor_only_service_is_not_converted_and_json_is_preferred() -> None:
    """smithy-rpc-v2-cbor alone cannot be sent; offered beside json, json is used."""
    model = _model("smithy-rpc-v2-cbor", protocols=["smithy-rpc-v2-cbor"])
    document, reports = _convert(_waiters(READY), model)
    assert "defaults" not in document
    assert reports[0].reason == "protocol smithy-rpc-v2-cbor only (CBOR bodies)"

    model = _model("smithy-rpc-v2-cbor", protocols=["smithy-rpc-v2-cbor", "json"])
    document, reports = _convert(_waiters(READY), model)
    assert reports[0].kind == "runs"
    assert (
        "X-Amz-Target"
        in document["lifecycles"]["thing_ready"]["poll"]["request"]["headers"]
    )


def test_host_prefixes_global_endpoints_and_signing_names() -> None:
    """The most common host prefix goes into the base URL; another one is reported."""
    model = _model(signingName="thingsign", globalEndpoint="things.amazonaws.com")
    document, _ = _convert(_waiters(READY), model)
    assert document["service"]["base_url"] == "https://things.amazonaws.com"
    assert document["service"]["auth"] == {
        "kind": "aws_sigv4",
        "service": "thingsign",
        "region": "us-east-1",
    }

    model = _model()
    model["operations"]["Other"] = model["operations"]["DescribeThing"] | {
        "name": "Other"
    }
    model["operations"]["DescribeThing"]["endpoint"] = {"hostPrefix": "api."}
    waiters = _waiters(READY)
    waiters["waiters"]["SecondReady"] = waiters["waiters"]["ThingReady"]
    waiters["waiters"]["OtherReady"] = waiters["waiters"]["ThingReady"] | {
        "operation": "Other"
    }
    document, reports = _convert(waiters, model)
    assert (
        document["service"]["base_url"] == "https://api.things.us-east-1.amazonaws.com"
    )
    assert [r.kind for r in reports] == ["runs", "runs", "host"]

    model["operations"]["DescribeThing"]["endpoint"] = {"hostPrefix": "{Account}."}
    document, reports = _convert(waiters, model)
    assert document["service"]["base_url"] == "https://things.us-east-1.amazonaws.com"
    assert [r.kind for r in reports] == ["host", "host", "runs"]


def test_waiters_without_an_end_or_with_a_clashing_name_are_not_converted() -> None:
    """Only retry acceptors, or two names with one snake_case, are reported."""
    retry_only = {"matcher": "error", "expected": "X", "state": "retry"}
    _, reports = _convert(_waiters(retry_only))
    assert reports[0].reason == "no acceptor leads to success or failure"

    waiters = _waiters(READY, name="DBReady")
    waiters["waiters"]["DbReady"] = waiters["waiters"]["DBReady"]
    document, reports = _convert(waiters)
    assert list(document["lifecycles"]) == ["db_ready"]
    assert (
        reports[1].reason
        == "its snake_case name is taken or does not start with a letter"
    )


def test_an_unconvertible_acceptor_is_reported_with_its_reason() -> None:
    """A JMESPath the language cannot say leaves the waiter out, with the reason."""
    stable = {
        "matcher": "path",
        "argument": "length(Parts[?!(State == Other)]) == `0`",
        "expected": True,
        "state": "success",
    }
    document, reports = _convert(_waiters(stable))

    assert document["lifecycles"] == {}
    assert reports == (
        WaiterReport(
            "ThingReady", "thing_ready", "not_converted", "compares two fields"
        ),
    )


def test_a_job_id_is_a_label_unless_one_required_string_member_names_the_resource() -> (
    None
):
    """No required string member (or two): the job id is a label and every member an input."""
    model = _model()
    model["shapes"]["DescribeThingInput"]["required"] = []
    document, _ = _convert(_waiters(READY), model)
    lifecycle = document["lifecycles"]["thing_ready"]
    assert "job id: any label (not sent)" in lifecycle["description"]
    assert lifecycle["poll"]["request"]["body"]["json"]["ThingName"] == "{ThingName}"
    assert "required" not in lifecycle["inputs"]["ThingName"]

    model["shapes"]["DescribeThingInput"]["required"] = ["ThingName", "Other"]
    model["shapes"]["DescribeThingInput"]["members"]["Other"] = {"shape": "String"}
    document, _ = _convert(_waiters(READY), model)
    inputs = document["lifecycles"]["thing_ready"]["inputs"]
    assert inputs["ThingName"]["required"] is True


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("TableExists", "table_exists"),
        ("DBInstanceAvailable", "db_instance_available"),
        ("FunctionActiveV2", "function_active_v2"),
        ("ServicesStable", "services_stable"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    """Waiter names become lifecycle names."""
    assert snake_case(name) == snake


def test_a_lifecycle_that_does_not_validate_is_dropped_with_the_problem(
    tmp_path: Path,
) -> None:
    """The spec is loaded after writing; a lifecycle with problems is reported and removed."""
    waiters = _waiters(READY)
    waiters["waiters"]["BadReady"] = waiters["waiters"]["ThingReady"] | {"delay": 0}
    report = _write("things", waiters, _model(), tmp_path)

    assert [w.kind for w in report.waiters] == ["runs", "not_converted"]
    assert (report.waiters[1].reason or "").startswith("does not validate: ")
    assert report.path is not None
    assert report.converted == 1


def test_a_dropped_lifecycle_leaves_the_reason_of_a_waiter_whose_name_clashed(
    tmp_path: Path,
) -> None:
    """A waiter refused for its taken name keeps that reason when the taker is dropped."""
    waiters = _waiters(READY, name="DBReady")
    waiters["waiters"]["DBReady"]["delay"] = 0
    waiters["waiters"]["DbReady"] = waiters["waiters"]["DBReady"] | {"delay": 5}
    report = _write("things", waiters, _model(), tmp_path)

    assert [w.kind for w in report.waiters] == ["not_converted", "not_converted"]
    assert (report.waiters[0].reason or "").startswith("does not validate: ")
    assert (
        report.waiters[1].reason
        == "its snake_case name is taken or does not start with a letter"
    )


def test_a_spec_that_does_not_validate_at_all_is_not_written(tmp_path: Path) -> None:
    """A problem outside the lifecycles fails every waiter; no file stays behind."""
    report = _write("Bad Name", _waiters(READY), _model(), tmp_path)

    assert report.path is None
    assert report.waiters[0].kind == "not_converted"
    assert (report.waiters[0].reason or "").startswith("spec does not validate: ")
    assert list(tmp_path.iterdir()) == []


def test_the_summary_counts_kinds_and_groups_reasons() -> None:
    """Total, converted share, each kind, and not-converted grouped by reason."""
    report = Report(
        "9.9",
        (
            ServiceReport(
                "a",
                (
                    WaiterReport("A", "a", "runs"),
                    WaiterReport("B", "b", "xml", "XML"),
                    WaiterReport("C", "c", "host", "prefix"),
                    WaiterReport("D", "d", "not_converted", "why"),
                    WaiterReport("E", "e", "not_converted", "why"),
                    WaiterReport("F", "f", "not_converted", "other"),
                ),
                Path("a.json"),
            ),
            ServiceReport("empty", ()),
        ),
    )

    assert list(summary_lines(report)) == [
        "botocore 9.9: 6 waiters in 1 services; converted to specs that validate: 3 (50.0%)",
        "     1 runs (JSON replies, SigV4)",
        "     1 validates; XML replies are not readable by the engine",
        "     1 validates; its operation needs another host prefix than the spec's base URL",
        "     3 not converted:",
        "       2 why",
        "       1 other",
    ]
    assert list(summary_lines(Report("9.9", ()))) == [
        "botocore 9.9: 0 waiters in 0 services; converted to specs that validate: 0 (0.0%)"
    ]
