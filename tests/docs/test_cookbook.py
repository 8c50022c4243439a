"""The cookbook's recipes: each spec loads cleanly and drives a job end to end.

``docs/cookbook.md`` marks each spec with ``<!-- recipe: NAME -->`` on the
line before its json block. Each recipe is checked by the loader (no problem,
no warning) and run against a small scripted server on 127.0.0.1: a script
answers each ``METHOD /path`` in turn (the last answer repeats), and every
request is recorded for the asserts. Schedules run at a small time scale, so
each test takes a second or two; Retry-After is the server's own figure, in
real seconds, and recipe 1's test waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import attrs
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import AsyncEngine, JobRef, JobResult
from engine.simulators import serving
from statemachines import Spec, load_document

ROOT = Path(__file__).resolve().parents[2]
COOKBOOK = ROOT / "docs" / "cookbook.md"
RECIPE = re.compile(r"<!-- recipe: (\S+) -->\n```json\n(.*?)\n```", re.DOTALL)
RECIPES = (
    "accepted-location",
    "operation-location",
    "two-fields",
    "done-flag",
    "cursor-list",
    "links",
    "chain",
    "webhooks-ready",
)
#: Bounds every wait for a job, so that a broken recipe fails instead of hanging.
WAIT = 15.0


def _documents() -> dict[str, dict[str, Any]]:
    text = COOKBOOK.read_text(encoding="utf-8")
    return {name: json.loads(body) for name, body in RECIPE.findall(text)}


def _recipe(name: str) -> Spec:
    return load_document(_documents()[name], source=f"cookbook:{name}")


# -- a scripted server -----------------------------------------------------------------------


@attrs.frozen
class Seen:
    """One request as the server got it."""

    method: str
    path: str  # the raw path, as sent (percent-encoding kept)
    query: str
    headers: Mapping[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        """Return the body read as JSON."""
        return json.loads(self.body)


#: One answer: status, body (JSON, or None for none) and headers.
Answer = tuple[int, Any, Mapping[str, str]]
#: A script's step: an answer, or a function of the request (and the server's URL).
Step = Answer | Callable[[Seen, str], Answer]


class Scripted:
    """Answers ``METHOD /path`` from its script in turn; records every request."""

    def __init__(self, scripts: Mapping[str, list[Step]]) -> None:
        """Serve ``scripts``: ``"GET /v1/x"`` → the answers, the last one repeating."""
        self.scripts = scripts
        self.seen: list[Seen] = []
        self.app = Starlette(
            routes=[
                Route(
                    "/{path:path}",
                    self.answer,
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                )
            ]
        )

    async def answer(self, request: Request) -> Response:
        """Record the request and play the next step of its script."""
        raw_path = request.scope["raw_path"].decode("latin-1")
        seen = Seen(
            request.method,
            raw_path,
            request.url.query,
            dict(request.headers),
            await request.body(),
            time.monotonic(),
        )
        self.seen.append(seen)
        key = f"{seen.method} {raw_path}"
        script = self.scripts.get(key)
        if script is None:
            return Response(json.dumps({"error": f"no script for {key}"}), 404)
        count = len(self.to(seen.method, raw_path))
        step = script[min(count, len(script)) - 1]
        base = str(request.base_url).rstrip("/")
        status, body, headers = step(seen, base) if callable(step) else step
        raw = b"" if body is None else json.dumps(body).encode()
        return Response(raw, status, dict(headers), media_type="application/json")

    def to(self, method: str, path: str) -> list[Seen]:
        """Return the requests seen for ``METHOD path``, in order."""
        return [s for s in self.seen if (s.method, s.path) == (method, path)]


@contextlib.contextmanager
def scripted(scripts: Mapping[str, list[Step]]) -> Iterator[tuple[Scripted, str]]:
    """Serve ``scripts`` on 127.0.0.1 for the block; give the server and its URL."""
    server = Scripted(scripts)
    with serving(server.app) as handle:
        yield server, handle.url


def _engine(spec: Spec, url: str, env: Mapping[str, str]) -> AsyncEngine:
    return AsyncEngine(base_urls={spec.name: url}, env=env, time_scale=0.01, seed=1)


async def _wait(engine: AsyncEngine, job: JobRef) -> JobResult:
    async with asyncio.timeout(WAIT):
        return await engine.wait(job)


def _gaps(seen: list[Seen]) -> list[float]:
    """Return the seconds between consecutive requests."""
    return [b.at - a.at for a, b in itertools.pairwise(seen)]


# -- every recipe ----------------------------------------------------------------------------


def test_the_cookbook_has_every_recipe_and_no_unmarked_spec() -> None:
    """Each recipe is marked once, in order, and every json block is a recipe."""
    text = COOKBOOK.read_text(encoding="utf-8")

    assert tuple(name for name, _ in RECIPE.findall(text)) == RECIPES
    assert text.count("```json") == len(RECIPES)


def test_the_readme_links_the_cookbook() -> None:
    """README's "Writing a spec" section points at docs/cookbook.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Writing a spec", 1)[1].split("\n## ", 1)[0]

    assert "(docs/cookbook.md)" in section


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_loads_without_problems_or_warnings(name: str) -> None:
    """The spec validates: no error (load_document raises on one), no warning."""
    spec = _recipe(name)

    assert spec.warnings == ()


# -- 1. 202 + Location + Retry-After ---------------------------------------------------------

_OPERATION = "/v1/operations/op-1"


@pytest.mark.anyio
async def test_accepted_location_waits_as_asked_and_follows_the_303() -> None:
    """Submit 202 + Location; 202 + Retry-After is honoured; the 303's Location is the result."""
    spec = _recipe("accepted-location")
    scripts: dict[str, list[Step]] = {
        "POST /v1/reports": [
            (202, None, {"Location": _OPERATION, "Retry-After": "1"}),
        ],
        f"GET {_OPERATION}": [
            (202, None, {"Retry-After": "1"}),
            (303, None, {"Location": "/v1/reports/r-1"}),
        ],
        "GET /v1/reports/r-1": [(200, {"rows": 3}, {})],
    }
    with scripted(scripts) as (server, url):
        async with _engine(spec, url, {"REPORTS_TOKEN": "tok-r"}) as engine:
            job = await engine.submit(spec, "report", query={"year": 2026})
            result = await _wait(engine, job)

    submit, first, second, fetch = server.seen
    assert (result.job.job_id, result.state, result.result) == (
        "op-1",
        "ready",
        {"rows": 3},
    )
    assert submit.json() == {"query": {"year": 2026}}
    assert (first.path, second.path, fetch.path) == (
        _OPERATION,
        _OPERATION,
        "/v1/reports/r-1",
    )
    # Retry-After: 1 on the submit and on the first poll, though the schedule
    # (5 s at a time scale of 0.01) would have polled after 0.05 s.
    assert all(gap >= 0.95 for gap in _gaps([submit, first, second]))


@pytest.mark.anyio
async def test_accepted_location_fetches_a_final_200_again_by_its_path() -> None:
    """A final 200 has no Location: the result request falls back to the monitor's path."""
    spec = _recipe("accepted-location")
    scripts: dict[str, list[Step]] = {
        "POST /v1/reports": [(202, None, {"Location": _OPERATION})],
        f"GET {_OPERATION}": [(200, {"rows": 4}, {})],
    }
    with scripted(scripts) as (server, url):
        async with _engine(spec, url, {"REPORTS_TOKEN": "tok-r"}) as engine:
            job = await engine.submit(spec, "report", query={})
            result = await _wait(engine, job)

    assert (result.state, result.result) == ("ready", {"rows": 4})
    # The poll that ended the job and the result request: one wasted GET.
    assert len(server.to("GET", _OPERATION)) == 2


@pytest.mark.anyio
async def test_accepted_location_reads_an_error_in_a_final_200_as_failed() -> None:
    """A 200 whose body carries an error ends the job failed; nothing more is fetched."""
    spec = _recipe("accepted-location")
    scripts: dict[str, list[Step]] = {
        "POST /v1/reports": [(202, None, {"Location": _OPERATION})],
        f"GET {_OPERATION}": [(200, {"error": {"code": "TooBig"}}, {})],
    }
    with scripted(scripts) as (server, url):
        async with _engine(spec, url, {"REPORTS_TOKEN": "tok-r"}) as engine:
            job = await engine.submit(spec, "report", query={})
            result = await _wait(engine, job)

    assert (result.state, result.ok) == ("failed", False)
    assert len(server.seen) == 2


# -- 2. Operation-Location ---------------------------------------------------------------------


def _accepted(_seen: Seen, base: str) -> Answer:
    link = f"{base}/vision/operations/op-9?api-version=2024-02-01"
    return 202, None, {"Operation-Location": link}


@pytest.mark.anyio
async def test_operation_location_is_polled_until_succeeded_in_any_case() -> None:
    """The header's URL is polled (its api-version once), statuses match in any case."""
    spec = _recipe("operation-location")
    scripts: dict[str, list[Step]] = {
        "POST /vision/analyze": [_accepted],
        "GET /vision/operations/op-9": [
            (200, {"status": "notStarted"}, {}),
            (200, {"status": "running"}, {}),
            (
                200,
                {"status": "succeeded", "resourceLocation": "/vision/results/op-9"},
                {},
            ),
        ],
        "GET /vision/results/op-9": [(200, {"tags": ["cat"]}, {})],
    }
    with scripted(scripts) as (server, url):
        async with _engine(spec, url, {"VISION_KEY": "key-v"}) as engine:
            job = await engine.submit(spec, "analysis", url="https://x.test/cat.png")
            result = await _wait(engine, job)

    polls = server.to("GET", "/vision/operations/op-9")
    assert (result.job.job_id, result.state) == ("op-9", "Succeeded")
    assert result.result == {"tags": ["cat"]}
    assert [p.query for p in polls] == ["api-version=2024-02-01"] * 3
    assert {s.headers["ocp-apim-subscription-key"] for s in server.seen} == {"key-v"}


# -- 3. two fields decide the state --------------------------------------------------------------

_CHECK_RUN = "/repos/octo/app/check-runs/4242"


def _check_run_script(conclusion: str) -> dict[str, list[Step]]:
    return {
        f"GET {_CHECK_RUN}": [
            (200, {"status": "queued", "conclusion": None}, {"ETag": '"a"'}),
            (304, None, {"ETag": '"a"'}),
            (200, {"status": "in_progress", "conclusion": None}, {"ETag": '"b"'}),
            (200, {"status": "completed", "conclusion": conclusion}, {"ETag": '"c"'}),
        ]
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("conclusion", "state"),
    [
        ("success", "passed"),
        ("skipped", "passed"),
        ("timed_out", "failed"),
        ("action_required", "failed"),
        ("cancelled", "cancelled"),
    ],
)
async def test_status_and_conclusion_together_decide_how_a_check_run_ended(
    conclusion: str, state: str
) -> None:
    """Status completed and the conclusion pick the end state; a 304 changes nothing."""
    spec = _recipe("two-fields")
    with scripted(_check_run_script(conclusion)) as (server, url):
        async with _engine(spec, url, {"GITHUB_TOKEN": "tok-gh"}) as engine:
            job = await engine.track(
                spec, "check_run", "4242", owner="octo", repo="app"
            )
            result = await _wait(engine, job)

    polls = server.to("GET", _CHECK_RUN)
    assert result.state == state
    assert [p.headers.get("if-none-match") for p in polls] == [
        None,
        '"a"',
        '"a"',
        '"b"',
    ]
    assert polls[0].headers["authorization"] == "Bearer tok-gh"


# -- 4. a done flag with error or response -------------------------------------------------------

_PARENT = "projects/p1/locations/us-central1"
_OP_NAME = f"{_PARENT}/operations/op-7"


def _operation_script(*polls: Step) -> dict[str, list[Step]]:
    return {
        f"POST /v1/{_PARENT}/instances": [(200, {"name": _OP_NAME}, {})],
        f"GET /v1/{_OP_NAME}": list(polls),
    }


async def _create_instance(engine: AsyncEngine) -> JobRef:
    return await engine.submit(
        _recipe("done-flag"),
        "create",
        parent=_PARENT,
        instance_id="vm-1",
        instance={"machineType": "small", "labels": {"team": "a"}},
    )


def _google(url: str) -> AsyncEngine:
    return _engine(_recipe("done-flag"), url, {"GOOGLE_TOKEN": "tok-g"})


@pytest.mark.anyio
async def test_done_with_a_response_succeeds_on_a_path_id() -> None:
    """An id that is a path keeps its '/'; done + response is succeeded, the body the result."""
    response = {"name": f"{_PARENT}/instances/vm-1"}
    scripts = _operation_script(
        (200, {"name": _OP_NAME, "metadata": {"progress": 10}}, {}),
        (200, {"name": _OP_NAME, "done": False}, {}),
        (200, {"name": _OP_NAME, "done": True, "response": response}, {}),
    )
    with scripted(scripts) as (server, url):
        async with _google(url) as engine:
            job = await _create_instance(engine)
            result = await _wait(engine, job)

    submit = server.seen[0]
    assert (result.job.job_id, result.state) == (_OP_NAME, "succeeded")
    assert result.result["response"] == response
    assert (submit.path, submit.query) == (
        f"/v1/{_PARENT}/instances",
        "instanceId=vm-1",
    )
    assert submit.json() == {"machineType": "small", "labels": {"team": "a"}}
    assert len(server.to("GET", f"/v1/{_OP_NAME}")) == 3


@pytest.mark.anyio
async def test_done_with_an_error_fails() -> None:
    """An operation done with an error (not code 1) is failed."""
    scripts = _operation_script(
        (
            200,
            {"name": _OP_NAME, "done": True, "error": {"code": 3, "message": "no"}},
            {},
        )
    )
    with scripted(scripts) as (_server, url):
        async with _google(url) as engine:
            job = await _create_instance(engine)
            result = await _wait(engine, job)

    assert (result.state, result.ok) == ("failed", False)


@pytest.mark.anyio
async def test_a_cancelled_operation_ends_cancelled() -> None:
    """POST …:cancel with {} is sent; done + error code 1 is the cancelled state."""
    cancelled = {"name": _OP_NAME, "done": True, "error": {"code": 1, "message": "x"}}
    cancels: list[Seen] = []

    def poll(_seen: Seen, _base: str) -> Answer:
        return 200, cancelled if cancels else {"name": _OP_NAME}, {}

    def cancel(seen: Seen, _base: str) -> Answer:
        cancels.append(seen)
        return 200, {}, {}

    scripts = _operation_script(poll)
    scripts[f"POST /v1/{_OP_NAME}:cancel"] = [cancel]
    with scripted(scripts) as (_server, url):
        async with _google(url) as engine:
            job = await _create_instance(engine)
            await engine.cancel(job)
            result = await _wait(engine, job)

    assert result.state == "cancelled"
    assert [c.json() for c in cancels] == [{}]


# -- 5. cursor lists ---------------------------------------------------------------------------


def _files_page(seen: Seen, _base: str) -> Answer:
    if parse_qs(seen.query).get("after") == ["f2"]:
        return (
            200,
            {
                "data": [{"id": "f3", "status": "completed"}],
                "last_id": "f3",
                "has_more": False,
            },
            {},
        )
    page = [{"id": "f1", "status": "completed"}, {"id": "f2", "status": "failed"}]
    return 200, {"data": page, "last_id": "f2", "has_more": True}, {}


@pytest.mark.anyio
async def test_a_cursor_list_gives_each_file_its_state_and_stops_on_has_more() -> None:
    """Files are listed once at the end by 'after'; has_more: false ends it despite last_id."""
    spec = _recipe("cursor-list")
    counts = {"total": 3}
    scripts: dict[str, list[Step]] = {
        "POST /v1/batches": [(200, {"id": "b1", "status": "in_progress"}, {})],
        "GET /v1/batches/b1": [
            (
                200,
                {"status": "in_progress", "file_counts": {**counts, "completed": 1}},
                {},
            ),
            (
                200,
                {"status": "completed", "file_counts": {**counts, "completed": 3}},
                {},
            ),
        ],
        "GET /v1/batches/b1/files": [_files_page],
    }
    with scripted(scripts) as (server, url):
        async with _engine(spec, url, {"INGEST_TOKEN": "tok-i"}) as engine:
            progress: list[float | None] = []
            engine.on("polled", lambda event: progress.append(event.progress))
            job = await engine.submit(spec, "batch", file_ids=["f1", "f2", "f3"])
            result = await _wait(engine, job)

    pages = [parse_qs(s.query) for s in server.to("GET", "/v1/batches/b1/files")]
    assert (result.state, dict(result.items)) == (
        "completed",
        {"f1": "completed", "f2": "failed", "f3": "completed"},
    )
    assert pages == [{"limit": ["100"]}, {"limit": ["100"], "after": ["f2"]}]
    assert progress == [pytest.approx(1 / 3), 1.0]
    assert server.seen[0].json() == {"file_ids": ["f1", "f2", "f3"]}


# -- 6. links from responses ------------------------------------------------------------------


def _export_scripts(final: dict[str, Any]) -> dict[str, list[Step]]:
    return {
        "POST /v1/exports": [
            (201, {"id": "ex1", "links": {"self": "/v1/exports/ex1/status"}}, {})
        ],
        "GET /v1/exports/ex1/status": [
            (200, {"status": "running"}, {}),
            (200, {"status": "succeeded", "output_file_id": "file-9", **final}, {}),
        ],
        "GET /v1/files/file-9/content": [(200, {"from": "files"}, {})],
    }


@pytest.mark.anyio
async def test_links_poll_the_self_link_and_fill_the_result_path_from_the_final_answer() -> (
    None
):
    """No download link: the result path takes output_file_id from the final answer."""
    spec = _recipe("links")
    with scripted(_export_scripts({})) as (server, url):
        async with _engine(spec, url, {"EXPORTS_TOKEN": "tok-e"}) as engine:
            job = await engine.submit(spec, "export")
            result = await _wait(engine, job)

    assert (result.state, result.result) == ("succeeded", {"from": "files"})
    assert [s.path for s in server.seen] == [
        "/v1/exports",
        "/v1/exports/ex1/status",
        "/v1/exports/ex1/status",
        "/v1/files/file-9/content",
    ]


@pytest.mark.anyio
async def test_a_download_link_to_another_host_is_followed_without_credentials() -> (
    None
):
    """A download link wins over the path; on a foreign host it gets no Authorization."""
    storage_scripts: dict[str, list[Step]] = {
        "GET /bucket/out.json": [(200, {"from": "storage"}, {})]
    }
    spec = _recipe("links")
    with scripted(storage_scripts) as (storage, storage_url):
        download = f"{storage_url}/bucket/out.json?signature=s3cr3t"
        scripts = _export_scripts({"links": {"download": download}})
        with scripted(scripts) as (server, url):
            async with _engine(spec, url, {"EXPORTS_TOKEN": "tok-e"}) as engine:
                job = await engine.submit(spec, "export")
                result = await _wait(engine, job)

    (fetch,) = storage.seen
    assert (result.state, result.result) == ("succeeded", {"from": "storage"})
    assert "authorization" not in fetch.headers
    assert server.seen[0].headers["authorization"] == "Bearer tok-e"
    assert not server.to("GET", "/v1/files/file-9/content")


# -- 7. chaining -------------------------------------------------------------------------------


_CHAIN_SCRIPTS: dict[str, list[Step]] = {
    "POST /v1/files": [(200, {"id": "file-1", "status": "uploaded"}, {})],
    "GET /v1/files/file-1": [(200, {"id": "file-1", "status": "processed"}, {})],
    "POST /v1/batches": [(200, {"id": "batch-1", "status": "validating"}, {})],
    "GET /v1/batches/batch-1": [
        (200, {"status": "in_progress"}, {}),
        (200, {"status": "finalizing"}, {}),
        (200, {"status": "completed", "output_file_id": "file-2"}, {}),
    ],
    "GET /v1/files/file-2/content": [(200, {"answers": 2}, {})],
}


@pytest.mark.anyio
async def test_a_chain_uploads_then_runs_the_batch_then_downloads_its_output() -> None:
    """The processed upload starts the batch with its id; wait() on the upload gives the output."""
    spec = _recipe("chain")
    with scripted(_CHAIN_SCRIPTS) as (server, url):
        async with _engine(spec, url, {"BATCHES_TOKEN": "tok-b"}) as engine:
            job = await engine.submit(
                spec, "upload", file=("in.jsonl", b"{}", "application/jsonl")
            )
            result = await _wait(engine, job)

    upload, batch = result.chain
    assert (result.state, result.result) == ("completed", {"answers": 2})
    assert (upload.lifecycle, upload.job_id) == ("upload", "file-1")
    assert (batch.lifecycle, batch.job_id) == ("batch", "batch-1")
    assert server.to("POST", "/v1/batches")[0].json() == {
        "input_file_id": "file-1",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    assert b'name="purpose"' in server.to("POST", "/v1/files")[0].body


@pytest.mark.anyio
async def test_a_chain_passes_on_an_input_the_caller_gave_the_first_job() -> None:
    """{"input": "endpoint"} gives the batch the upload's in:none input, not its default."""
    spec = _recipe("chain")
    with scripted(_CHAIN_SCRIPTS) as (server, url):
        async with _engine(spec, url, {"BATCHES_TOKEN": "tok-b"}) as engine:
            job = await engine.submit(
                spec, "upload", endpoint="/v1/embeddings", file=("in.jsonl", b"{}")
            )
            result = await _wait(engine, job)

    assert result.state == "completed"
    assert server.to("POST", "/v1/batches")[0].json()["endpoint"] == "/v1/embeddings"


# -- 8. webhooks-ready -------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("ref", ["order-77", None])
async def test_webhooks_ready_sends_the_callback_and_a_reference_then_polls(
    ref: str | None,
) -> None:
    """The submit body carries callback URL and reference (the caller's or a generated one)."""
    spec = _recipe("webhooks-ready")
    scripts: dict[str, list[Step]] = {
        "POST /v1/renders": [(200, {"id": "r1", "status": "queued"}, {})],
        "GET /v1/renders/r1": [
            (200, {"status": "rendering"}, {}),
            (200, {"status": "done"}, {}),
        ],
    }
    inputs = {"scene": "s1", "callback_url": "https://me.example/hooks/renders"}
    if ref is not None:
        inputs["ref"] = ref
    with scripted(scripts) as (server, url):
        async with AsyncEngine(
            base_urls={spec.name: url},
            env={"RENDERS_TOKEN": "tok-re"},
            time_scale=0.001,
            seed=1,
        ) as engine:
            job = await engine.submit(spec, "render", inputs)
            result = await _wait(engine, job)

    body = server.seen[0].json()
    assert result.state == "done"
    assert body["scene"] == "s1"
    assert body["webhook"] == {
        "url": "https://me.example/hooks/renders",
        "events": ["render.completed", "render.failed"],
    }
    generated = body["client_reference"]
    assert generated == ref if ref is not None else len(generated) >= 16
