"""The engine against the Mindee v2 simulator, over a real socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import Engine, JobFailed, RemoteError
from engine.simulators import ServerHandle, parse_faults
from statemachines import Outcome
from tests.integration.conftest import (
    API_KEY,
    CRED_ENV,
    EventLog,
    engine_for,
    simulator,
    spec_variant,
)

# Jobs process for 0.1-0.3 s; the engine waits 0.15 s, then polls every 0.05 s.
SCALE = 0.05
TIMEOUT = 10.0
MODEL_ID = "5a7e1d34-18c0-4a8e-bf4e-7f7a5d1f0c22"
WEBHOOKS = [
    "c3d2e1f0-1111-4222-8333-944455556666",
    "d4e3f2a1-2222-4333-8444-a55566667777",
]
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    """Serve one Mindee simulator, 20 times faster, for the whole module."""
    with simulator("mindee", seed=11, time_scale=SCALE) as handle:
        yield handle


def _legacy_path(document: dict[str, Any]) -> None:
    submit = document["lifecycles"]["inference"]["submit"]
    submit["request"]["path"] = "/v2/inferences/enqueue"


@pytest.mark.anyio
async def test_processed_job_result_is_fetched_through_the_redirect(
    server: ServerHandle,
) -> None:
    """A job moves Processing → Processed (302) and its result comes from Location."""
    async with engine_for("mindee", server, SCALE) as engine:
        log = EventLog.attach(engine)
        document = ("invoice-sim-processed.pdf", PDF, "application/pdf")
        job = await engine.submit(
            "mindee", "inference", model_id=MODEL_ID, file=document
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    assert (result.state, result.outcome, result.status) == (
        "Processed",
        Outcome.SUCCESS,
        302,
    )
    assert result.result["inference"]["job"]["id"] == job.job_id
    assert log.moves(job.job_id) == [("Processing", "Processed")]
    assert [e.outcome for e in log.named("completed")] == ["success"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("alias", "code"), [("sim-failed", "500-012"), ("sim-failed-invalid", "422-001")]
)
async def test_failed_job_carries_the_job_error_in_its_response(
    server: ServerHandle, alias: str, code: str
) -> None:
    """A Failed job ends with outcome failure and its ``job.error`` in the response."""
    async with engine_for("mindee", server, SCALE) as engine:
        log = EventLog.attach(engine)
        job = await engine.submit(
            "mindee", "inference", model_id=MODEL_ID, file=PDF, alias=alias
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    assert (result.state, result.outcome) == ("Failed", Outcome.FAILURE)
    assert result.response["job"]["error"]["code"] == code
    assert log.moves(job.job_id) == [("Processing", "Failed")]
    with pytest.raises(JobFailed) as info:
        result.raise_for_outcome()
    assert info.value.outcome == "failure"


@pytest.mark.anyio
async def test_product_input_selects_the_enqueue_path(server: ServerHandle) -> None:
    """The ``product`` input fills /v2/products/{product}/enqueue and its result path."""
    async with engine_for("mindee", server, SCALE) as engine:
        job = await engine.submit(
            "mindee",
            "inference",
            product="classification",
            model_id=MODEL_ID,
            file=("sim-processed.png", PDF, "image/png"),
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    assert result.state == "Processed"
    assert (
        "/v2/products/classification/results/" in result.response["job"]["result_url"]
    )
    # The current generation gives the inference its own id.
    assert result.result["inference"]["id"] != job.job_id
    assert result.result["inference"]["job"]["id"] == job.job_id


@pytest.mark.anyio
async def test_legacy_enqueue_path_spec_reaches_the_legacy_result(
    server: ServerHandle,
) -> None:
    """A spec on the legacy /v2/inferences/enqueue path fetches /v2/inferences/{job id}."""
    spec = spec_variant("mindee", _legacy_path, source="mindee-legacy-path")
    async with engine_for("mindee", server, SCALE) as engine:
        job = await engine.submit(
            spec, "inference", model_id=MODEL_ID, file=PDF, alias="sim-processed"
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    assert result.state == "Processed"
    assert result.response["job"]["result_url"].endswith(f"/v2/inferences/{job.job_id}")
    assert result.result["inference"]["id"] == job.job_id
    assert result.result["inference"]["job"]["id"] == job.job_id


@pytest.mark.anyio
async def test_track_adopts_a_job_enqueued_elsewhere(server: ServerHandle) -> None:
    """A job enqueued with plain httpx is tracked by id to its result."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": API_KEY}
    ) as client:
        response = await client.post(
            "/v2/products/extraction/enqueue",
            data={"model_id": MODEL_ID, "alias": "sim-processed"},
            files={"file": ("scan.pdf", PDF, "application/pdf")},
        )
    job_id = response.json()["job"]["id"]
    async with engine_for("mindee", server, SCALE) as engine:
        log = EventLog.attach(engine)
        job = await engine.track("mindee", "inference", job_id)

        result = await engine.wait(job, timeout=TIMEOUT)

    assert response.status_code == 202
    assert result.state == "Processed"
    assert result.result["inference"]["job"]["id"] == job_id
    assert [e.adopted for e in log.named("submitted")] == [True]


@pytest.mark.anyio
@pytest.mark.parametrize("form", ["tuple", "bytes", "path"])
async def test_each_file_input_form_is_uploaded_as_a_multipart_part(
    server: ServerHandle, tmp_path: Path, form: str
) -> None:
    """A file given as a tuple, bare bytes or a path reaches Mindee as the ``file`` part."""
    path = tmp_path / "receipt-sim-processed.pdf"
    path.write_bytes(PDF)
    given: Any = {
        "tuple": ("receipt-sim-processed.pdf", PDF, "application/pdf"),
        "bytes": PDF,
        "path": path,
    }[form]
    expected_name = "upload" if form == "bytes" else "receipt-sim-processed.pdf"
    async with engine_for("mindee", server, SCALE) as engine:
        job = await engine.submit(
            "mindee", "inference", model_id=MODEL_ID, file=given, alias="sim-processed"
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    assert result.state == "Processed"
    assert result.result["inference"]["file"]["name"] == expected_name


@pytest.mark.anyio
async def test_form_options_and_repeated_fields_are_encoded_as_mindee_expects(
    server: ServerHandle,
) -> None:
    """Booleans go as "true"/"false", lists as repeated fields; Mindee echoes them back."""
    async with engine_for("mindee", server, SCALE) as engine:
        job = await engine.submit(
            "mindee",
            "inference",
            model_id=MODEL_ID,
            file=("sim-processed.pdf", PDF, "application/pdf"),
            confidence=True,
            polygon=False,
            raw_text=True,
            webhook_ids=WEBHOOKS,
            text_context="an invoice",
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    options = result.result["inference"]["active_options"]
    assert (options["confidence"], options["polygon"], options["raw_text"]) == (
        True,
        False,
        True,
    )
    assert options["text_context"] is True
    assert [hook["id"] for hook in result.response["job"]["webhooks"]] == WEBHOOKS


@pytest.mark.anyio
async def test_wrong_key_refuses_the_submission_with_mindee_code(
    server: ServerHandle,
) -> None:
    """The raw key goes in Authorization: a wrong one is a 401 ``401-001`` status error."""
    async with engine_for("mindee", server, SCALE, key="not-the-key") as engine:
        with pytest.raises(RemoteError) as info:
            await engine.submit("mindee", "inference", model_id=MODEL_ID, file=PDF)

    assert (info.value.kind, info.value.status, info.value.code) == (
        "status",
        401,
        "401-001",
    )


@pytest.mark.anyio
async def test_wrong_key_on_polls_ends_the_tracked_job_with_an_error(
    server: ServerHandle,
) -> None:
    """A 401 on a poll is fatal: wait() raises RemoteError with Mindee's code."""
    async with engine_for("mindee", server, SCALE, key="not-the-key") as engine:
        job = await engine.track(
            "mindee", "inference", "0b9f0a3c-6c1e-4d0f-9a57-2f1c3e4d5a6b"
        )

        with pytest.raises(RemoteError) as info:
            await engine.wait(job, timeout=TIMEOUT)

    assert (info.value.status, info.value.code) == (401, "401-001")
    assert info.value.last_state == "Processing"


@pytest.mark.anyio
async def test_retryable_faults_on_polls_do_not_change_the_outcome() -> None:
    """429, 503 and a reset on polls are retried; the job still ends Processed."""
    faults = "429@1,503@2,reset@3,retry-after=0"
    with simulator(
        "mindee", seed=5, time_scale=SCALE, faults=parse_faults(faults)
    ) as handle:
        async with engine_for("mindee", handle, SCALE) as engine:
            log = EventLog.attach(engine)
            job = await engine.submit(
                "mindee",
                "inference",
                model_id=MODEL_ID,
                file=PDF,
                alias="sim-processed",
            )

            result = await engine.wait(job, timeout=TIMEOUT)
        async with httpx.AsyncClient(base_url=handle.url) as client:
            counts = (await client.get("/_sim/faults")).json()["counts"]

    assert result.state == "Processed"
    assert (counts["429"], counts["503"], counts["reset"]) == (1, 1, 1)
    assert log.moves(job.job_id) == [("Processing", "Processed")]


@pytest.mark.anyio
async def test_many_jobs_complete_concurrently(server: ServerHandle) -> None:
    """Jobs in flight together each reach their own triggered end."""
    aliases = ["sim-processed", "sim-failed"] * 5
    async with engine_for("mindee", server, SCALE) as engine:
        jobs = [
            await engine.submit(
                "mindee", "inference", model_id=MODEL_ID, file=PDF, alias=alias
            )
            for alias in aliases
        ]

        async with asyncio.timeout(TIMEOUT):
            results = {r.job.job_id: r async for r in engine.as_completed(jobs)}

    assert [results[j.job_id].state for j in jobs] == [
        "Processed" if alias == "sim-processed" else "Failed" for alias in aliases
    ]


def test_blocking_engine_runs_a_job_to_its_result(server: ServerHandle) -> None:
    """The blocking Engine submits and waits like its async twin."""
    with Engine(
        base_urls={"mindee": server.url},
        env={CRED_ENV["mindee"]: API_KEY},
        time_scale=SCALE,
    ) as engine:
        job = engine.submit(
            "mindee", "inference", model_id=MODEL_ID, file=PDF, alias="sim-processed"
        )

        result = engine.wait(job, timeout=TIMEOUT)

    assert result.state == "Processed"
    assert result.result["inference"]["job"]["id"] == job.job_id


@pytest.mark.anyio
async def test_links_to_a_foreign_host_are_refused_without_sending_the_key() -> None:
    """A polling_url on another host is refused (protocol error); nothing is sent there."""
    seen: list[httpx.URL] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.url)

    # The engine runs faster than usual: only its retry pacing matters here
    # (eight retries of the refused poll, 121 s unscaled).
    scale = 0.002
    with simulator(
        "mindee", seed=3, time_scale=SCALE, public_base_url="https://mindee.invalid"
    ) as handle:
        async with (
            httpx.AsyncClient(event_hooks={"request": [record]}) as client,
            engine_for("mindee", handle, scale, client=client) as engine,
        ):
            job = await engine.submit(
                "mindee",
                "inference",
                model_id=MODEL_ID,
                file=PDF,
                alias="sim-processed",
            )

            with pytest.raises(RemoteError) as info:
                await engine.wait(job, timeout=TIMEOUT)

    assert info.value.kind == "protocol"
    assert "foreign host" in str(info.value)
    assert {url.host for url in seen} == {"127.0.0.1"}
    assert [url.path for url in seen] == ["/v2/products/extraction/enqueue"]
