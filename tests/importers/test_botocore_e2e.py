"""Converted waiters driven by AsyncEngine over loopback, against a fake that checks SigV4."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import AsyncEngine, JobTimedOut, RemoteError
from engine.cli import main
from engine.importers._botocore import import_botocore
from engine.simulators import serving
from statemachines import Spec, load_spec
from tests.importers._fake_aws import FakeAws, env

DESCRIBE = "DynamoDB_20120810.DescribeTable"
ENDPOINT = "AWS_ENDPOINT_URL_DYNAMODB"
#: The waiters' 20 s delay becomes 20 ms.
SCALE = 0.001
BOUND = 10.0


def _table(status: str) -> dict[str, Any]:
    return {"Table": {"TableName": "orders", "TableStatus": status}}


def _error(code: str) -> tuple[int, dict[str, Any]]:
    return 400, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code}


@pytest.fixture(scope="module")
def dynamodb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spec `statepoll import botocore dynamodb` writes."""
    out = tmp_path_factory.mktemp("botocore")
    report = import_botocore(["dynamodb"], out)
    (service,) = report.services
    assert service.path is not None
    return service.path


def _fake(*answers: Any) -> FakeAws:
    return FakeAws("dynamodb", "application/x-amz-json-1.0", {DESCRIBE: list(answers)})


async def _wait(spec: Spec, fake: FakeAws, lifecycle: str) -> Any:
    """Track table 'orders' with ``lifecycle``: its result, or the error it ended with."""
    with serving(fake.app()) as api:
        async with AsyncEngine(env=env(api.url, ENDPOINT), time_scale=SCALE) as engine:
            async with asyncio.timeout(BOUND):
                job = await engine.track(spec, lifecycle, "orders")
                try:
                    return await engine.wait(job, timeout=BOUND)
                except (RemoteError, JobTimedOut) as exc:
                    return exc


@pytest.mark.anyio
async def test_table_exists_retries_not_found_then_succeeds_when_active(
    dynamodb: Path,
) -> None:
    """table_exists: ResourceNotFound is retry, CREATING waits, ACTIVE is success; all signed."""
    fake = _fake(
        _error("ResourceNotFoundException"),
        _table("CREATING"),
        _table("CREATING"),
        _table("ACTIVE"),
    )
    result = await _wait(load_spec(dynamodb), fake, "table_exists")

    assert result.state == "success"
    assert result.attempts == 4
    assert [(t, v) for t, v, _ in fake.seen] == [(DESCRIBE, "ok")] * 4
    assert {json.dumps(body) for _, _, body in fake.seen} == {'{"TableName": "orders"}'}


@pytest.mark.anyio
async def test_table_not_exists_succeeds_on_resource_not_found(dynamodb: Path) -> None:
    """table_not_exists: an ACTIVE table waits; the ResourceNotFound error is success."""
    fake = _fake(
        _table("ACTIVE"), _table("DELETING"), _error("ResourceNotFoundException")
    )
    result = await _wait(load_spec(dynamodb), fake, "table_not_exists")

    assert result.state == "success"
    assert result.attempts == 3


@pytest.mark.anyio
async def test_an_error_no_acceptor_matches_ends_the_wait(dynamodb: Path) -> None:
    """An error reply no acceptor names ends the job with the service's code (botocore raises)."""
    fake = _fake(_table("CREATING"), _error("AccessDeniedException"), _table("ACTIVE"))
    ended = await _wait(load_spec(dynamodb), fake, "table_exists")

    assert isinstance(ended, RemoteError)
    assert (ended.kind, ended.status, ended.code) == (
        "status",
        400,
        "AccessDeniedException",
    )
    assert len(fake.seen) == 2


@pytest.mark.anyio
async def test_throttling_is_retried_without_using_an_attempt(dynamodb: Path) -> None:
    """A ThrottlingException is retried (botocore's client does) and costs no attempt."""
    fake = _fake(_error("ThrottlingException"), _table("ACTIVE"))
    result = await _wait(load_spec(dynamodb), fake, "table_exists")

    assert result.state == "success"
    assert result.attempts == 1
    assert len(fake.seen) == 2


@pytest.mark.anyio
async def test_max_attempts_ends_the_wait_as_botocore_does(dynamodb: Path) -> None:
    """A table CREATING forever: the job times out after the waiter's 25 attempts."""
    fake = _fake(_table("CREATING"))
    ended = await _wait(load_spec(dynamodb), fake, "table_exists")

    assert isinstance(ended, JobTimedOut)
    assert len(fake.seen) == 25


def test_statepoll_track_runs_a_converted_waiter(
    dynamodb: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`statepoll track botocore-dynamodb.json table_exists orders` ends success, exit 0."""
    fake = _fake(_table("CREATING"), _table("ACTIVE"))
    out, err = io.StringIO(), io.StringIO()
    with serving(fake.app()) as api:
        for name, value in env(api.url, ENDPOINT).items():
            monkeypatch.setenv(name, value)
        code = main(
            [
                *("track", str(dynamodb), "table_exists", "orders"),
                *("--json", "--time-scale", str(SCALE)),
            ],
            stdout=out,
            stderr=err,
        )

    assert code == 0
    assert "waiting -> success" in err.getvalue()
    shown = json.loads(out.getvalue())
    assert (shown["state"], shown["outcome"], shown["attempts"]) == (
        "success",
        "success",
        2,
    )


@pytest.mark.anyio
async def test_an_xml_reply_is_not_readable_and_ends_as_a_protocol_error(
    tmp_path: Path,
) -> None:
    """A query-protocol waiter (RDS) validates; its XML replies are malformed JSON to the engine."""
    (service,) = import_botocore(["rds"], tmp_path).services
    assert service.path is not None
    spec = load_spec(service.path)
    calls: list[bytes] = []

    async def describe(request: Request) -> Response:
        calls.append(await request.body())
        xml = (
            "<DescribeDBInstancesResponse><DBInstanceStatus>available"
            "</DBInstanceStatus></DescribeDBInstancesResponse>"
        )
        return Response(xml, media_type="text/xml")

    app = Starlette(routes=[Route("/", describe, methods=["POST"])])
    with serving(app) as api:
        async with AsyncEngine(
            env=env(api.url, "AWS_ENDPOINT_URL_RDS"), time_scale=SCALE
        ) as engine:
            async with asyncio.timeout(BOUND):
                job = await engine.track(
                    spec, "db_instance_available", "db1", DBInstanceIdentifier="db1"
                )
                with pytest.raises(RemoteError) as ended:
                    await engine.wait(job, timeout=BOUND)

    assert ended.value.kind == "protocol"
    assert "malformed JSON" in str(ended.value)
    assert b"Action=DescribeDBInstances" in calls[0]
    assert b"DBInstanceIdentifier=db1" in calls[0]


@pytest.mark.anyio
async def test_a_rest_json_waiter_signs_its_path_and_reads_the_reply(
    tmp_path: Path,
) -> None:
    """Lambda function_active_v2: GET /2015-03-31/functions/{name}, signed; Pending, then Active."""
    (service,) = import_botocore(["lambda"], tmp_path).services
    assert service.path is not None
    path = "GET /2015-03-31/functions/my%20fn"
    fake = FakeAws(
        "lambda",
        "application/json",
        {
            path: [
                {"Configuration": {"State": "Pending"}},
                {"Configuration": {"State": "Active"}},
            ]
        },
    )
    with serving(fake.app()) as api:
        variables = env(api.url, "AWS_ENDPOINT_URL_LAMBDA")
        async with AsyncEngine(env=variables, time_scale=SCALE) as engine:
            async with asyncio.timeout(BOUND):
                job = await engine.track(
                    load_spec(service.path), "function_active_v2", "my fn"
                )
                result = await engine.wait(job, timeout=BOUND)

    assert (result.state, result.attempts) == ("success", 2)
    assert [(t, v) for t, v, _ in fake.seen] == [(path, "ok")] * 2
