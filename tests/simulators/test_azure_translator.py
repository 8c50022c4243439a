"""The Azure Document Translation simulator, spoken to with plain httpx over loopback."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from engine.simulators._base import Faults, ServerHandle, parse_faults, serving
from engine.simulators.azure_translator import create_app
from tests.simulators.conftest import FakeClock

KEY = "test-key"
SOURCE = "https://store.blob.core.windows.net/source"
TARGET = "https://store.blob.core.windows.net/target-{lang}"
NEW = "/translator/document"
V1 = "/translator/text/batch/v1.0"
FLAVOURS = ("2024-05-01", "2026-03-01", "v1.0", "v1.1")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
# Past every duration at time_scale 1: NotStarted <= 5 s, each document <= 40 s.
ALL_DONE = 46.0

BATCH_KEYS = {"id", "createdDateTimeUtc", "lastActionDateTimeUtc", "status", "summary"}
SUMMARY_KEYS = {
    "total",
    "failed",
    "success",
    "inProgress",
    "notYetStarted",
    "cancelled",
    "totalCharacterCharged",
}
DOCUMENT_KEYS = {
    "id",
    "sourcePath",
    "createdDateTimeUtc",
    "lastActionDateTimeUtc",
    "status",
    "to",
    "progress",
    "characterCharged",
}
ERROR_KEYS = {"code", "message", "target", "innerError"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z")
UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
)
DENIED = "Access denied due to invalid subscription key or wrong API endpoint."
MISSING = "Access denied due to missing subscription key."


class Sim:
    """A served simulator, its fake clock and a client sending the right key."""

    def __init__(self, handle: ServerHandle, clock: FakeClock, client: httpx.Client):
        """Bundle the parts of one running simulator."""
        self.handle = handle
        self.clock = clock
        self.client = client

    def submit(self, body: dict[str, Any], flavour: str = "2024-05-01") -> str:
        """POST a batch, assert the 202, and return the batch id."""
        url, params = route(flavour, "/batches")
        response = self.client.post(url, params=params, json=body)
        assert response.status_code == 202, response.text
        return (
            response.headers["Operation-Location"].split("/batches/")[1].split("?")[0]
        )

    def get(self, flavour: str, rest: str, **query: str | int) -> httpx.Response:
        """GET ``rest`` under the flavour's prefix with its api-version."""
        url, params = route(flavour, rest)
        return self.client.get(url, params={**params, **query})

    def batch(self, batch_id: str, flavour: str = "2024-05-01") -> dict[str, Any]:
        """Return the batch status, asserting a 200."""
        response = self.get(flavour, f"/batches/{batch_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def documents(self, batch_id: str) -> list[dict[str, Any]]:
        """Return every document of a batch, following next links."""
        url, params = route("2024-05-01", f"/batches/{batch_id}/documents")
        pages = walk(self.client, url, params, "nextLink")
        return [d for page in pages for d in page["value"]]

    def batch_count(self) -> int:
        """Return how many batches GET /batches lists, following next links."""
        url, params = route("2024-05-01", "/batches")
        return sum(len(p["value"]) for p in walk(self.client, url, params, "nextLink"))

    def cancel(self, batch_id: str, flavour: str = "2024-05-01") -> httpx.Response:
        """DELETE the batch."""
        url, params = route(flavour, f"/batches/{batch_id}")
        return self.client.delete(url, params=params)

    def fault_counts(self) -> dict[str, int]:
        """Return how often each fault fired, as GET /_sim/faults reports it."""
        counts: dict[str, int] = self.client.get("/_sim/faults").json()["counts"]
        return counts


def route(flavour: str, rest: str) -> tuple[str, dict[str, str]]:
    """Return the path and query of ``rest`` in an API flavour."""
    if flavour.startswith("v1"):
        return f"/translator/text/batch/{flavour}{rest}", {}
    return f"{NEW}{rest}", {"api-version": flavour}


def batch_body(
    query: str = "docs=3&faildocs=0",
    *languages: str,
    source: str = SOURCE,
    **entry: Any,
) -> dict[str, Any]:
    """Build a POST body with one input whose source URL carries ``query``."""
    targets = [
        {"targetUrl": TARGET.format(lang=lang), "language": lang}
        for lang in languages or ("fr",)
    ]
    item = {
        "source": {"sourceUrl": f"{source}?{query}", "language": "en"},
        "targets": targets,
        "storageType": "Folder",
        **entry,
    }
    return {"inputs": [item]}


def assert_summary_matches(batch: dict[str, Any], docs: list[dict[str, Any]]) -> None:
    """Assert the batch summary counts exactly the listed documents' states."""
    states = Counter(d["status"] for d in docs)
    assert batch["summary"] == {
        "total": len(docs),
        "failed": states["Failed"],
        "success": states["Succeeded"],
        "inProgress": states["Running"] + states["Cancelling"],
        "notYetStarted": states["NotStarted"],
        "cancelled": states["Cancelled"],
        "totalCharacterCharged": sum(d["characterCharged"] for d in docs),
    }


def walk(
    client: httpx.Client, url: str, params: dict[str, str] | None, field: str
) -> list[dict[str, Any]]:
    """Follow next links from ``url`` to the end (bounded) and return every page."""
    pages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    for _ in range(200):
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        pages.append(page)
        if field not in page:
            return pages
        assert time.monotonic() < deadline
        url, params = page[field], None
    pytest.fail("next links never ended")


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an Azure error answer (status, header, keys) and return its error."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == ERROR_KEYS
    assert set(error["innerError"]) == {"code", "message"}
    assert response.headers["x-ms-error-code"] == error["code"]
    return error


@pytest.fixture
def start() -> Iterator[Callable[..., Sim]]:
    """Return a factory of served simulators (fake clock), closed after the test."""
    with contextlib.ExitStack() as stack:

        def make(
            *,
            seed: int = 7,
            time_scale: float = 1.0,
            faults: Faults | None = None,
            public_base_url: str | None = None,
        ) -> Sim:
            clock = FakeClock()
            app = create_app(
                seed=seed,
                time_scale=time_scale,
                api_key=KEY,
                faults=faults,
                clock=clock,
                public_base_url=public_base_url,
            )
            handle = stack.enter_context(serving(app))
            client = stack.enter_context(
                httpx.Client(
                    base_url=handle.url, headers={"Ocp-Apim-Subscription-Key": KEY}
                )
            )
            return Sim(handle, clock, client)

        yield make


@pytest.fixture(scope="module")
def shared() -> Iterator[Sim]:
    """One simulator for the module: a fake clock that tests only move forward."""
    clock = FakeClock()
    with (
        serving(create_app(seed=7, api_key=KEY, clock=clock)) as handle,
        httpx.Client(
            base_url=handle.url, headers={"Ocp-Apim-Subscription-Key": KEY}
        ) as client,
    ):
        yield Sim(handle, clock, client)


@pytest.fixture
def sim(shared: Sim) -> Sim:
    """The shared simulator (time_scale 1); each test works on its own batches."""
    return shared


# -- submit and the happy path ----------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_submit_answers_202_with_empty_body_and_absolute_operation_location(
    sim: Sim, flavour: str
) -> None:
    """POST /batches is 202, empty, Operation-Location = base + prefix + /batches/{id}."""
    url, params = route(flavour, "/batches")

    response = sim.client.post(url, params=params, json=batch_body())

    location = response.headers["Operation-Location"]
    batch_id = location.split("/batches/")[1].split("?")[0]
    prefix, query = route(flavour, f"/batches/{batch_id}")
    expected = f"{sim.handle.url}{prefix}"
    if query:
        expected += f"?api-version={flavour}"
    assert response.status_code == 202
    assert response.content == b""
    assert UUID.fullmatch(batch_id)
    assert location == expected


def test_public_base_url_is_used_for_operation_location_and_next_links(
    start: Callable[..., Sim],
) -> None:
    """With public_base_url, every absolute URL points there, not at the socket."""
    sim = start(public_base_url="https://proxy.example.net/")
    response = sim.client.post(
        f"{NEW}/batches", params={"api-version": "2026-03-01"}, json=batch_body()
    )
    batch_id = sim.submit(batch_body())

    page = sim.get("2026-03-01", f"/batches/{batch_id}/documents", maxpagesize=1)

    assert response.headers["Operation-Location"].startswith(
        "https://proxy.example.net/translator/document/batches/"
    )
    assert page.json()["nextLink"].startswith(
        f"https://proxy.example.net/translator/document/batches/{batch_id}/documents?"
    )


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_batch_goes_not_started_running_succeeded_with_consistent_summary(
    sim: Sim, flavour: str
) -> None:
    """A batch is NotStarted, Running, then Succeeded; its summary tracks documents."""
    batch_id = sim.submit(batch_body("docs=4&faildocs=0", "fr", "de"), flavour)
    seen: list[str] = []

    for _ in range(60):
        batch = sim.batch(batch_id, flavour)
        assert_summary_matches(batch, sim.documents(batch_id))
        if not seen or seen[-1] != batch["status"]:
            seen.append(batch["status"])
        sim.clock.advance(1.0)

    assert seen == ["NotStarted", "Running", "Succeeded"]
    assert batch["summary"]["success"] == batch["summary"]["total"] == 8


def test_batch_reaches_succeeded_on_the_real_clock() -> None:
    """With the default monotonic clock and a tiny scale the batch ends by itself."""
    with (
        serving(create_app(seed=3, time_scale=0.002, api_key=KEY)) as handle,
        httpx.Client(
            base_url=handle.url, headers={"Ocp-Apim-Subscription-Key": KEY}
        ) as client,
    ):
        sim = Sim(handle, FakeClock(), client)
        batch_id = sim.submit(batch_body("docs=3&faildocs=0"))
        deadline = time.monotonic() + 5
        states = []
        for _ in range(2000):
            states.append(sim.batch(batch_id)["status"])
            if states[-1] == "Succeeded" or time.monotonic() > deadline:
                break
            time.sleep(0.002)

    assert states[-1] == "Succeeded"
    assert set(states) <= {"NotStarted", "Running", "Succeeded"}


def test_batch_status_has_exactly_the_documented_keys(sim: Sim) -> None:
    """Batch status: id, two 7-digit UTC timestamps, status, a 7-key summary."""
    batch_id = sim.submit(batch_body("docs=2&faildocs=0"))

    batch = sim.batch(batch_id)

    assert set(batch) == BATCH_KEYS
    assert set(batch["summary"]) == SUMMARY_KEYS
    assert batch["id"] == batch_id
    assert TIMESTAMP.fullmatch(batch["createdDateTimeUtc"])
    assert TIMESTAMP.fullmatch(batch["lastActionDateTimeUtc"])
    assert batch["summary"]["notYetStarted"] == 2


def test_document_keys_follow_its_state(sim: Sim) -> None:
    """Documents gain path only once Succeeded and error (with innerError) when Failed."""
    batch_id = sim.submit(batch_body("docs=4&faildocs=2"))
    before = sim.documents(batch_id)
    sim.clock.advance(ALL_DONE)

    after = {d["sourcePath"]: d for d in sim.documents(batch_id)}

    assert all(set(d) == DOCUMENT_KEYS for d in before)
    failed = after[f"{SOURCE}/doc-000.docx"]
    succeeded = after[f"{SOURCE}/doc-003.docx"]
    assert set(failed) == {*DOCUMENT_KEYS, "error"}
    assert failed["error"] == {
        "code": "InvalidRequest",
        "message": "Document is corrupted",
        "target": "Document",
        "innerError": {
            "code": "CorruptedDocument",
            "message": "The document could not be opened.",
        },
    }
    assert (failed["progress"], failed["characterCharged"]) == (0, 0)
    assert set(succeeded) == {*DOCUMENT_KEYS, "path"}
    assert succeeded["path"] == f"{TARGET.format(lang='fr')}/doc-003.docx"
    assert succeeded["progress"] == 1
    assert succeeded["characterCharged"] > 0


def test_single_document_reads_like_a_list_item(sim: Sim) -> None:
    """GET …/documents/{id} returns the same object as the list shows."""
    batch_id = sim.submit(batch_body("docs=2"))
    listed = sim.documents(batch_id)[0]

    response = sim.get("2024-05-01", f"/batches/{batch_id}/documents/{listed['id']}")

    assert response.status_code == 200
    assert response.json() == listed


def test_progress_grows_while_a_document_runs(sim: Sim) -> None:
    """A document's progress is 0 before its run, grows during it, and is 1 at the end."""
    batch_id = sim.submit(batch_body("docs=1&faildocs=0"))
    samples: list[tuple[str, float]] = []

    for _ in range(100):
        doc = sim.documents(batch_id)[0]
        samples.append((doc["status"], doc["progress"]))
        sim.clock.advance(0.5)

    running = [p for s, p in samples if s == "Running"]
    assert {p for s, p in samples if s == "NotStarted"} == {0}
    assert running == sorted(set(running))
    assert all(0 <= p < 1 for p in running)
    assert len(running) >= 8
    assert samples[-1] == ("Succeeded", 1)


def test_last_action_time_moves_with_state_changes(sim: Sim) -> None:
    """The last-action time starts at creation and moves forward as states change."""
    batch_id = sim.submit(batch_body("docs=2"))
    first = sim.batch(batch_id)
    sim.clock.advance(ALL_DONE)

    last = sim.batch(batch_id)

    assert first["lastActionDateTimeUtc"] == first["createdDateTimeUtc"]
    assert last["lastActionDateTimeUtc"] > first["lastActionDateTimeUtc"]


# -- triggers -----------------------------------------------------------------------


def test_docs_trigger_makes_one_document_per_source_and_language(sim: Sim) -> None:
    """docs=N gives N source documents doc-000… each translated to every language."""
    batch_id = sim.submit(batch_body("docs=4&faildocs=0", "fr", "de"))
    sim.clock.advance(ALL_DONE)

    docs = sim.documents(batch_id)

    pairs = sorted((d["sourcePath"], d["to"]) for d in docs)
    sources = [f"{SOURCE}/doc-{n:03d}.docx" for n in range(4)]
    assert pairs == sorted((s, lang) for s in sources for lang in ("fr", "de"))
    assert {d["path"] for d in docs if d["to"] == "de"} == {
        f"{TARGET.format(lang='de')}/doc-{n:03d}.docx" for n in range(4)
    }


def test_default_document_count_is_seeded_between_3_and_10(sim: Sim) -> None:
    """Without docs= the count is drawn from 3-10 by the seed."""
    counts = [
        len(sim.documents(sim.submit(batch_body("faildocs=0")))) for _ in range(8)
    ]

    assert all(3 <= c <= 10 for c in counts)
    assert len(set(counts)) > 1


def test_faildocs_fails_the_first_k_source_documents_in_every_language(
    sim: Sim,
) -> None:
    """faildocs=K: doc-000…doc-(K-1) fail for every language; the batch Succeeds."""
    batch_id = sim.submit(batch_body("docs=5&faildocs=2", "fr", "de"))
    sim.clock.advance(ALL_DONE)

    batch, docs = sim.batch(batch_id), sim.documents(batch_id)

    failed = sorted((d["sourcePath"], d["to"]) for d in docs if d["status"] == "Failed")
    assert failed == sorted(
        (f"{SOURCE}/doc-{n:03d}.docx", lang) for n in (0, 1) for lang in ("fr", "de")
    )
    assert batch["status"] == "Succeeded"
    assert "error" not in batch
    assert (batch["summary"]["failed"], batch["summary"]["success"]) == (4, 6)


def test_sim_failed_fails_every_document_and_the_batch(sim: Sim) -> None:
    """A source URL containing sim-failed ends Failed with an error object."""
    batch_id = sim.submit(batch_body("docs=3", source=f"{SOURCE}/sim-failed"))
    sim.clock.advance(ALL_DONE)

    batch, docs = sim.batch(batch_id), sim.documents(batch_id)

    assert batch["status"] == "Failed"
    assert set(batch) == {*BATCH_KEYS, "error"}
    assert set(batch["error"]) == ERROR_KEYS
    assert {d["status"] for d in docs} == {"Failed"}
    assert batch["summary"]["failed"] == 3


@pytest.mark.parametrize(
    ("query", "source", "inner"),
    [
        ("docs=3", f"{SOURCE}/sim-validation", "InvalidDocumentAccessLevel"),
        ("docs=0", SOURCE, "NoTranslatableText"),
    ],
)
def test_validation_trigger_ends_validation_failed_right_after_not_started(
    sim: Sim, query: str, source: str, inner: str
) -> None:
    """sim-validation or docs=0: NotStarted, then ValidationFailed with no documents."""
    batch_id = sim.submit(batch_body(query, source=source))
    first = sim.batch(batch_id)
    sim.clock.advance(5.01)

    batch = sim.batch(batch_id)

    assert first["status"] == "NotStarted"
    assert batch["status"] == "ValidationFailed"
    assert set(batch["error"]) == ERROR_KEYS
    assert batch["error"]["innerError"]["code"] == inner
    assert batch["summary"]["total"] == 0
    assert sim.documents(batch_id) == []


def test_without_faildocs_outcomes_are_a_seeded_mostly_successful_mix(
    sim: Sim,
) -> None:
    """No faildocs=: a few documents fail (about 5 %), the rest succeed."""
    batch_id = sim.submit(batch_body("docs=200"))
    sim.clock.advance(ALL_DONE)

    batch = sim.batch(batch_id)

    assert batch["status"] == "Succeeded"
    assert 0 < batch["summary"]["failed"] < 30
    assert batch["summary"]["failed"] + batch["summary"]["success"] == 200


def test_same_seed_and_requests_give_the_same_batches(
    start: Callable[..., Sim],
) -> None:
    """Ids, durations and outcomes depend only on the seed and the requests."""
    runs = []
    for seed in (11, 11, 12):
        sim = start(seed=seed)
        batch_id = sim.submit(batch_body("docs=30", "fr", "es"))
        sim.clock.advance(20)
        runs.append((batch_id, sim.documents(batch_id)))

    def outcome(run: tuple[str, list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
        return sorted(
            (d["id"], d["status"], d["progress"], d["characterCharged"]) for d in run[1]
        )

    assert runs[0][0] == runs[1][0] != runs[2][0]
    assert outcome(runs[0]) == outcome(runs[1]) != outcome(runs[2])


def test_file_storage_type_translates_one_document_to_the_target_url(
    sim: Sim,
) -> None:
    """With storageType File the source URL is the document; each targetUrl its copy."""
    body = {
        "inputs": [
            {
                "source": {
                    "sourceUrl": f"{SOURCE}/report.docx?sv=2024&faildocs=0&sig=secret"
                },
                "targets": [
                    {
                        "targetUrl": f"{TARGET.format(lang='fr')}/report.fr.docx?sig=x",
                        "language": "fr",
                    }
                ],
                "storageType": "File",
            }
        ]
    }
    batch_id = sim.submit(body)
    sim.clock.advance(ALL_DONE)

    docs = sim.documents(batch_id)

    assert [(d["sourcePath"], d["path"]) for d in docs] == [
        (f"{SOURCE}/report.docx", f"{TARGET.format(lang='fr')}/report.fr.docx")
    ]


def test_filter_prefix_and_suffix_shape_the_document_names(sim: Sim) -> None:
    """source.filter.prefix goes before each name; suffix replaces .docx."""
    body = batch_body("docs=2&faildocs=0")
    body["inputs"][0]["source"]["filter"] = {"prefix": "2026/legal-", "suffix": ".pdf"}
    batch_id = sim.submit(body)
    sim.clock.advance(ALL_DONE)

    docs = sim.documents(batch_id)

    target = TARGET.format(lang="fr")
    assert sorted((d["sourcePath"], d["path"]) for d in docs) == [
        (f"{SOURCE}/2026/legal-doc-{n:03d}.pdf", f"{target}/2026/legal-doc-{n:03d}.pdf")
        for n in range(2)
    ]


def test_each_input_brings_its_own_documents_and_triggers(sim: Sim) -> None:
    """Inputs add up; a sim-failed input fails only its own documents."""
    healthy = batch_body("docs=2&faildocs=0")["inputs"][0]
    broken = batch_body("docs=3", "de", source=f"{SOURCE}/sim-failed")["inputs"][0]
    batch_id = sim.submit({"inputs": [healthy, broken]})
    sim.clock.advance(ALL_DONE)

    batch, docs = sim.batch(batch_id), sim.documents(batch_id)

    assert Counter((d["to"], d["status"]) for d in docs) == {
        ("fr", "Succeeded"): 2,
        ("de", "Failed"): 3,
    }
    assert batch["status"] == "Succeeded"


def test_one_refused_input_refuses_the_whole_batch(sim: Sim) -> None:
    """A sim-validation input makes the whole batch ValidationFailed."""
    healthy = batch_body("docs=2")["inputs"][0]
    refused = batch_body(source=f"{SOURCE}/sim-validation")["inputs"][0]
    batch_id = sim.submit({"inputs": [healthy, refused]})
    sim.clock.advance(ALL_DONE)

    batch = sim.batch(batch_id)

    assert batch["status"] == "ValidationFailed"
    assert batch["summary"]["total"] == 0


def test_a_batch_is_readable_through_every_flavour(sim: Sim) -> None:
    """Batches live in one store: one created on v1.0 reads the same on 2026-03-01."""
    batch_id = sim.submit(batch_body(), "v1.0")

    bodies = [sim.batch(batch_id, flavour) for flavour in FLAVOURS]

    assert all(body == bodies[0] for body in bodies)


# -- headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rest",
    ["/batches/{id}", "/batches/{id}/documents", "/batches/{id}/documents/{doc}"],
)
def test_status_gets_send_retry_after_until_the_batch_ends(sim: Sim, rest: str) -> None:
    """Retry-After: 1 (time_scale 1) while the batch runs, absent once terminal."""
    batch_id = sim.submit(batch_body("docs=2"))
    path = rest.format(id=batch_id, doc=sim.documents(batch_id)[0]["id"])
    running = sim.get("2024-05-01", path)
    sim.clock.advance(ALL_DONE)

    ended = sim.get("2024-05-01", path)

    assert running.headers["Retry-After"] == "1"
    assert "Retry-After" not in ended.headers


def test_retry_after_is_rounded_down_to_zero_under_small_scales(
    start: Callable[..., Sim],
) -> None:
    """Retry-After is round(1 * time_scale) whole seconds: 0 at time_scale 0.01."""
    sim = start(time_scale=0.01)
    batch_id = sim.submit(batch_body())

    response = sim.get("2024-05-01", f"/batches/{batch_id}")

    assert response.headers["Retry-After"] == "0"


def test_etag_is_a_hash_of_the_body_that_changes_with_it(sim: Sim) -> None:
    """ETag is stable while the body is, and changes when the status does."""
    batch_id = sim.submit(batch_body())
    first = sim.get("2024-05-01", f"/batches/{batch_id}")
    again = sim.get("2024-05-01", f"/batches/{batch_id}")
    sim.clock.advance(ALL_DONE)

    later = sim.get("2024-05-01", f"/batches/{batch_id}")

    digest = hashlib.sha256(first.content).hexdigest()[:32]
    assert first.headers["ETag"] == again.headers["ETag"] == f'"{digest}"'
    assert later.headers["ETag"] != first.headers["ETag"]


def test_every_answer_carries_request_ids_and_json_content_type(sim: Sim) -> None:
    """apim-request-id and X-RequestId on 202, 200, 400, 401, 404 and 405 answers."""
    batch_id = sim.submit(batch_body())
    responses = [
        sim.client.post(
            f"{NEW}/batches", params={"api-version": "2024-05-01"}, json=batch_body()
        ),
        sim.get("2024-05-01", f"/batches/{batch_id}"),
        sim.get("2024-05-01", "/batches", top=-1),
        sim.client.get(f"{V1}/batches", headers={"Ocp-Apim-Subscription-Key": "no"}),
        sim.get("v1.0", f"/batches/{UNKNOWN_ID}"),
        sim.client.put(f"{V1}/batches/{batch_id}"),
    ]

    assert [r.status_code for r in responses] == [202, 200, 400, 401, 404, 405]
    assert all(UUID.fullmatch(r.headers["apim-request-id"]) for r in responses)
    assert all(r.headers["X-RequestId"] for r in responses)
    assert all(
        r.headers["Content-Type"] == "application/json; charset=utf-8"
        for r in responses[1:]
    )


# -- auth and errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, MISSING), ({"Ocp-Apim-Subscription-Key": "wrong"}, DENIED)],
)
@pytest.mark.parametrize("path", [f"{V1}/batches", f"{NEW}/batches", "/nowhere"])
def test_missing_or_wrong_key_is_401_in_the_gateway_shape(
    sim: Sim, headers: dict[str, str], message: str, path: str
) -> None:
    """Without the exact key every path is 401 {"error": {"code": "401", message}}."""
    with httpx.Client(base_url=sim.handle.url, headers=headers) as client:
        response = client.get(path, params={"api-version": "2024-05-01"})

    body = response.json()
    assert response.status_code == 401
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "401"
    assert body["error"]["message"].startswith(message)
    assert response.headers["x-ms-error-code"] == "401"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([], "request body"),
        ({}, "inputs"),
        ({"inputs": []}, "inputs"),
        (
            {"inputs": [{"targets": [{"targetUrl": TARGET, "language": "fr"}]}]},
            "inputs[0].source",
        ),
        (
            {
                "inputs": [
                    {
                        "source": {"sourceUrl": "http://x/y"},
                        "targets": [{"targetUrl": TARGET, "language": "fr"}],
                    }
                ]
            },
            "sourceUrl must be an absolute https URL",
        ),
        ({"inputs": [{"source": {"sourceUrl": SOURCE}}]}, "inputs[0].targets"),
        (
            {"inputs": [{"source": {"sourceUrl": SOURCE}, "targets": []}]},
            "inputs[0].targets",
        ),
        (
            {
                "inputs": [
                    {
                        "source": {"sourceUrl": SOURCE},
                        "targets": [{"targetUrl": "ftp://t", "language": "fr"}],
                    }
                ]
            },
            "targets[0].targetUrl",
        ),
        (
            {
                "inputs": [
                    {
                        "source": {"sourceUrl": SOURCE},
                        "targets": [{"targetUrl": TARGET}],
                    }
                ]
            },
            "targets[0].language",
        ),
        (
            {
                "inputs": [
                    {
                        "source": {"sourceUrl": SOURCE},
                        "storageType": "Disk",
                        "targets": [{"targetUrl": TARGET, "language": "fr"}],
                    }
                ]
            },
            "storageType",
        ),
        (
            {
                "inputs": [
                    {
                        "source": {"sourceUrl": SOURCE, "filter": "x"},
                        "targets": [{"targetUrl": TARGET, "language": "fr"}],
                    }
                ]
            },
            "filter",
        ),
        (
            {
                "inputs": [
                    {
                        "source": {"sourceUrl": SOURCE},
                        "targets": [
                            {
                                "targetUrl": TARGET,
                                "language": "fr",
                                "glossaries": [{"glossaryUrl": "http://g"}],
                            }
                        ],
                    }
                ]
            },
            "glossaryUrl",
        ),
        (batch_body("docs=1001"), "docs must be an integer"),
        (batch_body("docs=two"), "docs must be an integer"),
        (batch_body("faildocs=-1"), "faildocs must be an integer"),
        ({**batch_body(), "options": []}, "options"),
    ],
)
def test_invalid_body_is_400_invalid_request(
    sim: Sim, body: object, fragment: str
) -> None:
    """A bad POST body is 400 InvalidRequest naming the bad member; no batch is made."""
    before = sim.batch_count()

    response = sim.client.post(
        f"{NEW}/batches", params={"api-version": "2024-05-01"}, json=body
    )

    error = error_of(response, 400)
    assert error["code"] == "InvalidRequest"
    assert error["innerError"]["code"] == "InvalidRequestBody"
    assert fragment in error["message"]
    assert sim.batch_count() == before


def test_body_that_is_not_json_is_400(sim: Sim) -> None:
    """A POST body that does not parse is 400 InvalidRequest."""
    response = sim.client.post(
        f"{NEW}/batches", params={"api-version": "2024-05-01"}, content=b"{inputs"
    )

    assert error_of(response, 400)["innerError"]["code"] == "InvalidRequestBody"


@pytest.mark.parametrize("version", [None, "2023-01-01", "v1.0", ""])
@pytest.mark.parametrize("rest", ["/batches", "/formats"])
def test_missing_or_unsupported_api_version_is_400(
    sim: Sim, version: str | None, rest: str
) -> None:
    """The new flavour needs api-version 2024-05-01 or 2026-03-01."""
    params = {"type": "document"} | (
        {} if version is None else {"api-version": version}
    )

    response = sim.client.get(f"{NEW}{rest}", params=params)

    error = error_of(response, 400)
    assert (error["code"], error["innerError"]["code"]) == (
        "InvalidRequest",
        "InvalidApiVersion",
    )


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    ("method", "rest"),
    [
        ("GET", "/batches/{id}"),
        ("DELETE", "/batches/{id}"),
        ("GET", "/batches/{id}/documents"),
        ("GET", "/batches/{id}/documents/{id}"),
    ],
)
def test_unknown_batch_is_404_resource_not_found(
    sim: Sim, flavour: str, method: str, rest: str
) -> None:
    """Any route under an unknown batch id is 404 ResourceNotFound/BatchNotFound."""
    url, params = route(flavour, rest.format(id=UNKNOWN_ID))

    response = sim.client.request(method, url, params=params)

    error = error_of(response, 404)
    assert (error["code"], error["innerError"]["code"]) == (
        "ResourceNotFound",
        "BatchNotFound",
    )


def test_unknown_document_is_404_document_not_found(sim: Sim) -> None:
    """A document id the batch does not hold is 404 ResourceNotFound/DocumentNotFound."""
    batch_id = sim.submit(batch_body())

    response = sim.get("2024-05-01", f"/batches/{batch_id}/documents/{UNKNOWN_ID}")

    assert error_of(response, 404)["innerError"]["code"] == "DocumentNotFound"


@pytest.mark.parametrize(
    "path",
    ["/translator/text/batch/v2.0/batches", f"{NEW}/jobs", "/", f"{V1}/formats"],
)
def test_unknown_route_is_404(sim: Sim, path: str) -> None:
    """Paths the service does not have are 404 ResourceNotFound."""
    response = sim.client.get(path, params={"api-version": "2024-05-01"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ResourceNotFound"
    assert response.headers["x-ms-error-code"] == "ResourceNotFound"


@pytest.mark.parametrize(
    ("method", "rest", "allowed"),
    [
        ("PUT", "/batches/{id}", {"GET", "DELETE"}),
        ("POST", "/batches/{id}/documents", {"GET"}),
        ("DELETE", "/batches", {"GET", "POST"}),
    ],
)
def test_wrong_method_is_405_with_allow(
    sim: Sim, method: str, rest: str, allowed: set[str]
) -> None:
    """A known path with the wrong method is 405 with the allowed methods."""
    batch_id = sim.submit(batch_body())
    url, params = route("2024-05-01", rest.format(id=batch_id))

    response = sim.client.request(method, url, params=params)

    assert error_of(response, 405)["innerError"]["code"] == "MethodNotAllowed"
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= allowed


# -- cancel ----------------------------------------------------------------------------


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_cancel_is_200_cancelling_then_cancelled_within_1_to_3_seconds(
    sim: Sim, flavour: str
) -> None:
    """DELETE answers the batch as Cancelling; it is Cancelled 1-3 s later."""
    batch_id = sim.submit(batch_body("docs=5"), flavour)
    sim.clock.advance(6)

    response = sim.cancel(batch_id, flavour)
    sim.clock.advance(0.999)
    still = sim.batch(batch_id, flavour)
    sim.clock.advance(2.002)
    done = sim.batch(batch_id, flavour)

    assert response.status_code == 200
    assert set(response.json()) == BATCH_KEYS
    assert response.json()["status"] == "Cancelling"
    assert still["status"] == "Cancelling"
    assert done["status"] == "Cancelled"
    assert done["summary"]["cancelled"] == 5
    assert_summary_matches(done, sim.documents(batch_id))


def test_cancel_keeps_finished_documents_and_cancels_the_rest(sim: Sim) -> None:
    """Documents finished before the DELETE keep their state and charge."""
    batch_id = sim.submit(batch_body("docs=12&faildocs=0"))
    for _ in range(50):
        sim.clock.advance(1)
        summary = sim.batch(batch_id)["summary"]
        if summary["success"] and summary["inProgress"]:
            break
    before = {d["id"]: d for d in sim.documents(batch_id)}

    cancelling = sim.cancel(batch_id).json()
    during = sim.documents(batch_id)
    sim.clock.advance(3.01)
    after = {d["id"]: d for d in sim.documents(batch_id)}

    finished = {i for i, d in before.items() if d["status"] == "Succeeded"}
    assert finished
    assert {d["status"] for d in during if d["id"] not in finished} == {"Cancelling"}
    assert all(after[i] == before[i] for i in finished)
    assert {d["status"] for i, d in after.items() if i not in finished} == {"Cancelled"}
    assert_summary_matches(cancelling, during)
    assert_summary_matches(sim.batch(batch_id), list(after.values()))
    assert sim.batch(batch_id)["summary"]["totalCharacterCharged"] > 0


def test_cancel_before_the_start_cancels_every_document(sim: Sim) -> None:
    """A batch cancelled while NotStarted ends Cancelled with no document run."""
    batch_id = sim.submit(batch_body("docs=3"))

    sim.cancel(batch_id)
    sim.clock.advance(ALL_DONE)

    docs = sim.documents(batch_id)
    assert sim.batch(batch_id)["status"] == "Cancelled"
    assert {(d["status"], d["progress"]) for d in docs} == {("Cancelled", 0)}


@pytest.mark.parametrize(
    ("flavour", "refusal"),
    [("v1.0", 400), ("v1.1", 400), ("2024-05-01", 400), ("2026-03-01", 409)],
)
@pytest.mark.parametrize("when", ["cancelling", "succeeded", "validation_failed"])
def test_cancel_of_an_ended_or_cancelling_batch_is_refused_by_version(
    sim: Sim, flavour: str, refusal: int, when: str
) -> None:
    """DELETE on a terminal or Cancelling batch: 400 (v1.x, 2024-05-01), 409 (2026)."""
    source = f"{SOURCE}/sim-validation" if when == "validation_failed" else SOURCE
    batch_id = sim.submit(batch_body(source=source), flavour)
    if when == "cancelling":
        sim.cancel(batch_id, flavour)
    else:
        sim.clock.advance(ALL_DONE)
    status = sim.batch(batch_id)["status"]

    response = sim.cancel(batch_id, flavour)

    error = error_of(response, refusal)
    assert (error["code"], error["innerError"]["code"]) == (
        "InvalidRequest",
        "BatchNotCancellable",
    )
    assert sim.batch(batch_id)["status"] == status


def test_summary_equals_the_documents_at_every_moment(sim: Sim) -> None:
    """Across a run and a cancel, summary always counts the listed documents' states."""
    ids = [sim.submit(batch_body("docs=8", "fr", "it")) for _ in range(2)]
    statuses: set[str] = set()

    for step in range(120):
        if step == 30:
            sim.cancel(ids[1])
        for batch_id in ids:
            batch = sim.batch(batch_id)
            statuses.add(batch["status"])
            assert_summary_matches(batch, sim.documents(batch_id))
        sim.clock.advance(0.4)

    assert statuses >= {"NotStarted", "Running", "Cancelling", "Cancelled"}


# -- listing and paging ------------------------------------------------------------


def reference_ids(docs: list[dict[str, Any]], *, descending: bool = True) -> list[str]:
    """Order documents as the service documents it: createdDateTimeUtc, then id."""
    ordered = sorted(docs, key=lambda d: (d["createdDateTimeUtc"], d["id"]))
    return [d["id"] for d in (ordered[::-1] if descending else ordered)]


@pytest.fixture
def big_batch(sim: Sim) -> tuple[Sim, str, list[str]]:
    """A finished batch of 23 documents (3 failed) and its ids, newest first."""
    batch_id = sim.submit(batch_body("docs=23&faildocs=3"))
    sim.clock.advance(ALL_DONE)
    return sim, batch_id, reference_ids(sim.documents(batch_id))


@pytest.mark.parametrize(
    ("flavour", "prefix", "field"),
    [("2024-05-01", "", "nextLink"), ("v1.0", "$", "@nextLink")],
)
@pytest.mark.parametrize("filtered", [False, True])
def test_paging_follows_filter_order_skip_then_top_for_every_combination(
    sim: Sim, flavour: str, prefix: str, field: str, filtered: bool
) -> None:
    """Pages joined = filtered, ordered list [skip:][:top]; pages min(maxpagesize, 50)."""
    batch_id = sim.submit(batch_body("docs=23&faildocs=3"))
    sim.clock.advance(ALL_DONE)
    docs = sim.documents(batch_id)
    kept = [d for d in docs if not filtered or d["status"] == "Succeeded"]
    reference = reference_ids(kept, descending=not filtered)
    other = "@nextLink" if field == "nextLink" else "nextLink"
    url, base_params = route(flavour, f"/batches/{batch_id}/documents")
    if filtered:
        base_params |= {
            "statuses": "Succeeded",
            f"{prefix}orderBy": "createdDateTimeUtc asc",
        }

    for top in (None, 0, 1, 3, 7, 25):
        for skip in (0, 1, 5, 30):
            for size in (None, 1, 2, 5, 100):
                params = dict(base_params)
                for name, value in (
                    ("top", top),
                    ("skip", skip),
                    ("maxpagesize", size),
                ):
                    if value is not None:
                        params[prefix + name] = str(value)

                pages = walk(sim.client, url, params, field)

                expected = (
                    reference[skip:][:top] if top is not None else reference[skip:]
                )
                got = [d["id"] for page in pages for d in page["value"]]
                per_page = min(size or 50, 50)
                case = (top, skip, size)
                assert got == expected, case
                assert all(len(p["value"]) == per_page for p in pages[:-1]), case
                assert len(pages) == max(1, -(-len(expected) // per_page)), case
                assert not any(other in p for p in pages), case
    assert len(kept) == (20 if filtered else 23)


def test_next_links_reproduce_the_v1_recording(sim: Sim) -> None:
    """On 10 documents, $skip=0&$maxpagesize=2 links $skip=2&$top=8&$maxpagesize=2 on."""
    batch_id = sim.submit(batch_body("docs=10"), "v1.0")
    base = f"{sim.handle.url}{V1}/batches/{batch_id}/documents"

    pages = walk(sim.client, f"{base}?$skip=0&$maxpagesize=2", None, "@nextLink")

    assert [p.get("@nextLink") for p in pages] == [
        f"{base}?$skip=2&$top=8&$maxpagesize=2",
        f"{base}?$skip=4&$top=6&$maxpagesize=2",
        f"{base}?$skip=6&$top=4&$maxpagesize=2",
        f"{base}?$skip=8&$top=2&$maxpagesize=2",
        None,
    ]
    assert [len(p["value"]) for p in pages] == [2] * 5


@pytest.mark.parametrize("version", ["2024-05-01", "2026-03-01"])
def test_next_link_on_the_new_flavour_uses_bare_names_and_api_version(
    sim: Sim, version: str
) -> None:
    """skip=0&maxpagesize=2 on 2024+: nextLink …?skip=2&top=8&maxpagesize=2&api-version=V."""
    batch_id = sim.submit(batch_body("docs=10"), version)

    page = sim.get(version, f"/batches/{batch_id}/documents", skip=0, maxpagesize=2)

    assert set(page.json()) == {"value", "nextLink"}
    assert page.json()["nextLink"] == (
        f"{sim.handle.url}{NEW}/batches/{batch_id}/documents"
        f"?skip=2&top=8&maxpagesize=2&api-version={version}"
    )


def test_next_link_keeps_the_dollar_names_the_client_used_on_the_new_flavour(
    sim: Sim,
) -> None:
    """A client sending $maxpagesize on 2024-05-01 gets $-names back in nextLink."""
    batch_id = sim.submit(batch_body("docs=5"))
    url = f"{NEW}/batches/{batch_id}/documents?api-version=2024-05-01&$maxpagesize=3"

    link = sim.client.get(url).json()["nextLink"]

    assert link.endswith("?$skip=3&$top=2&$maxpagesize=3&api-version=2024-05-01")


def test_next_link_on_v1_without_paging_names_uses_dollar_names(sim: Sim) -> None:
    """With more than 50 documents and no paging parameter, v1.0 links use $-names."""
    batch_id = sim.submit(batch_body("docs=60"), "v1.0")

    page = sim.get("v1.0", f"/batches/{batch_id}/documents").json()

    assert len(page["value"]) == 50
    assert page["@nextLink"].endswith("/documents?$skip=50&$top=10")


def test_next_link_carries_filters_and_ordering_as_the_client_spelt_them(
    big_batch: tuple[Sim, str, list[str]],
) -> None:
    """statuses, ids, dates and orderby ride along in every next link, verbatim."""
    sim, batch_id, everything = big_batch
    docs = {d["id"]: d for d in sim.documents(batch_id)}
    chosen = everything[2:20]
    first, last = sorted(docs[i]["createdDateTimeUtc"] for i in chosen)[::17]
    params = {
        "api-version": "2024-05-01",
        "statuses": "Succeeded",
        "ids": ",".join(chosen),
        "createdDateTimeUtcStart": first,
        "createdDateTimeUtcEnd": last,
        "orderby": "createdDateTimeUtc asc",
        "maxpagesize": "4",
    }
    url = f"{NEW}/batches/{batch_id}/documents"

    pages = walk(sim.client, url, params, "nextLink")

    succeeded = [docs[i] for i in chosen if docs[i]["status"] == "Succeeded"]
    got = [d["id"] for p in pages for d in p["value"]]
    assert got == reference_ids(succeeded, descending=False)
    assert len(pages) > 2
    for page in pages[:-1]:
        query = httpx.URL(page["nextLink"]).params
        assert {k: query[k] for k in params if k != "maxpagesize"} == {
            k: v for k, v in params.items() if k != "maxpagesize"
        }


@pytest.mark.parametrize(
    ("query", "descending"),
    [
        ({}, True),
        ({"orderby": "createdDateTimeUtc desc"}, True),
        ({"orderBy": "createdDateTimeUtc asc"}, False),
        ({"$orderBy": "CreatedDateTimeUtc ASC"}, False),
        ({"$orderby": "createdDateTimeUtc"}, False),
    ],
)
def test_order_is_created_time_desc_by_default_and_asc_on_request(
    big_batch: tuple[Sim, str, list[str]], query: dict[str, str], descending: bool
) -> None:
    """Default createdDateTimeUtc desc; any spelling of orderBy may ask for asc."""
    sim, batch_id, everything = big_batch

    page = sim.get("2024-05-01", f"/batches/{batch_id}/documents", **query).json()

    expected = everything if descending else everything[::-1]
    assert [d["id"] for d in page["value"]] == expected


@pytest.mark.parametrize("name", ["statuses", "status"])
def test_status_filter_keeps_only_those_states(
    big_batch: tuple[Sim, str, list[str]], name: str
) -> None:
    """statuses=Failed (or status=) keeps the 3 failed documents only."""
    sim, batch_id, everything = big_batch

    page = sim.get("v1.0", f"/batches/{batch_id}/documents", **{name: "Failed"}).json()

    assert len(page["value"]) == 3
    assert {d["status"] for d in page["value"]} == {"Failed"}
    assert [d["id"] for d in page["value"]] == [
        i for i in everything if i in {d["id"] for d in page["value"]}
    ]


def test_status_filter_accepts_a_csv_of_states(
    big_batch: tuple[Sim, str, list[str]],
) -> None:
    """statuses=Failed,Succeeded keeps both."""
    sim, batch_id, everything = big_batch

    page = sim.get(
        "2024-05-01", f"/batches/{batch_id}/documents", statuses="Failed,Succeeded"
    ).json()

    assert [d["id"] for d in page["value"]] == everything


def test_ids_filter_keeps_only_those_documents(
    big_batch: tuple[Sim, str, list[str]],
) -> None:
    """ids=a,b keeps exactly those documents, in the service's order."""
    sim, batch_id, everything = big_batch
    wanted = [everything[7], everything[2], UNKNOWN_ID]

    page = sim.get(
        "2024-05-01", f"/batches/{batch_id}/documents", ids=",".join(wanted)
    ).json()

    assert [d["id"] for d in page["value"]] == [everything[2], everything[7]]


def test_created_range_filter_is_inclusive_and_works_alone(
    big_batch: tuple[Sim, str, list[str]],
) -> None:
    """createdDateTimeUtcStart/End bound the creation time, both ends included."""
    sim, batch_id, everything = big_batch
    docs = {d["id"]: d for d in sim.documents(batch_id)}
    newest, middle = everything[0], everything[10]
    path = f"/batches/{batch_id}/documents"

    after = sim.get(
        "2024-05-01", path, createdDateTimeUtcStart=docs[middle]["createdDateTimeUtc"]
    ).json()
    before = sim.get(
        "2024-05-01", path, createdDateTimeUtcEnd=docs[middle]["createdDateTimeUtc"]
    ).json()
    exact = sim.get(
        "2024-05-01",
        path,
        createdDateTimeUtcStart=docs[newest]["createdDateTimeUtc"],
        createdDateTimeUtcEnd=docs[newest]["createdDateTimeUtc"],
    ).json()

    assert [d["id"] for d in after["value"]] == everything[:11]
    assert [d["id"] for d in before["value"]] == everything[10:]
    assert [d["id"] for d in exact["value"]] == [newest]


def test_maxpagesize_above_the_server_page_is_capped_at_50(sim: Sim) -> None:
    """maxpagesize=100 is honoured only down to the server's 50 per page."""
    batch_id = sim.submit(batch_body("docs=70"))

    pages = walk(
        sim.client,
        f"{NEW}/batches/{batch_id}/documents",
        {"api-version": "2024-05-01", "maxpagesize": "100"},
        "nextLink",
    )

    assert [len(p["value"]) for p in pages] == [50, 20]
    assert "skip=50&top=20&maxpagesize=100" in pages[0]["nextLink"]


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ({"maxpagesize": "0"}, "maxpagesize"),
        ({"$maxpagesize": "101"}, "$maxpagesize"),
        ({"maxpagesize": "ten"}, "maxpagesize"),
        ({"top": "-1"}, "top"),
        ({"$top": "abc"}, "$top"),
        ({"top": "2147483648"}, "top"),
        ({"skip": "1.5"}, "skip"),
        ({"$skip": "-3"}, "$skip"),
        ({"orderby": "status desc"}, "orderby"),
        ({"$orderBy": "createdDateTimeUtc sideways"}, "$orderBy"),
        ({"createdDateTimeUtcStart": "yesterday"}, "createdDateTimeUtcStart"),
        ({"createdDateTimeUtcEnd": "2026-13-01"}, "createdDateTimeUtcEnd"),
        ({"statuses": "Succeeded,Bogus"}, "statuses"),
        ({"ids": "not-a-uuid"}, "ids"),
        ({"top": "1", "$top": "2"}, "$top"),
    ],
)
@pytest.mark.parametrize("listing", ["/batches/{id}/documents", "/batches"])
def test_invalid_listing_parameter_is_400_invalid_argument(
    sim: Sim, query: dict[str, str], target: str, listing: str
) -> None:
    """Values the server cannot honour are 400 InvalidArgument targeting the parameter."""
    batch_id = sim.submit(batch_body())

    response = sim.get("2024-05-01", listing.format(id=batch_id), **query)

    error = error_of(response, 400)
    assert (error["code"], error["target"]) == ("InvalidArgument", target)
    assert error["innerError"]["code"] == "InvalidQueryParameter"


def test_batch_list_pages_filters_and_orders_batches(
    start: Callable[..., Sim],
) -> None:
    """GET /batches lists every batch newest first, with ids/statuses and paging."""
    sim = start()
    ids = []
    for n in range(5):
        source = f"{SOURCE}/sim-validation" if n % 2 else SOURCE
        ids.append(sim.submit(batch_body(source=source), FLAVOURS[n % 4]))
        sim.clock.advance(0.1)
    sim.clock.advance(ALL_DONE)

    everything = walk(sim.client, f"{V1}/batches", {"$maxpagesize": "2"}, "@nextLink")
    refused = sim.get("2026-03-01", "/batches", statuses="ValidationFailed").json()
    chosen = sim.get(
        "2024-05-01",
        "/batches",
        ids=f"{ids[0]},{ids[4]}",
        orderby="createdDateTimeUtc asc",
    ).json()

    assert [b["id"] for p in everything for b in p["value"]] == ids[::-1]
    assert [len(p["value"]) for p in everything] == [2, 2, 1]
    assert all(set(b) <= {*BATCH_KEYS, "error"} for p in everything for b in p["value"])
    assert [b["id"] for b in refused["value"]] == [ids[3], ids[1]]
    assert [b["id"] for b in chosen["value"]] == [ids[0], ids[4]]


@pytest.mark.parametrize(("kind", "formats"), [("document", 4), ("glossary", 3)])
def test_formats_lists_document_or_glossary_formats(
    sim: Sim, kind: str, formats: int
) -> None:
    """GET /formats?type=document|glossary lists formats with extensions and types."""
    response = sim.get("2024-05-01", "/formats", type=kind)

    value = response.json()["value"]
    assert response.status_code == 200
    assert len(value) == formats
    assert all({"format", "fileExtensions", "contentTypes"} <= set(f) for f in value)
    assert {f["type"] for f in value} == {kind.capitalize()}


@pytest.mark.parametrize("query", [{}, {"type": "spreadsheet"}])
def test_formats_without_a_known_type_is_400(sim: Sim, query: dict[str, str]) -> None:
    """The type parameter is required and must be document or glossary."""
    response = sim.get("2026-03-01", "/formats", **query)

    assert error_of(response, 400)["target"] == "type"


# -- faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "RequestRateTooHigh"),
        (500, "InternalServerError"),
        (502, "InternalServerError"),
        (503, "ServiceUnavailable"),
    ],
)
def test_injected_error_status_uses_the_azure_error_shape(
    start: Callable[..., Sim], status: int, code: str
) -> None:
    """429/5xx faults answer Azure's error object; 429 and 503 carry Retry-After."""
    sim = start(faults=parse_faults(f"{status}@1,retry-after=2"))
    batch_id = sim.submit(batch_body())

    faulted = sim.get("2024-05-01", f"/batches/{batch_id}")
    normal = sim.get("2024-05-01", f"/batches/{batch_id}")

    error = faulted.json()["error"]
    assert faulted.status_code == status
    assert set(error) == ERROR_KEYS
    assert (error["code"], error["target"]) == (code, "Operation")
    assert faulted.headers.get("Retry-After") == ("2" if status in (429, 503) else None)
    assert normal.status_code == 200
    assert sim.fault_counts()[str(status)] == 1


def test_injected_reset_cuts_the_connection(start: Callable[..., Sim]) -> None:
    """A reset fault closes the connection mid-response."""
    sim = start(faults=parse_faults("reset@1"))
    batch_id = sim.submit(batch_body())

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        sim.get("2024-05-01", f"/batches/{batch_id}")

    assert sim.batch(batch_id)["id"] == batch_id
    assert sim.fault_counts()["reset"] == 1


def test_injected_slow_answer_is_delayed_but_correct(start: Callable[..., Sim]) -> None:
    """A slow fault delays the real answer by the configured delay."""
    sim = start(faults=parse_faults("slow@1,delay=0.25"))
    batch_id = sim.submit(batch_body())

    began = time.monotonic()
    response = sim.get("2024-05-01", f"/batches/{batch_id}")
    elapsed = time.monotonic() - began

    assert elapsed >= 0.25
    assert response.json()["id"] == batch_id
    assert sim.fault_counts()["slow"] == 1


@pytest.mark.parametrize(
    ("fault", "status", "content_type"),
    [("malformed", 200, "application/json"), ("html", 502, "text/html")],
)
def test_injected_unparseable_bodies(
    start: Callable[..., Sim], fault: str, status: int, content_type: str
) -> None:
    """The malformed fault is truncated JSON; the html fault is a proxy's 502 page."""
    sim = start(faults=parse_faults(f"{fault}@1"))
    batch_id = sim.submit(batch_body())

    response = sim.get("2024-05-01", f"/batches/{batch_id}")

    assert response.status_code == status
    assert response.headers["Content-Type"] == content_type
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert sim.fault_counts()[fault] == 1


def test_injected_unknown_status_replaces_the_status(start: Callable[..., Sim]) -> None:
    """unknown_status puts a status the service never sends at /status."""
    sim = start(faults=parse_faults("unknown_status@1"))
    batch_id = sim.submit(batch_body())

    response = sim.get("2024-05-01", f"/batches/{batch_id}")

    assert response.json()["status"] == "Exploding"
    assert response.json()["id"] == batch_id
    assert sim.fault_counts()["unknown_status"] == 1


@pytest.mark.parametrize(
    ("after", "actual", "earlier"),
    [(6.0, "Running", "NotStarted"), (ALL_DONE, "Succeeded", "Running")],
)
def test_injected_backwards_reports_an_earlier_status(
    start: Callable[..., Sim], after: float, actual: str, earlier: str
) -> None:
    """The backwards fault answers the status before the real one."""
    sim = start(faults=parse_faults("backwards@1"))
    batch_id = sim.submit(batch_body("docs=2&faildocs=0"))
    sim.clock.advance(after)

    faulted = sim.get("2024-05-01", f"/batches/{batch_id}")
    real = sim.get("2024-05-01", f"/batches/{batch_id}")

    assert (faulted.json()["status"], real.json()["status"]) == (earlier, actual)
    assert sim.fault_counts()["backwards"] == 1


def test_faults_spare_submissions_by_default(start: Callable[..., Sim]) -> None:
    """With scope=get (the default) a POST is never faulted nor counted."""
    sim = start(faults=parse_faults("503:1.0"))

    response = sim.client.post(
        f"{NEW}/batches", params={"api-version": "2024-05-01"}, json=batch_body()
    )

    assert response.status_code == 202
    assert sim.fault_counts()["503"] == 0
