"""``enqueue`` and ``worker``: an application submits into a store; workers elsewhere drive it.

``enqueue`` sends the submit (its intent committed first, so a crash cannot
lose a job the service created), commits the job id and its first state, and
prints the job's key; it polls nothing. ``worker`` drives every due job of a
store until SIGTERM or SIGINT, then finishes the requests in flight, lets its
jobs go and exits 0; ``--metrics-port`` serves its counters on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import statistics
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TextIO

from statemachines import load_spec

from ._checks import UsageError, lifecycle_of, parse_inputs
from ._commands import ExitName
from ._progress import Progress

if TYPE_CHECKING:
    from engine import Worker

__all__ = ["cmd_enqueue", "cmd_worker"]


def cmd_enqueue(args: argparse.Namespace, out: TextIO, err: TextIO) -> ExitName:
    """Submit a job into a store for workers to drive; print its key."""
    spec = load_spec(args.spec)
    lifecycle = lifecycle_of(spec, args.lifecycle)
    if lifecycle.submit is None:
        msg = f"{spec.name}/{lifecycle.name} has no submit; nothing to enqueue"
        raise UsageError(msg)
    inputs = parse_inputs(spec, lifecycle, args.input, args.file, submit=True)
    return asyncio.run(_enqueue(args, spec, inputs, out, err))


async def _enqueue(
    args: argparse.Namespace,
    spec: object,
    inputs: dict[str, object],
    out: TextIO,
    err: TextIO,
) -> ExitName:
    from engine import AsyncEngine, RemoteError  # noqa: PLC0415 - `statepoll specs` does not load the engine
    from statemachines import Spec  # noqa: PLC0415 - typing only

    assert isinstance(spec, Spec)  # noqa: S101 - loaded by the caller
    engine = AsyncEngine(
        [spec],
        store=args.store,
        base_urls={spec.name: args.base_url} if args.base_url else None,
        time_scale=args.time_scale,
        take_over=False,
    )
    async with engine:
        try:
            ref = await engine.enqueue(
                spec,
                args.lifecycle,
                inputs,
                deadline=args.deadline,
                max_attempts=args.max_attempts,
            )
        except RemoteError as exc:
            print(f"statepoll: {exc}", file=err)
            return "remote"
    print(ref.key, file=out)
    print(
        f"statepoll: enqueued {ref.service}/{ref.lifecycle} job {ref.job_id} as {ref.key}; "
        f"a worker drives it: statepoll worker --store {args.store}",
        file=err,
    )
    return "ok"


def cmd_worker(args: argparse.Namespace, out: TextIO, err: TextIO) -> ExitName:
    """Drive every due job of a store until SIGTERM or SIGINT, then exit 0."""
    return asyncio.run(_work(args, out, err))


async def _work(args: argparse.Namespace, out: TextIO, err: TextIO) -> ExitName:
    from engine import Worker  # noqa: PLC0415 - `statepoll specs` does not load the engine
    from engine.stores import shown_url  # noqa: PLC0415 - as above

    worker = Worker(
        args.store,
        specs=[load_spec(s) for s in args.spec],
        concurrency=args.concurrency,
        lease=args.lease,
        time_scale=args.time_scale,
        audit=args.audit,
    )
    progress = Progress(out)
    progress.attach(worker)
    # A worker runs unattended: what goes wrong (a store it cannot reach, a
    # job taken over, a hook that raised) goes to stderr, one line each.
    handler = logging.StreamHandler(err)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(logging.WARNING)
    logging.getLogger("statepoll").addHandler(handler)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    print(
        f"statepoll worker {worker.owner} on {shown_url(args.store)}",
        file=err,
        flush=True,
    )
    try:
        async with _metrics(worker, args.metrics_port, err):
            await worker.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        progress.close()
        logging.getLogger("statepoll").removeHandler(handler)
    print(f"statepoll worker stopped after {worker.steps} steps", file=err)
    return "ok"


@contextlib.asynccontextmanager
async def _metrics(
    worker: Worker, port: int | None, err: TextIO
) -> AsyncIterator[None]:
    """Serve the worker's counters (Prometheus text format) on 127.0.0.1, if asked."""
    if port is None:
        yield
        return

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = _exposition(worker).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(answer, "127.0.0.1", port)
    except OSError as exc:
        msg = f"--metrics-port {port}: cannot listen on 127.0.0.1 ({exc.strerror})"
        raise UsageError(msg) from None
    bound = server.sockets[0].getsockname()[1]
    print(f"statepoll worker metrics on http://127.0.0.1:{bound}/metrics", file=err)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


def _exposition(worker: Worker) -> str:
    lateness = sorted(worker.lateness)

    def quantile(q: float) -> float:
        return (
            lateness[min(len(lateness) - 1, int(q * len(lateness)))]
            if lateness
            else 0.0
        )

    lines = [
        "# HELP statepoll_worker_steps_total Steps committed by this worker.",
        "# TYPE statepoll_worker_steps_total counter",
        f"statepoll_worker_steps_total {worker.steps}",
        "# HELP statepoll_worker_in_flight Jobs this worker is stepping now.",
        "# TYPE statepoll_worker_in_flight gauge",
        f"statepoll_worker_in_flight {worker.in_flight}",
        "# HELP statepoll_worker_claim_lateness_seconds How late claimed jobs were (last 10,000).",
        "# TYPE statepoll_worker_claim_lateness_seconds summary",
    ]
    for q in (0.5, 0.99):
        lines.append(
            f'statepoll_worker_claim_lateness_seconds{{quantile="{q}"}} {quantile(q):.6f}'
        )
    mean = statistics.fmean(lateness) if lateness else 0.0
    lines.append(
        f"statepoll_worker_claim_lateness_seconds_sum {mean * len(lateness):.6f}"
    )
    lines.append(f"statepoll_worker_claim_lateness_seconds_count {len(lateness)}")
    return "\n".join(lines) + "\n"
