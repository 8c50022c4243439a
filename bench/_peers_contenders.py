"""The pollers ``peers.py`` puts side by side, one run each in a fresh process.

    python bench/_peers_contenders.py NAME --url URL --jobs N --in-flight C --timeline S,L,P,G

runs contender NAME against ``_peers_server.py`` at URL and prints one JSON
line of measurements (``_peers_run.Run``). Each contender is written the way
its library's users write it, on the same workload: every job's status URL
polled once a second (the next poll one second after the last answer), the
``api-version`` query and the key header on every request, the JSON body
parsed and its ``status`` read; a job ends on a terminal status. The asyncio
contenders share one connection limit (``--in-flight``, statepoll's default
of 64); the thread-per-job contenders get a connection pool as large as the
number of jobs, so that no thread waits for a connection or opens a new one
per poll (their libraries' default pools of 10 would make them reconnect).
Each library is imported inside its contender, so a run loads only its own.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import _peers_workload as work
from _peers_run import Run

SPEC = Path(__file__).with_name("peers_spec.json")


# -- asyncio, one task per job ------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer read to Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.need = -1
        self.body_at = 0
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            at = self.buffer.find(b"Content-Length: ", 0, end) + 16
            length = int(self.buffer[at : self.buffer.find(b"\r", at)])
            self.status = int(self.buffer[9:12])
            self.body_at, self.need = end + 4, end + 4 + length
        if len(self.buffer) >= self.need and self.waiter is not None:
            body = bytes(self.buffer[self.body_at : self.need])
            del self.buffer[: self.need]
            self.need = -1
            self.waiter.set_result((self.status, body))
            self.waiter = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionError("closed"))

    async def get(self, request: bytes) -> tuple[int, bytes]:
        """Send one request; return the answer's status and body."""
        waiter = self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return await waiter


class _Pool:
    """Up to ``size`` connections to one server, opened as needed."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.idle: asyncio.Queue[_Connection] = asyncio.Queue()
        self.opened: list[_Connection] = []
        self.count = 0

    async def take(self) -> _Connection:
        """Return an idle connection, a new one while under ``size``, or wait for one."""
        if self.idle.empty() and self.count < self.size:
            return await self.connect()
        return await self.idle.get()

    async def connect(self) -> _Connection:
        """Open one more connection (counted before it is open: others may ask meanwhile)."""
        self.count += 1
        loop = asyncio.get_running_loop()
        _transport, connection = await loop.create_connection(
            _Connection, self.host, self.port
        )
        self.opened.append(connection)
        return connection

    async def get(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request`` on a pooled connection; a broken one is replaced (and raises)."""
        connection = await self.take()
        try:
            return await connection.get(request)
        except OSError:
            self.opened.remove(connection)
            self.count -= 1
            connection = await self.connect()
            raise
        finally:
            self.idle.put_nowait(connection)

    def close(self) -> None:
        """Close every connection."""
        for connection in self.opened:
            if connection.transport is not None:
                connection.transport.close()


def bare_socket(run: Run) -> None:
    """Hand-rolled HTTP/1.1 keep-alive GETs on asyncio protocols: the floor.

    Up to ``in_flight`` connections, opened as needed; each job's task takes
    an idle one, writes its prebuilt request, waits for the answer (read up to
    its Content-Length: this server's responses only), puts the connection
    back, parses the JSON.
    """
    host, port = run.url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in work.HEADERS.items())

    async def main() -> None:
        pool = _Pool(host, int(port), run.in_flight)

        async def poll(i: int) -> None:
            request = (
                f"GET {work.status_path(i)}?api-version={work.API_VERSION} HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\n{head}\r\n"
            ).encode()
            while True:
                try:
                    status, body = await pool.get(request)
                except OSError:
                    status, body = 0, b""
                if status == 200:
                    if json.loads(body)["status"] in work.TERMINAL:
                        run.saw_terminal(i)
                        return
                else:
                    run.error()
                await asyncio.sleep(1)

        await _drive_tasks(run, poll)
        pool.close()

    asyncio.run(main())


def aiohttp_loop(run: Run) -> None:
    """One task per job, ``asyncio.sleep(1)`` between polls, one ``aiohttp.ClientSession``."""
    import aiohttp

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=run.in_flight)
        async with aiohttp.ClientSession(
            connector=connector, headers=work.HEADERS
        ) as session:

            async def poll(i: int) -> None:
                url = run.url_of(i)
                while True:
                    try:
                        async with session.get(url, params=work.PARAMS) as response:
                            if response.status == 200:
                                body = await response.json()
                                if body["status"] in work.TERMINAL:
                                    run.saw_terminal(i)
                                    return
                            else:
                                run.error()
                    except aiohttp.ClientError:
                        run.error()
                    await asyncio.sleep(1)

            await _drive_tasks(run, poll)

    asyncio.run(main())


def tenacity_aiohttp(run: Run) -> None:
    """Poll with tenacity's ``@retry`` on an aiohttp status read: retried while not terminal, 1 s apart.

    tenacity rather than polling2 because it is the polling decorator of
    asyncio code (``@retry`` on a coroutine function sleeps with
    ``asyncio.sleep``) and the most used of the two; polling2 is sync only,
    so it runs as one thread per job (the ``polling2 threads`` contender).
    """
    import aiohttp
    from tenacity import (
        retry,
        retry_if_exception_type,
        retry_if_result,
        stop_after_delay,
        wait_fixed,
    )

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=run.in_flight)
        async with aiohttp.ClientSession(
            connector=connector, headers=work.HEADERS
        ) as session:

            @retry(
                retry=retry_if_exception_type(aiohttp.ClientError)
                | retry_if_result(lambda status: status not in work.TERMINAL),
                wait=wait_fixed(1),
                stop=stop_after_delay(run.timeline.deadline + 5),
            )
            async def batch_status(url: str) -> str:
                try:
                    async with session.get(url, params=work.PARAMS) as response:
                        response.raise_for_status()
                        return (await response.json())["status"]  # type: ignore[no-any-return]
                except aiohttp.ClientError:
                    run.error()
                    raise

            async def poll(i: int) -> None:
                await batch_status(run.url_of(i))
                run.saw_terminal(i)

            await _drive_tasks(run, poll)

    asyncio.run(main())


def httpx_semaphore(run: Run) -> None:
    """One task per job over one ``httpx.AsyncClient(limits=…)``, a semaphore bounding in-flight requests.

    httpx's own transport (httpcore). The semaphore matches the pool's size,
    so no request waits in the pool (with the default pool timeout of 5 s and
    more jobs than connections, requests queued in the pool time out).
    """
    import httpx

    async def main() -> None:
        limits = httpx.Limits(
            max_connections=run.in_flight, max_keepalive_connections=run.in_flight
        )
        gate = asyncio.Semaphore(run.in_flight)
        async with httpx.AsyncClient(
            limits=limits, headers=work.HEADERS, timeout=30
        ) as client:

            async def poll(i: int) -> None:
                url = run.url_of(i)
                while True:
                    try:
                        async with gate:
                            response = await client.get(url, params=work.PARAMS)
                        if response.status_code == 200:
                            if response.json()["status"] in work.TERMINAL:
                                run.saw_terminal(i)
                                return
                        else:
                            run.error()
                    except httpx.HTTPError:
                        run.error()
                    await asyncio.sleep(1)

            await _drive_tasks(run, poll)

    asyncio.run(main())


async def _drive_tasks(run: Run, poll: Callable[[int], Any]) -> None:
    tasks: set[asyncio.Task[None]] = set()
    run.begin()
    await run.start_async(lambda i: tasks.add(asyncio.create_task(poll(i))))
    await run.wait_async()
    run.end()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def statepoll(run: Run, *, transport: str = "default") -> None:
    """``AsyncEngine.track(spec, "batch", id)`` per job; a ``completed`` hook records the end.

    Public API only. ``transport="default"``: the engine builds its own client
    (httpx-aiohttp's transport when the ``fast`` extra is installed);
    ``"httpx"``: an ``httpx.AsyncClient`` on httpx's own transport is passed in.
    """
    import httpx

    from engine import AsyncEngine
    from statemachines import load_spec

    # The spec's service limit is the run's in-flight limit, as for every
    # asyncio contender (a spec's default is 16; the built-in Azure spec's 8).
    document = json.loads(SPEC.read_text())
    document["service"]["max_in_flight"] = run.in_flight
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, SPEC.name)
        path.write_text(json.dumps(document))
        spec = load_spec(str(path))

    async def main() -> None:
        client = None
        if transport == "httpx":
            limits = httpx.Limits(
                max_connections=run.in_flight,
                max_keepalive_connections=run.in_flight,
            )
            client = httpx.AsyncClient(limits=limits, timeout=30)
        engine = AsyncEngine(
            client=client,
            base_urls={"bench-azure": run.url},
            env={"BENCH_AZURE_KEY": work.KEY},
            max_in_flight=run.in_flight,
        )

        def completed(event: Any) -> None:
            if event.outcome == "success":
                run.saw_terminal(work.job_index(event.job_id))
            else:
                run.error()

        engine.on("completed", completed, service="bench-azure")
        engine.on("errored", lambda _event: run.error(), service="bench-azure")
        engine.on("timed_out", lambda _event: run.error(), service="bench-azure")
        async with engine:
            run.begin()
            await run.start_async(lambda i: engine.track(spec, "batch", work.job_id(i)))
            await run.wait_async()
            run.end()
        if client is not None:
            await client.aclose()

    asyncio.run(main())


# -- one thread per job ---------------------------------------------------------------


def _requests_session(run: Run) -> Any:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    # What azure-core's RequestsTransport mounts, with a pool as large as the
    # number of threads instead of requests' default of 10.
    adapter = HTTPAdapter(
        pool_connections=1,
        pool_maxsize=run.jobs,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    return session


def _drive_threads(run: Run, target: Callable[[int], None]) -> None:
    run.begin()
    run.start_threads(
        lambda i: threading.Thread(target=target, args=(i,), daemon=True).start()
    )
    run.wait_threads()
    run.end()


def polling2_threads(run: Run) -> None:
    """``polling2.poll(step=1)`` on a ``requests`` GET, one thread per job, one shared session."""
    import polling2
    import requests

    session = _requests_session(run)
    session.headers.update(work.HEADERS)

    def job(i: int) -> None:
        url = run.url_of(i)

        def batch_status() -> str | None:
            try:
                response = session.get(url, params=work.PARAMS, timeout=30)
            except requests.RequestException:
                run.error()
                raise
            if response.status_code != 200:
                run.error()
                return None
            return response.json()["status"]  # type: ignore[no-any-return]

        try:
            polling2.poll(
                batch_status,
                step=1,
                check_success=lambda status: status in work.TERMINAL,
                timeout=run.timeline.deadline + 5,
                ignore_exceptions=(requests.RequestException,),
            )
        except polling2.TimeoutException:
            return
        run.saw_terminal(i)

    _drive_threads(run, job)


def botocore_waiter(run: Run) -> None:
    """Wait with botocore's ``Waiter``, built as ``client.get_waiter(name)`` builds it.

    ``create_waiter_with_client`` (what ``get_waiter`` calls) over a client
    whose ``GetBatch`` operation sends the GET through botocore's own HTTP
    layer (``URLLib3Session``, ``AWSRequest``): the waiter machinery and the
    transport are botocore's; the AWS request serializer and signer are not
    involved, as they would not be for a non-AWS API. One thread per job.
    """
    from botocore.awsrequest import AWSRequest
    from botocore.exceptions import ClientError, HTTPClientError, WaiterError
    from botocore.hooks import HierarchicalEmitter
    from botocore.httpsession import URLLib3Session
    from botocore.model import ServiceModel
    from botocore.waiter import WaiterModel, create_waiter_with_client

    http = URLLib3Session(max_pool_connections=run.jobs, timeout=30)
    terminal_acceptors = [
        {"state": "failure", "matcher": "path", "argument": "status", "expected": s}
        for s in ("Failed", "Cancelled", "ValidationFailed")
    ]
    waiters = WaiterModel(
        {
            "version": 2,
            "waiters": {
                "BatchSucceeded": {
                    "operation": "GetBatch",
                    "delay": 1,
                    "maxAttempts": int(run.timeline.deadline) + 5,
                    "acceptors": [
                        {
                            "state": "success",
                            "matcher": "path",
                            "argument": "status",
                            "expected": "Succeeded",
                        },
                        *terminal_acceptors,
                    ],
                }
            },
        }
    )

    class TranslatorClient:
        """The parts of a botocore client a waiter uses: ``meta`` and the operation."""

        meta = SimpleNamespace(
            events=HierarchicalEmitter(),
            service_model=ServiceModel(
                {
                    "metadata": {
                        "serviceFullName": "Azure Document Translation",
                        "serviceId": "Translator",
                        "protocol": "rest-json",
                    },
                    "operations": {},
                    "shapes": {},
                },
                service_name="translator",
            ),
        )

        def get_batch(self, BatchId: str) -> dict[str, Any]:  # noqa: N803 - botocore's operation style
            request = AWSRequest(
                method="GET",
                url=run.url + work.PATH_PREFIX + BatchId,
                headers=work.HEADERS,
                params=work.PARAMS,
            ).prepare()
            try:
                response = http.send(request)
            except HTTPClientError as exc:
                run.error()
                error = {"Error": {"Code": "HTTPClientError", "Message": str(exc)}}
                raise ClientError(error, "GetBatch") from exc  # type: ignore[arg-type]
            if response.status_code != 200:
                run.error()
                error = {"Error": {"Code": str(response.status_code), "Message": ""}}
                raise ClientError(error, "GetBatch")  # type: ignore[arg-type]
            return json.loads(response.content)  # type: ignore[no-any-return]

    client = TranslatorClient()

    def job(i: int) -> None:
        waiter = create_waiter_with_client("BatchSucceeded", waiters, client)
        try:
            waiter.wait(BatchId=work.job_id(i))
        except WaiterError:
            run.error()
            return
        run.saw_terminal(i)

    _drive_threads(run, job)


def azure_lropoller(run: Run) -> None:
    """azure-core's ``LROPoller`` with ``LROBasePolling(timeout=1)``, one poller thread per job.

    The pipeline is a generated Azure client's (the policies of
    azure-ai-translation-document's ``_client.py``, the key in
    ``AzureKeyCredentialPolicy``), over ``RequestsTransport``. Each job resumes
    from a continuation token, as ``begin_translation(continuation_token=…)``
    does: ``LROPoller.from_continuation_token``; ``OperationResourcePolling``
    finds the status URL in the token's ``Operation-Location``. The tokens
    are made before the run from one real submit's token, with each batch's
    Operation-Location put in (azure-core 1.41's token is base64 JSON).
    """
    from azure.core import PipelineClient
    from azure.core.credentials import AzureKeyCredential
    from azure.core.pipeline import policies
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.polling import LROPoller
    from azure.core.polling.base_polling import LROBasePolling
    from azure.core.rest import HttpRequest

    session = _requests_session(run)
    client: PipelineClient[Any, Any] = PipelineClient(
        base_url=run.url,
        policies=[
            policies.RequestIdPolicy(),
            policies.HeadersPolicy({"Accept": "application/json"}),
            policies.UserAgentPolicy(sdk_moniker="ai-translation-document/1.1.0"),
            policies.ProxyPolicy(),
            policies.ContentDecodePolicy(),
            policies.RedirectPolicy(),
            policies.RetryPolicy(),
            policies.AzureKeyCredentialPolicy(
                AzureKeyCredential(work.KEY), work.KEY_HEADER
            ),
            policies.CustomHookPolicy(),
            policies.NetworkTraceLoggingPolicy(),
            policies.DistributedTracingPolicy(),
            policies.SensitiveHeaderCleanupPolicy(),
            policies.HttpLoggingPolicy(),
        ],
        transport=RequestsTransport(session=session, session_owner=False),
    )

    def deserialize(pipeline_response: Any) -> Any:
        return pipeline_response.http_response.json()

    submitted = client.send_request(
        HttpRequest("POST", run.url + work.PATH_PREFIX.rstrip("/"), params=work.PARAMS),
        _return_pipeline_response=True,  # type: ignore[call-arg]
    )
    first = LROBasePolling(timeout=1)
    first.initialize(client, submitted, deserialize)
    token = json.loads(base64.b64decode(first.get_continuation_token()))
    headers = token["data"]["response"]["headers"]
    location_key = next(k for k in headers if k.lower() == "operation-location")
    tokens = []
    for i in range(run.jobs):
        headers[location_key] = f"{run.url_of(i)}?api-version={work.API_VERSION}"
        tokens.append(base64.b64encode(json.dumps(token).encode()).decode())
    pollers: list[Any] = []

    def start(i: int) -> None:
        poller = LROPoller.from_continuation_token(
            LROBasePolling(timeout=1),
            tokens[i],
            client=client,
            deserialization_callback=deserialize,
        )

        def done(method: Any, i: int = i) -> None:
            if method.status().lower() == "succeeded":
                run.saw_terminal(i)
            else:
                run.error()

        poller.add_done_callback(done)
        pollers.append(poller)

    run.begin()
    run.start_threads(start)
    run.wait_threads()
    run.end()


CONTENDERS: dict[str, Callable[[Run], None]] = {
    "bare socket": bare_socket,
    "aiohttp loop": aiohttp_loop,
    "tenacity + aiohttp": tenacity_aiohttp,
    "httpx + semaphore": httpx_semaphore,
    "polling2 threads": polling2_threads,
    "botocore waiter threads": botocore_waiter,
    "azure-core LROPoller": azure_lropoller,
    "statepoll": statepoll,
    "statepoll, httpx only": lambda run: statepoll(run, transport="httpx"),
}
#: Contenders that hold one OS thread per job.
THREADED = frozenset(
    {"polling2 threads", "botocore waiter threads", "azure-core LROPoller"}
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(CONTENDERS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument(
        "--timeline",
        required=True,
        help="stagger,lead,spread,grace in seconds (see _peers_workload.Timeline)",
    )
    args = parser.parse_args()
    stagger, lead, spread, grace = (float(x) for x in args.timeline.split(","))
    work.raise_open_files()
    run = Run(
        args.url, args.jobs, args.in_flight, work.Timeline(stagger, lead, spread, grace)
    )
    CONTENDERS[args.name](run)
    print(json.dumps(run.result()), flush=True)
    # Thread-per-job contenders may leave threads polling past the deadline:
    # exit without waiting for them (they are daemons; nothing is left to flush).
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
