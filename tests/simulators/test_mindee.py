"""The Mindee v2 simulator, spoken to with plain httpx over a real loopback socket."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from engine.simulators._base import FaultInjector, ServerHandle, parse_faults, serving
from engine.simulators.mindee import PRODUCTS, create_app
from tests.simulators.conftest import FakeClock

KEY = "test-key"
MODEL_ID = "5a7e1d34-18c0-4a8e-bf4e-7f7a5d1f0c22"
WEBHOOK_ID = "c3d2e1f0-1111-4222-8333-944455556666"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
EXTRACTION = "/v2/products/extraction/enqueue"
LEGACY = "/v2/inferences/enqueue"
SCALE = 0.001  # jobs last 2-6 ms (1-3 ms when bound to fail)

JOB_KEYS = {
    "id",
    "status",
    "created_at",
    "model_id",
    "filename",
    "alias",
    "polling_url",
    "result_url",
    "completed_at",
    "error",
    "webhooks",
}
ERROR_KEYS = {"status", "title", "code", "detail", "errors"}
INFERENCE_KEYS = {"id", "job", "model", "file", "active_options", "result"}
FILE_KEYS = {"name", "alias", "page_count", "mime_type"}
OPTION_KEYS = {
    "raw_text",
    "polygon",
    "confidence",
    "rag",
    "text_context",
    "data_schema",
}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}")

Part = tuple[str, tuple[str | None, bytes | str, str | None]]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    """Serve one real-clock simulator, 1000 times faster, for the whole module."""
    with serving(create_app(seed=7, time_scale=SCALE, api_key=KEY)) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> Iterator[httpx.Client]:
    """Return a client that sends the right key."""
    with httpx.Client(base_url=server.url, headers={"Authorization": KEY}) as c:
        yield c


@pytest.fixture
def clock() -> FakeClock:
    """Return a fresh fake clock."""
    return FakeClock()


@pytest.fixture
def frozen(clock: FakeClock) -> Iterator[httpx.Client]:
    """A client of a simulator whose clock only moves when the test says so."""
    app = create_app(seed=3, api_key=KEY, clock=clock)
    with (
        serving(app) as handle,
        httpx.Client(base_url=handle.url, headers={"Authorization": KEY}) as c,
    ):
        yield c


def parts(
    *,
    filename: str | None = "invoice.pdf",
    content: bytes = b"%PDF-1.4 simulated invoice",
    **fields: str | list[str],
) -> list[Part]:
    """Build a multipart body: model_id, a file part unless None, and ``fields``."""
    fields = {"model_id": MODEL_ID, **fields}
    body: list[Part] = []
    for name, value in fields.items():
        for one in [value] if isinstance(value, str) else value:
            body.append((name, (None, one, None)))
    if filename is not None:
        body.append(("file", (filename, content, "application/pdf")))
    return body


def enqueue(
    client: httpx.Client, path: str = EXTRACTION, **kwargs: Any
) -> dict[str, Any]:
    """Enqueue a document and return its job, asserting the 202."""
    response = client.post(path, files=parts(**kwargs))
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()["job"]
    return job


def poll_until_done(client: httpx.Client, job: dict[str, Any]) -> httpx.Response:
    """Poll with redirect=false until the job leaves Processing (bounded)."""
    deadline = time.monotonic() + 5
    for _ in range(1000):
        response = client.get(job["polling_url"], params={"redirect": "false"})
        if response.json()["job"]["status"] != "Processing":
            return response
        if time.monotonic() > deadline:
            break
        time.sleep(0.002)
    pytest.fail(f"job {job['id']} still Processing")


def fault_counts(client: httpx.Client) -> dict[str, int]:
    """Return how often each fault fired, as GET /_sim/faults reports it."""
    counts: dict[str, int] = client.get("/_sim/faults").json()["counts"]
    return counts


# -- enqueue -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [EXTRACTION, LEGACY])
def test_enqueue_answers_202_with_the_full_processing_job(
    client: httpx.Client, server: ServerHandle, path: str
) -> None:
    """A valid enqueue is a 202 whose job has every key, Processing and no result."""
    response = client.post(path, files=parts(alias="crm-1", filename="scan.pdf"))

    job = response.json()["job"]
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    assert set(job) == JOB_KEYS
    assert job["status"] == "Processing"
    assert job["result_url"] is None
    assert job["completed_at"] is None
    assert job["error"] is None
    assert job["webhooks"] == []
    assert (job["model_id"], job["filename"], job["alias"]) == (
        MODEL_ID,
        "scan.pdf",
        "crm-1",
    )
    assert job["polling_url"] == f"{server.url}/v2/jobs/{job['id']}"
    assert TIMESTAMP.fullmatch(job["created_at"])


@pytest.mark.parametrize("product", PRODUCTS)
def test_every_product_enqueues_and_serves_its_result_under_its_own_path(
    client: httpx.Client, server: ServerHandle, product: str
) -> None:
    """Each product path answers 202, and its result lives under that product."""
    job = enqueue(client, f"/v2/products/{product}/enqueue", alias="sim-processed")

    done = poll_until_done(client, job).json()["job"]
    result = client.get(done["result_url"])

    inference = result.json()["inference"]
    expected = f"{server.url}/v2/products/{product}/results/{inference['id']}"
    assert done["result_url"] == expected
    assert result.status_code == 200
    assert inference["job"] == {"id": job["id"]}
    assert inference["id"] != job["id"]


def test_unknown_product_is_404_for_enqueue_and_results(client: httpx.Client) -> None:
    """A product outside the five is a 404 error object on both product routes."""
    enqueue_response = client.post("/v2/products/invoices/enqueue", files=parts())
    result = client.get(f"/v2/products/invoices/results/{UNKNOWN_ID}")

    for response in (enqueue_response, result):
        assert response.status_code == 404
        assert set(response.json()) == ERROR_KEYS
        assert response.json()["code"] == "404-001"


def test_url_and_base64_sources_are_accepted(client: httpx.Client) -> None:
    """A url (https, 2048 chars at most) or file_base64 (15 chars at least) stands in for a file."""
    url = "https://example.com/docs/" + "a" * (2048 - 29) + ".pdf"
    by_url = enqueue(client, filename=None, url=url)
    by_base64 = enqueue(client, filename=None, file_base64="JVBERi0xLjQKJeLj")

    assert len(url) == 2048
    assert by_url["filename"] == "a" * (2048 - 29) + ".pdf"
    assert by_base64["filename"] is None


INVALID_FORMS: list[tuple[dict[str, Any], str]] = [
    ({"model_id": ""}, "#/model_id"),
    ({"model_id": "not-a-uuid"}, "#/model_id"),
    ({"model_id": [MODEL_ID, MODEL_ID]}, "#/model_id"),
    ({"filename": None}, "#/file"),
    ({"url": "https://example.com/a.pdf"}, "#/file"),
    ({"filename": None, "url": "http://example.com/a.pdf"}, "#/url"),
    ({"filename": None, "url": "https://e.com/" + "a" * 2035}, "#/url"),
    ({"filename": None, "file_base64": "A" * 14}, "#/file_base64"),
    ({"content": b""}, "#/file"),
    ({"rag": "yes"}, "#/rag"),
    ({"polygon": "True"}, "#/polygon"),
    ({"webhook_ids": [WEBHOOK_ID, "hook-2"]}, "#/webhook_ids"),
    ({"data_schema": "{not json"}, "#/data_schema"),
    ({"data_schema": "[1, 2]"}, "#/data_schema"),
]


@pytest.mark.parametrize(("form", "pointer"), INVALID_FORMS)
def test_invalid_form_is_422_naming_the_field(
    client: httpx.Client, form: dict[str, Any], pointer: str
) -> None:
    """An invalid enqueue form is a 422-001 whose errors[] points at the bad field."""
    response = client.post(EXTRACTION, files=parts(**form))

    body = response.json()
    assert response.status_code == 422
    assert set(body) == ERROR_KEYS
    assert (body["status"], body["code"]) == (422, "422-001")
    assert pointer in [item["pointer"] for item in body["errors"]]
    assert all(set(item) == {"pointer", "detail"} for item in body["errors"])


def test_missing_model_id_is_reported_as_required(client: httpx.Client) -> None:
    """A form without model_id says the field is required."""
    response = client.post(
        EXTRACTION, files=[("file", ("a.pdf", b"%PDF-1.4", "application/pdf"))]
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"pointer": "#/model_id", "detail": "model_id is required"}
    ]


def test_every_bad_field_is_reported_at_once(client: httpx.Client) -> None:
    """One 422 lists every invalid field, not only the first."""
    form = parts(model_id="x", rag="maybe", filename=None)

    response = client.post(LEGACY, files=form)

    pointers = [item["pointer"] for item in response.json()["errors"]]
    assert pointers == ["#/model_id", "#/file", "#/rag"]


# -- jobs ----------------------------------------------------------------------------


def test_docs_sequence_enqueue_wait_poll_until_302_then_result(
    client: httpx.Client,
) -> None:
    """The docs' loop (wait 3 s, poll every 1 s until 302, GET result_url) works."""
    job = enqueue(client, alias="sim-processed")
    time.sleep(3 * SCALE)
    deadline = time.monotonic() + 5
    polled = client.get(job["polling_url"])
    for _ in range(1000):
        if polled.status_code == 302 or time.monotonic() > deadline:
            break
        assert polled.status_code == 200
        time.sleep(1 * SCALE)
        polled = client.get(job["polling_url"])

    done = polled.json()["job"]
    result = client.get(done["result_url"])

    assert polled.status_code == 302
    assert set(done) == JOB_KEYS
    assert done["status"] == "Processed"
    assert polled.headers["location"] == done["result_url"]
    assert TIMESTAMP.fullmatch(done["completed_at"])
    assert done["completed_at"] >= done["created_at"]
    assert result.status_code == 200
    assert result.json()["inference"]["job"]["id"] == job["id"]


def test_follow_redirects_lands_on_the_result(
    client: httpx.Client, server: ServerHandle
) -> None:
    """With follow_redirects=True, httpx goes from the 302 straight to the inference."""
    job = enqueue(client, alias="sim-processed")
    poll_until_done(client, job)

    response = client.get(job["polling_url"], follow_redirects=True)

    assert [r.status_code for r in response.history] == [302]
    assert response.status_code == 200
    assert response.json()["inference"]["job"]["id"] == job["id"]
    assert str(response.url).startswith(f"{server.url}/v2/products/extraction/results/")


def test_redirect_false_answers_200_for_a_processed_job(client: httpx.Client) -> None:
    """?redirect=false turns the 302 of a Processed job into a 200 with the same job."""
    job = enqueue(client, alias="sim-processed")

    response = poll_until_done(client, job)

    assert response.status_code == 200
    assert "location" not in response.headers
    assert response.json()["job"]["status"] == "Processed"
    assert response.json()["job"]["result_url"] is not None


def test_job_is_200_processing_until_its_seeded_duration_ends(
    frozen: httpx.Client, clock: FakeClock
) -> None:
    """A job answers 200 Processing before 2 s and 302 Processed after 6 s."""
    job = enqueue(frozen, alias="sim-processed")

    clock.advance(1.99)
    early = frozen.get(job["polling_url"])
    clock.advance(6.0 - 1.99)
    late = frozen.get(job["polling_url"])

    assert early.status_code == 200
    assert early.json()["job"]["status"] == "Processing"
    assert early.json()["job"]["completed_at"] is None
    assert late.status_code == 302
    assert late.json()["job"]["status"] == "Processed"


def test_failing_job_fails_between_1_and_3_seconds(
    frozen: httpx.Client, clock: FakeClock
) -> None:
    """A job bound to fail is Processing before 1 s and Failed (200) after 3 s."""
    job = enqueue(frozen, alias="sim-failed")

    clock.advance(0.99)
    early = frozen.get(job["polling_url"])
    clock.advance(3.0 - 0.99)
    late = frozen.get(job["polling_url"])

    assert early.json()["job"]["status"] == "Processing"
    assert late.status_code == 200
    assert late.json()["job"]["status"] == "Failed"


def test_timestamps_follow_the_injected_clock(
    frozen: httpx.Client, clock: FakeClock
) -> None:
    """completed_at is created_at plus the job's clock-time duration (2-6 s)."""
    job = enqueue(frozen, alias="sim-processed")
    clock.advance(10)

    done = frozen.get(job["polling_url"]).json()["job"]

    created = dt.datetime.fromisoformat(done["created_at"])
    completed = dt.datetime.fromisoformat(done["completed_at"])
    assert 2.0 <= (completed - created).total_seconds() <= 6.0


def test_unknown_job_is_404_and_malformed_job_id_is_422(client: httpx.Client) -> None:
    """A well-formed unknown id is 404-001; a malformed one is 422 pointing at job_id."""
    unknown = client.get(f"/v2/jobs/{UNKNOWN_ID}")
    malformed = client.get("/v2/jobs/not-a-uuid")

    assert unknown.status_code == 404
    assert set(unknown.json()) == ERROR_KEYS
    assert unknown.json()["code"] == "404-001"
    assert malformed.status_code == 422
    assert malformed.json()["code"] == "422-001"
    assert malformed.json()["errors"][0]["pointer"] == "#/job_id"


def test_malformed_redirect_flag_is_422(client: httpx.Client) -> None:
    """?redirect= must be a boolean."""
    job = enqueue(client)

    response = client.get(job["polling_url"], params={"redirect": "sometimes"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/redirect"


def test_webhook_entries_appear_once_the_job_ends(client: httpx.Client) -> None:
    """Each webhook id gets a delivery entry, absent while Processing."""
    job = enqueue(client, alias="sim-processed", webhook_ids=[WEBHOOK_ID])

    done = poll_until_done(client, job).json()["job"]

    assert job["webhooks"] == []
    assert [(w["id"], w["status"], w["error"]) for w in done["webhooks"]] == [
        (WEBHOOK_ID, "Processed", None)
    ]
    assert set(done["webhooks"][0]) == {"id", "created_at", "status", "error"}
    assert TIMESTAMP.fullmatch(done["webhooks"][0]["created_at"])


# -- triggers ------------------------------------------------------------------------

SOURCES: list[dict[str, Any]] = [
    {"filename": "TRIGGER.pdf"},
    {"filename": None, "url": "https://example.com/TRIGGER.pdf"},
    {"alias": "TRIGGER"},
]


def _with_trigger(source: dict[str, Any], trigger: str) -> dict[str, Any]:
    return {
        name: value.replace("TRIGGER", trigger) if isinstance(value, str) else value
        for name, value in source.items()
    }


@pytest.mark.parametrize("source", SOURCES, ids=["filename", "url", "alias"])
def test_sim_failed_gives_a_failed_job_with_500_012(
    client: httpx.Client, source: dict[str, Any]
) -> None:
    """'sim-failed' in the filename, url or alias fails the job with a 500-012 error."""
    job = enqueue(client, **_with_trigger(source, "x-Sim-Failed-1"))

    response = poll_until_done(client, job)

    done = response.json()["job"]
    assert response.status_code == 200
    assert done["status"] == "Failed"
    assert done["result_url"] is None
    assert done["completed_at"] is not None
    assert set(done["error"]) == ERROR_KEYS
    assert (done["error"]["status"], done["error"]["code"]) == (500, "500-012")


@pytest.mark.parametrize("source", SOURCES, ids=["filename", "url", "alias"])
def test_sim_processed_gives_a_processed_job(
    client: httpx.Client, source: dict[str, Any]
) -> None:
    """'sim-processed' in the filename, url or alias makes the job Processed."""
    job = enqueue(client, **_with_trigger(source, "a-sim-processed"))

    done = poll_until_done(client, job).json()["job"]

    assert done["status"] == "Processed"
    assert done["error"] is None


def test_sim_failed_invalid_carries_the_422_001_fixture_error(
    client: httpx.Client,
) -> None:
    """'sim-failed-invalid' fails the job with the documented 422-001 error object."""
    job = enqueue(client, alias="sim-failed-invalid")

    done = poll_until_done(client, job).json()["job"]

    assert done["status"] == "Failed"
    assert done["error"] == {
        "status": 422,
        "title": "Invalid fields in form",
        "code": "422-001",
        "detail": "One or more fields failed validation.",
        "errors": [
            {"pointer": "#/model_id", "detail": "model_id must be a valid UUID"}
        ],
    }


def test_sim_failed_wins_over_sim_processed(client: httpx.Client) -> None:
    """With both triggers present, the job fails."""
    job = enqueue(client, filename="sim-processed.pdf", alias="sim-failed")

    assert poll_until_done(client, job).json()["job"]["status"] == "Failed"


def _outcomes(seed: int, count: int) -> list[tuple[str, str]]:
    clock = FakeClock()
    with (
        serving(create_app(seed=seed, api_key=KEY, clock=clock)) as handle,
        httpx.Client(base_url=handle.url, headers={"Authorization": KEY}) as c,
    ):
        jobs = [enqueue(c, filename=f"doc-{n}.pdf") for n in range(count)]
        clock.advance(10)
        return [
            (j["id"], c.get(j["polling_url"]).json()["job"]["status"]) for j in jobs
        ]


def test_untriggered_outcomes_are_a_seeded_mix() -> None:
    """Without a trigger, the same seed gives the same ids and outcomes, both kinds."""
    first = _outcomes(seed=11, count=20)
    again = _outcomes(seed=11, count=20)

    statuses = [status for _, status in first]
    assert first == again
    assert set(statuses) == {"Processed", "Failed"}
    assert statuses.count("Failed") < statuses.count("Processed")


# -- results -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"rag": "true", "raw_text": "true", "polygon": "true", "confidence": "true"},
        {"confidence": "false", "text_context": "invoices", "data_schema": "{}"},
    ],
    ids=["none", "all-flags", "context-and-schema"],
)
def test_result_has_every_sdk_key_and_echoes_the_options(
    client: httpx.Client, options: dict[str, str]
) -> None:
    """The inference has every key the SDK requires; active_options match the form."""
    job = enqueue(client, alias="sim-processed", filename="inv.pdf", **options)
    done = poll_until_done(client, job).json()["job"]

    inference = client.get(done["result_url"]).json()["inference"]

    flag = {name: options.get(name) == "true" for name in ("rag", "raw_text")}
    assert set(inference) == INFERENCE_KEYS
    assert inference["model"] == {"id": MODEL_ID}
    assert set(inference["file"]) == FILE_KEYS
    assert inference["file"]["name"] == "inv.pdf"
    assert inference["file"]["mime_type"] == "application/pdf"
    assert set(inference["active_options"]) == OPTION_KEYS
    assert inference["active_options"] == {
        "rag": flag["rag"],
        "raw_text": flag["raw_text"],
        "polygon": options.get("polygon") == "true",
        "confidence": options.get("confidence") == "true",
        "text_context": "text_context" in options,
        "data_schema": {"replace": "data_schema" in options},
    }
    assert (inference["result"]["raw_text"] is not None) is flag["raw_text"]
    assert (inference["result"]["rag"] is not None) is flag["rag"]


def test_result_fields_use_the_three_kinds_and_honour_confidence_and_polygon(
    client: httpx.Client,
) -> None:
    """Fields are simple (value), list (items) or object (fields), with options applied."""
    job = enqueue(client, alias="sim-processed", confidence="true", polygon="true")
    done = poll_until_done(client, job).json()["job"]

    fields = client.get(done["result_url"]).json()["inference"]["result"]["fields"]

    simple = fields["invoice_number"]
    assert set(simple) == {"value", "confidence", "locations"}
    assert simple["confidence"] in {"Certain", "High", "Medium", "Low"}
    assert simple["locations"][0]["page"] == 0
    assert len(simple["locations"][0]["polygon"]) == 4
    assert "value" in fields["line_items"]["items"][0]["fields"]["amount"]
    assert "value" in fields["supplier"]["fields"]["name"]


def test_result_without_confidence_or_polygon_has_null_confidence_and_no_locations(
    client: httpx.Client,
) -> None:
    """With confidence and polygon off, fields carry confidence null and no locations."""
    job = enqueue(client, alias="sim-processed")
    done = poll_until_done(client, job).json()["job"]

    simple = client.get(done["result_url"]).json()["inference"]["result"]["fields"][
        "invoice_number"
    ]

    assert simple["confidence"] is None
    assert simple["locations"] == []


def test_result_is_the_same_on_every_fetch(client: httpx.Client) -> None:
    """Fetching one inference twice gives the same payload."""
    job = enqueue(client, alias="sim-processed", confidence="true")
    url = poll_until_done(client, job).json()["job"]["result_url"]

    assert client.get(url).json() == client.get(url).json()


def test_legacy_job_result_is_at_inferences_with_the_job_id(
    client: httpx.Client, server: ServerHandle
) -> None:
    """A legacy-path job's result_url is /v2/inferences/<job id>, inference id = job id."""
    job = enqueue(client, LEGACY, alias="sim-processed")
    done = poll_until_done(client, job).json()["job"]

    inference = client.get(done["result_url"]).json()["inference"]

    assert done["result_url"] == f"{server.url}/v2/inferences/{job['id']}"
    assert inference["id"] == job["id"]
    assert inference["job"] == {"id": job["id"]}


def test_legacy_job_result_is_also_served_by_job_id_on_the_extraction_path(
    client: httpx.Client,
) -> None:
    """4.34-4.36 clients fetch /v2/products/extraction/results/<job id>: it answers."""
    job = enqueue(client, LEGACY, alias="sim-processed")
    poll_until_done(client, job)

    response = client.get(f"/v2/products/extraction/results/{job['id']}")

    assert response.status_code == 200
    assert response.json()["inference"]["job"]["id"] == job["id"]


def test_result_under_another_product_is_404(client: httpx.Client) -> None:
    """An extraction inference is not found under the classification path."""
    job = enqueue(client, alias="sim-processed")
    url = poll_until_done(client, job).json()["job"]["result_url"]

    response = client.get(url.replace("/extraction/", "/classification/"))

    assert response.status_code == 404
    assert response.json()["code"] == "404-001"


def test_result_before_processed_is_404(frozen: httpx.Client, clock: FakeClock) -> None:
    """Asking for a result while the job is Processing is a 404 error object."""
    job = enqueue(frozen, LEGACY, alias="sim-processed")

    early = frozen.get(f"/v2/inferences/{job['id']}")
    clock.advance(6)
    late = frozen.get(f"/v2/inferences/{job['id']}")

    assert early.status_code == 404
    assert set(early.json()) == ERROR_KEYS
    assert "Processing" in early.json()["detail"]
    assert late.status_code == 200


def test_result_of_a_failed_job_is_404(frozen: httpx.Client, clock: FakeClock) -> None:
    """A Failed job has no result: its inference is a 404."""
    job = enqueue(frozen, LEGACY, alias="sim-failed")
    clock.advance(3)

    response = frozen.get(f"/v2/inferences/{job['id']}")

    assert frozen.get(job["polling_url"]).json()["job"]["status"] == "Failed"
    assert response.status_code == 404
    assert "Failed" in response.json()["detail"]


def test_unknown_inference_is_404_and_malformed_is_422(client: httpx.Client) -> None:
    """Results: unknown well-formed id → 404, malformed id → 422, on both paths."""
    responses = [
        client.get(f"/v2/inferences/{UNKNOWN_ID}"),
        client.get(f"/v2/products/ocr/results/{UNKNOWN_ID}"),
        client.get("/v2/inferences/42"),
        client.get("/v2/products/ocr/results/42"),
    ]

    assert [r.status_code for r in responses] == [404, 404, 422, 422]
    assert all(set(r.json()) == ERROR_KEYS for r in responses)


# -- links, auth, routing ----------------------------------------------------------


def test_public_base_url_is_used_for_every_emitted_link(clock: FakeClock) -> None:
    """With public_base_url set, polling_url, result_url and Location all use it."""
    base = "https://foreign.example"
    app = create_app(seed=1, api_key=KEY, clock=clock, public_base_url=base + "/")
    with (
        serving(app) as handle,
        httpx.Client(base_url=handle.url, headers={"Authorization": KEY}) as c,
    ):
        job = enqueue(c, alias="sim-processed")
        clock.advance(6)
        polled = c.get(f"/v2/jobs/{job['id']}")

    assert job["polling_url"] == f"{base}/v2/jobs/{job['id']}"
    assert polled.json()["job"]["result_url"].startswith(
        f"{base}/v2/products/extraction/results/"
    )
    assert polled.headers["location"] == polled.json()["job"]["result_url"]


AUTH_CASES = [
    ({}, "401-008", "Credentials are required."),
    ({"Authorization": ""}, "401-008", "Credentials are required."),
    ({"Authorization": "wrong"}, "401-001", "Invalid API key"),
    ({"Authorization": f"Bearer {KEY}"}, "401-001", "Invalid API key"),
    ({"Authorization": f"Token {KEY}"}, "401-001", "Invalid API key"),
]


@pytest.mark.parametrize(("headers", "code", "title"), AUTH_CASES)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", EXTRACTION),
        ("POST", LEGACY),
        ("GET", f"/v2/jobs/{UNKNOWN_ID}"),
        ("GET", f"/v2/inferences/{UNKNOWN_ID}"),
        ("GET", f"/v2/products/extraction/results/{UNKNOWN_ID}"),
    ],
)
def test_missing_or_wrong_key_is_401_in_mindee_shape(
    server: ServerHandle,
    *,
    headers: dict[str, str],
    code: str,
    title: str,
    method: str,
    path: str,
) -> None:
    """Only the exact raw key is accepted; a missing one is 401-008, a wrong one 401-001."""
    with httpx.Client(base_url=server.url, headers=headers) as c:
        response = c.request(method, path, files=parts() if method == "POST" else None)

    body = response.json()
    assert response.status_code == 401
    assert set(body) == ERROR_KEYS
    assert (body["status"], body["code"], body["title"]) == (401, code, title)
    assert body["errors"] == []


def test_unknown_route_is_404_in_mindee_shape(client: httpx.Client) -> None:
    """A path the API does not have is a 404 error object."""
    response = client.get("/v2/nothing-here")

    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["code"] == "404-001"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", EXTRACTION),
        ("DELETE", f"/v2/jobs/{UNKNOWN_ID}"),
        ("POST", f"/v2/inferences/{UNKNOWN_ID}"),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: httpx.Client, method: str, path: str
) -> None:
    """A known path with the wrong method is a 405 error object naming allowed methods."""
    response = client.request(method, path)

    assert response.status_code == 405
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["code"] == "405-001"
    assert response.headers["allow"]


def test_every_error_code_starts_with_its_http_status(client: httpx.Client) -> None:
    """Error codes have the form '<http status>-<3 digits>'."""
    responses = [
        client.get("/v2/nope"),
        client.get("/v2/jobs/bad"),
        client.delete("/v2/inferences/enqueue"),
        client.post(EXTRACTION, files=parts(model_id="bad")),
    ]

    for response in responses:
        body = response.json()
        assert re.fullmatch(rf"{response.status_code}-\d{{3}}", body["code"])
        assert body["status"] == response.status_code


# -- faults --------------------------------------------------------------------------


@pytest.fixture
def faulty(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[httpx.Client]:
    """A client of a simulator with the faults named by the test's parameter."""
    app: FaultInjector = create_app(
        seed=5, api_key=KEY, clock=clock, faults=parse_faults(request.param)
    )
    with (
        serving(app) as handle,
        httpx.Client(base_url=handle.url, headers={"Authorization": KEY}) as c,
    ):
        yield c


@pytest.mark.parametrize("faulty", ["429@1,retry-after=2"], indirect=True)
def test_fault_429_carries_retry_after_and_a_mindee_error(faulty: httpx.Client) -> None:
    """An injected 429 sends Retry-After and the error in Mindee's shape, then recovers."""
    job = enqueue(faulty)

    limited = faulty.get(job["polling_url"])
    after = faulty.get(job["polling_url"])

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json() == {
        "status": 429,
        "title": "Too Many Requests",
        "code": "429-000",
        "detail": "Too Many Requests",
        "errors": [],
    }
    assert after.status_code == 200
    assert fault_counts(faulty)["429"] == 1


@pytest.mark.parametrize(
    ("faulty", "status"),
    [("500@1", 500), ("502@1", 502), ("503@1", 503)],
    indirect=["faulty"],
)
def test_fault_5xx_answers_the_status_in_mindee_shape(
    faulty: httpx.Client, status: int
) -> None:
    """Injected 500/502/503 answer that status with a Mindee error body; 503 has Retry-After."""
    job = enqueue(faulty)

    response = faulty.get(job["polling_url"])

    assert response.status_code == status
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["code"] == f"{status}-000"
    assert ("retry-after" in response.headers) is (status == 503)
    assert fault_counts(faulty)[str(status)] == 1


@pytest.mark.parametrize("faulty", ["reset@1"], indirect=True)
def test_fault_reset_cuts_the_response(faulty: httpx.Client) -> None:
    """An injected reset closes the connection mid-response."""
    job = enqueue(faulty)

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        faulty.get(job["polling_url"])

    assert fault_counts(faulty)["reset"] == 1


@pytest.mark.parametrize("faulty", ["slow@2,delay=0.3"], indirect=True)
def test_fault_slow_delays_the_real_answer(faulty: httpx.Client) -> None:
    """An injected slow response arrives after the delay, with the real body."""
    job = enqueue(faulty)

    started = time.monotonic()
    fast = faulty.get(job["polling_url"])
    fast_elapsed = time.monotonic() - started
    started = time.monotonic()
    slow = faulty.get(job["polling_url"])
    slow_elapsed = time.monotonic() - started

    assert fast_elapsed < 0.3
    assert slow_elapsed >= 0.3
    assert slow.json() == fast.json()
    assert fault_counts(faulty)["slow"] == 1


@pytest.mark.parametrize("faulty", ["malformed@1"], indirect=True)
def test_fault_malformed_sends_truncated_json(faulty: httpx.Client) -> None:
    """An injected malformed answer is a 200 whose JSON does not parse."""
    job = enqueue(faulty)

    response = faulty.get(job["polling_url"])

    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert fault_counts(faulty)["malformed"] == 1


@pytest.mark.parametrize("faulty", ["html@1"], indirect=True)
def test_fault_html_sends_a_gateway_page(faulty: httpx.Client) -> None:
    """An injected html answer is a 502 text/html page, not JSON."""
    job = enqueue(faulty)

    response = faulty.get(job["polling_url"])

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    assert fault_counts(faulty)["html"] == 1


@pytest.mark.parametrize("faulty", ["unknown_status@1"], indirect=True)
def test_fault_unknown_status_rewrites_job_status(faulty: httpx.Client) -> None:
    """An injected unknown_status puts a status Mindee never sends at /job/status."""
    job = enqueue(faulty)

    response = faulty.get(job["polling_url"])

    assert response.status_code == 200
    assert response.json()["job"]["status"] == "Exploding"
    assert fault_counts(faulty)["unknown_status"] == 1


@pytest.mark.parametrize("faulty", ["backwards@1+2"], indirect=True)
def test_fault_backwards_shows_a_finished_job_as_processing(
    faulty: httpx.Client, clock: FakeClock
) -> None:
    """An injected backwards answer shows Processed or Failed as Processing again."""
    processed = enqueue(faulty, alias="sim-processed")
    failed = enqueue(faulty, alias="sim-failed")
    clock.advance(10)

    first = faulty.get(processed["polling_url"], params={"redirect": "false"})
    second = faulty.get(failed["polling_url"])
    truth = faulty.get(failed["polling_url"])

    assert first.json()["job"]["status"] == "Processing"
    assert second.json()["job"]["status"] == "Processing"
    assert truth.json()["job"]["status"] == "Failed"
    assert fault_counts(faulty)["backwards"] == 2


@pytest.mark.parametrize("faulty", ["500:1.0"], indirect=True)
def test_faults_spare_enqueue_by_default(faulty: httpx.Client) -> None:
    """With the default scope, POST /enqueue is never faulted, only GETs."""
    job = enqueue(faulty)

    polled = faulty.get(job["polling_url"])

    assert polled.status_code == 500
    assert fault_counts(faulty)["500"] == 1


@pytest.mark.parametrize("faulty", ["429@1,scope=all"], indirect=True)
def test_faults_with_scope_all_hit_enqueue(faulty: httpx.Client) -> None:
    """With scope=all, the enqueue itself can be rate limited."""
    response = faulty.post(EXTRACTION, files=parts())

    assert response.status_code == 429
    assert response.json()["code"] == "429-000"
    assert fault_counts(faulty)["429"] == 1
