"""The engine against the Azure Document Translation simulator, over 127.0.0.1.

Outcomes are chosen through the source URL: ``docs=N`` documents per target
language, ``faildocs=K`` of them failing, ``sim-failed`` (every document fails,
so the batch fails) and ``sim-validation`` (the batch is refused up front).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import (
    AsyncEngine,
    InputError,
    JobFailed,
    JobRef,
    JobResult,
    RemoteError,
    WaitTimeout,
)
from engine.audit import read_records, verify_log
from engine.simulators import ServerHandle, parse_faults
from statemachines import Outcome, Spec
from tests.integration.conftest import (
    API_KEY,
    EventLog,
    engine_for,
    simulator,
    spec_variant,
)

# The batch waits 10-50 ms to start and each document runs 50-400 ms; the
# engine polls after 10 ms, then every 10 ms growing 1.5 times (cap 0.3 s).
SCALE = 0.01
TIMEOUT = 15.0
SOURCE = "https://store.blob.core.windows.net/source"
TARGET = "https://store.blob.core.windows.net/target-{lang}"
V1 = "/translator/text/batch/v1.0"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    """Serve one Azure Translator simulator, 100 times faster, for the module."""
    with simulator("azure-translator", seed=31, time_scale=SCALE) as handle:
        yield handle


@pytest.fixture
async def requests_seen() -> AsyncIterator[tuple[httpx.AsyncClient, list[httpx.URL]]]:
    """Return a client for the engine that records every URL it requests."""
    seen: list[httpx.URL] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.url)

    async with httpx.AsyncClient(
        event_hooks={"request": [record]}, follow_redirects=False
    ) as client:
        yield client, seen


def _inputs(query: str, *languages: str) -> dict[str, Any]:
    targets = [
        {"targetUrl": TARGET.format(lang=lang), "language": lang}
        for lang in languages or ("fr",)
    ]
    return {
        "inputs": [
            {
                "source": {"sourceUrl": f"{SOURCE}?{query}", "language": "en"},
                "targets": targets,
                "storageType": "Folder",
            }
        ]
    }


def _page_size(size: int) -> Any:
    def edit(document: dict[str, Any]) -> None:
        document["lifecycles"]["batch"]["items"]["paging"]["page_size"] = size

    return edit


def _v1_paths(size: int) -> Any:
    """Move every request to the v1.0 paths (no api-version; ``@nextLink``)."""

    def edit(document: dict[str, Any]) -> None:
        batch = document["lifecycles"]["batch"]
        for block, path in (
            (batch["submit"]["request"], "/batches"),
            (batch["poll"]["request"], "/batches/{job_id}"),
            (batch["cancel"]["request"], "/batches/{job_id}"),
            (batch["items"]["request"], "/batches/{job_id}/documents"),
        ):
            block["path"] = V1 + path
            block.pop("query", None)
        item = document["lifecycles"]["document"]["poll"]["request"]
        item["path"] = V1 + "/batches/{job_id}/documents/{item_id}"
        item.pop("query", None)
        batch["items"]["paging"]["page_size"] = size

    return edit


def _variant(flavour: str, size: int) -> Spec:
    if flavour == "v1.0":
        return spec_variant(
            "azure-translator", _v1_paths(size), source=f"azure-v1-{size}"
        )
    return spec_variant(
        "azure-translator", _page_size(size), source=f"azure-page-{size}"
    )


async def _documents(handle: ServerHandle, job_id: str) -> list[dict[str, Any]]:
    """List a batch's documents with plain httpx, following next links (bounded)."""
    found: list[dict[str, Any]] = []
    url: str | None = f"/translator/document/batches/{job_id}/documents"
    params: dict[str, str] | None = {"api-version": "2024-05-01"}
    async with httpx.AsyncClient(
        base_url=handle.url, headers={"Ocp-Apim-Subscription-Key": API_KEY}
    ) as client:
        for _ in range(100):
            if url is None:
                break
            body = (await client.get(url, params=params)).json()
            found.extend(body["value"])
            url, params = body.get("nextLink"), None
    return found


def _chains_are_whole(moves: Mapping[str, list[tuple[str, str]]]) -> bool:
    """Whether every item's moves start at NotStarted and follow on without gaps."""
    for chain in moves.values():
        sources = [source for source, _ in chain]
        dests = ["NotStarted", *(dest for _, dest in chain[:-1])]
        if sources != dests:
            return False
    return True


async def _run(
    engine: AsyncEngine,
    inputs: Mapping[str, Any],
    spec: Spec | str = "azure-translator",
) -> tuple[JobRef, JobResult]:
    job = await engine.submit(spec, "batch", inputs)
    return job, await engine.wait(job, timeout=TIMEOUT)


@pytest.mark.anyio
@pytest.mark.parametrize("api_version", ["2024-05-01", "2026-03-01"])
async def test_succeeded_batch_tracks_every_document_as_an_item(
    server: ServerHandle, api_version: str
) -> None:
    """A Succeeded batch reports each (document x language) with its final state."""
    async with engine_for("azure-translator", server, SCALE) as engine:
        log = EventLog.attach(engine)
        inputs = {
            **_inputs("docs=4&faildocs=0", "fr", "de"),
            "api_version": api_version,
        }

        job, result = await _run(engine, inputs)

    listed = await _documents(server, job.job_id)
    moves = log.item_moves()
    assert (result.state, result.outcome) == ("Succeeded", Outcome.SUCCESS)
    assert sorted(result.items) == sorted(d["id"] for d in listed)
    assert len(result.items) == 8
    assert set(result.items.values()) == {"Succeeded"}
    assert {item: chain[-1][1] for item, chain in moves.items()} == result.items
    assert _chains_are_whole(moves)
    assert log.moves(job.job_id)[-1] == ("Running", "Succeeded")


@pytest.mark.anyio
async def test_batch_with_failed_documents_still_succeeds(server: ServerHandle) -> None:
    """Failed documents leave the batch Succeeded; each item keeps its own outcome."""
    async with engine_for("azure-translator", server, SCALE) as engine:
        job, result = await _run(engine, _inputs("docs=6&faildocs=2"))

    assert result.state == "Succeeded"
    assert Counter(result.items.values()) == {"Succeeded": 4, "Failed": 2}
    assert result.response["summary"]["failed"] == 2
    assert job.job_id == result.response["id"]


@pytest.mark.anyio
async def test_batch_whose_documents_all_fail_is_failed(server: ServerHandle) -> None:
    """When every document fails the batch ends Failed (outcome failure) with an error."""
    async with engine_for("azure-translator", server, SCALE) as engine:
        log = EventLog.attach(engine)
        job, result = await _run(engine, _inputs("docs=3&name=sim-failed"))

    assert (result.state, result.outcome) == ("Failed", Outcome.FAILURE)
    assert "error" in result.response
    assert set(result.items.values()) == {"Failed"}
    assert log.moves(job.job_id)[-1] == ("Running", "Failed")


@pytest.mark.anyio
async def test_refused_batch_is_validation_failed(server: ServerHandle) -> None:
    """A batch refused up front goes NotStarted → ValidationFailed with its error."""
    async with engine_for("azure-translator", server, SCALE) as engine:
        log = EventLog.attach(engine)
        job, result = await _run(engine, _inputs("docs=3&name=sim-validation"))

    assert (result.state, result.outcome) == ("ValidationFailed", Outcome.FAILURE)
    assert result.response["error"]["code"]
    assert log.moves(job.job_id) == [("NotStarted", "ValidationFailed")]


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["2024-05-01", "v1.0"])
async def test_cancel_goes_through_cancelling_to_cancelled(
    server: ServerHandle, flavour: str
) -> None:
    """cancel() is accepted; the batch moves → Cancelling → Cancelled (outcome cancelled)."""
    spec = _variant(flavour, 50)
    async with engine_for("azure-translator", server, SCALE) as engine:
        log = EventLog.attach(engine)
        job = await engine.submit(spec, "batch", _inputs("docs=20"))

        accepted = await asyncio.wait_for(engine.cancel(job), TIMEOUT)
        result = await engine.wait(job, timeout=TIMEOUT)

    moves = log.moves(job.job_id)
    assert accepted is True
    assert (result.state, result.outcome) == ("Cancelled", Outcome.CANCELLED)
    assert moves[-2][0] in {"NotStarted", "Running"}
    assert moves[-2:] == [(moves[-2][0], "Cancelling"), ("Cancelling", "Cancelled")]
    assert "Cancelled" in result.items.values()
    with pytest.raises(JobFailed) as info:
        result.raise_for_outcome()
    assert info.value.outcome == "cancelled"


@pytest.mark.anyio
async def test_cancel_of_a_finished_batch_returns_false(server: ServerHandle) -> None:
    """A batch the engine saw end cannot be cancelled: cancel() returns False."""
    async with engine_for("azure-translator", server, SCALE) as engine:
        job, result = await _run(engine, _inputs("docs=1&faildocs=0"))

        accepted = await asyncio.wait_for(engine.cancel(job), TIMEOUT)

    assert result.state == "Succeeded"
    assert accepted is False


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("api_version", "refusal"), [("2024-05-01", 400), ("2026-03-01", 409)]
)
async def test_cancel_refused_by_the_service_returns_false(
    server: ServerHandle,
    requests_seen: tuple[httpx.AsyncClient, list[httpx.URL]],
    api_version: str,
    refusal: int,
) -> None:
    """A DELETE the service refuses (already finished: 400 or 409) makes cancel() False."""
    client, _ = requests_seen
    async with engine_for("azure-translator", server, SCALE) as engine:
        done, _ = await _run(
            engine, {**_inputs("docs=1&faildocs=0"), "api_version": api_version}
        )
    statuses: list[int] = []

    async def note(response: httpx.Response) -> None:
        if response.request.method == "DELETE":
            statuses.append(response.status_code)

    client.event_hooks["response"] = [note]
    async with engine_for("azure-translator", server, SCALE, client=client) as engine:
        # Adopted as if still Running: only the service knows it has ended.
        job = await engine.track(
            "azure-translator",
            "batch",
            done.job_id,
            api_version=api_version,
            state="Running",
        )

        accepted = await asyncio.wait_for(engine.cancel(job), TIMEOUT)
        result = await engine.wait(job, timeout=TIMEOUT)

    assert accepted is False
    assert statuses == [refusal]
    assert result.state == "Succeeded"


@pytest.mark.anyio
async def test_cancel_while_a_poll_is_in_flight_still_completes(
    server: ServerHandle,
) -> None:
    """A cancel() that lands while a poll is on the wire is sent once that poll returns."""
    async with engine_for("azure-translator", server, SCALE) as engine:
        job = await engine.submit("azure-translator", "batch", _inputs("docs=20"))
        asked: list[asyncio.Task[bool]] = []

        async def cancel_mid_poll(_event: object) -> None:
            # Runs inside the poll's own step, before the engine schedules the
            # next one: exactly the window in which a user's cancel() can land.
            if not asked:
                asked.append(asyncio.get_running_loop().create_task(engine.cancel(job)))
                await asyncio.sleep(0)

        engine.on("polled", cancel_mid_poll)

        result = await engine.wait(job, timeout=5.0)
        accepted = await asyncio.wait_for(asked[0], TIMEOUT)

    assert accepted is True
    assert result.state == "Cancelled"


@pytest.mark.anyio
@pytest.mark.parametrize("flavour", ["2024-05-01", "v1.0"])
@pytest.mark.parametrize("size", [2, 3])
async def test_small_pages_track_every_document_exactly_once(
    server: ServerHandle,
    requests_seen: tuple[httpx.AsyncClient, list[httpx.URL]],
    flavour: str,
    size: int,
) -> None:
    """With pages of 2 or 3, next links (nextLink / @nextLink) reach all 23 documents once."""
    client, seen = requests_seen
    spec = _variant(flavour, size)
    async with engine_for("azure-translator", server, SCALE, client=client) as engine:
        log = EventLog.attach(engine)

        job, result = await _run(engine, _inputs("docs=23&faildocs=0"), spec)

    listed = await _documents(server, job.job_id)
    pages = [u for u in seen if u.path.endswith("/documents")]
    first_pages = [u for u in pages if "skip" not in str(u.params)]
    moves = log.item_moves()
    assert result.state == "Succeeded"
    assert sorted(result.items) == sorted(d["id"] for d in listed)
    assert len(result.items) == 23
    assert all(Counter(chain).most_common(1)[0][1] == 1 for chain in moves.values())
    assert _chains_are_whole(moves)
    # Every listing walked ceil(23 / size) pages: the first, then next links.
    assert len(pages) == len(first_pages) * -(-23 // size)
    assert all(
        u.path.startswith(V1 if flavour == "v1.0" else "/translator/document/")
        for u in pages
    )


@pytest.mark.anyio
async def test_item_filters_restrict_the_tracked_documents(
    server: ServerHandle,
) -> None:
    """``item_filters={"statuses": ["Failed"]}`` tracks only the failed documents."""
    async with engine_for("azure-translator", server, SCALE) as engine:
        job = await engine.submit(
            "azure-translator",
            "batch",
            _inputs("docs=6&faildocs=2"),
            item_filters={"statuses": ["Failed"]},
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    listed = await _documents(server, job.job_id)
    failed = sorted(d["id"] for d in listed if d["status"] == "Failed")
    assert result.state == "Succeeded"
    assert sorted(result.items) == failed
    assert len(failed) == 2
    assert set(result.items.values()) == {"Failed"}


@pytest.mark.anyio
async def test_cancel_after_the_batch_reached_its_end_returns_false(
    server: ServerHandle,
) -> None:
    """cancel() of a batch already in a terminal state returns False, items pending or not."""
    async with engine_for("azure-translator", server, SCALE) as engine:
        job = await engine.submit(
            "azure-translator", "batch", _inputs("docs=3&faildocs=0")
        )
        asked: list[asyncio.Task[bool]] = []

        def cancel_on_success(_event: object) -> None:
            # The batch is Succeeded but its documents are still being listed:
            # the job has ended on the service, so there is nothing to cancel.
            asked.append(asyncio.get_running_loop().create_task(engine.cancel(job)))

        engine.on("entered", cancel_on_success, state="Succeeded")

        result = await engine.wait(job, timeout=TIMEOUT)
        accepted = await asyncio.wait_for(asked[0], TIMEOUT)

    assert result.state == "Succeeded"
    assert accepted is False


@pytest.mark.anyio
async def test_forget_after_a_wait_timeout_stops_polling_the_batch(
    server: ServerHandle,
    requests_seen: tuple[httpx.AsyncClient, list[httpx.URL]],
) -> None:
    """wait(timeout=) leaves the batch running; forget() ends it and no request follows."""
    client, seen = requests_seen
    async with engine_for("azure-translator", server, SCALE, client=client) as engine:
        job = await engine.submit("azure-translator", "batch", _inputs("docs=20"))
        with pytest.raises(WaitTimeout) as info:
            await engine.wait(job, timeout=0.05)
        await engine.forget(job)
        sent = len(seen)

        await asyncio.sleep(0.3)  # many poll intervals at this scale

    assert info.value.state in {"NotStarted", "Running"}
    assert len(seen) == sent


@pytest.mark.anyio
async def test_wrong_key_is_refused_with_the_azure_error_code(
    server: ServerHandle,
) -> None:
    """The key goes in Ocp-Apim-Subscription-Key: a wrong one is a 401 status error."""
    async with engine_for("azure-translator", server, SCALE, key="wrong") as engine:
        with pytest.raises(RemoteError) as info:
            await engine.submit("azure-translator", "batch", _inputs("docs=1"))

    assert (info.value.kind, info.value.status, info.value.code) == (
        "status",
        401,
        "401",
    )
    assert info.value.remote_message is not None
    assert info.value.remote_message.startswith("Access denied")


@pytest.mark.anyio
async def test_unsupported_api_version_reports_the_inner_error_code(
    server: ServerHandle,
) -> None:
    """A 400 submit answer names the innerError code (the spec's first code pointer)."""
    async with engine_for("azure-translator", server, SCALE) as engine:
        with pytest.raises(RemoteError) as info:
            await engine.submit(
                "azure-translator",
                "batch",
                {**_inputs("docs=1"), "api_version": "2023-01-01"},
            )

    assert (info.value.status, info.value.code) == (400, "InvalidApiVersion")


@pytest.mark.anyio
async def test_faults_while_paging_still_track_every_document_once() -> None:
    """503s and a reset in the middle of the document pages are retried; no item is lost."""
    faults = parse_faults("503@4+9+15,reset@12,retry-after=0")
    with simulator(
        "azure-translator", seed=32, time_scale=SCALE, faults=faults
    ) as handle:
        async with engine_for("azure-translator", handle, SCALE) as engine:
            log = EventLog.attach(engine)

            job, result = await _run(
                engine, _inputs("docs=11&faildocs=0"), _variant("2024-05-01", 3)
            )
        async with httpx.AsyncClient(base_url=handle.url) as client:
            counts = (await client.get("/_sim/faults")).json()["counts"]
        listed = await _documents(handle, job.job_id)

    moves = log.item_moves()
    assert result.state == "Succeeded"
    assert (counts["503"], counts["reset"]) == (3, 1)
    assert sorted(result.items) == sorted(d["id"] for d in listed)
    assert set(result.items.values()) == {"Succeeded"}
    assert all(Counter(chain).most_common(1)[0][1] == 1 for chain in moves.values())


@pytest.mark.anyio
async def test_unknown_item_filter_is_refused_before_submitting(
    server: ServerHandle,
    requests_seen: tuple[httpx.AsyncClient, list[httpx.URL]],
) -> None:
    """A misspelt item filter is an InputError, raised before any batch is created."""
    client, seen = requests_seen
    async with engine_for("azure-translator", server, SCALE, client=client) as engine:
        with pytest.raises(InputError) as info:
            await engine.submit(
                "azure-translator",
                "batch",
                _inputs("docs=2"),
                item_filters={"status": ["Failed"]},
            )

    assert "statuses" in str(info.value)
    assert seen == []


@pytest.mark.anyio
async def test_audit_log_of_cancelled_and_paged_batches_verifies(
    server: ServerHandle, tmp_path: Path
) -> None:
    """Item transitions, cancels and a spec variant's records pass verify."""
    path = tmp_path / "audit.jsonl"
    paged = _variant("2024-05-01", 2)
    async with engine_for("azure-translator", server, SCALE, audit=path) as engine:
        cancelled = await engine.submit("azure-translator", "batch", _inputs("docs=8"))
        accepted = await asyncio.wait_for(engine.cancel(cancelled), TIMEOUT)
        _, paged_result = await _run(engine, _inputs("docs=5&faildocs=1"), paged)
        cancelled_result = await engine.wait(cancelled, timeout=TIMEOUT)

    kinds = Counter(record["kind"] for record in read_records(path))
    assert accepted is True
    assert (cancelled_result.state, paged_result.state) == ("Cancelled", "Succeeded")
    assert verify_log(path, specs=[paged]) == []
    assert kinds["item_transition"] >= 5 * 2
    assert kinds["completed"] == 2
