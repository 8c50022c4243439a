"""``statepoll demo``: every built-in lifecycle against its simulator, live.

The three simulators run in-process on 127.0.0.1. Each service runs on a
shortened clock (the simulator's ``time_scale`` and the engine's, paired), so
that minutes-long and hours-long waits of the real services pass in seconds
while every documented state still shows up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, Final, TextIO

import attrs

from engine import AsyncEngine, JobError, JobRef, WaitTimeout
from engine.simulators import ServerHandle, create_simulator, serve

from ._progress import Progress

__all__ = ["DEMO_JOBS", "DemoJob", "run_demo"]

DEMO_KEY: Final = "sim-key"

#: How much shorter each service's durations are in the demo. OneClickDZ's
#: long tail (UNKNOWN_ERROR and QUEUED resolve in hours) needs the most: at
#: 1/40,000 its 6-hourly re-checks come every 0.54 s and the demo ends in
#: about 4 s. Engine and simulators share each scale, so every documented
#: state still shows up in the same order.
SCALES: Final = {"mindee": 0.2, "oneclickdz": 1 / 40_000, "azure-translator": 0.05}

CREDENTIAL_ENV: Final = {
    "mindee": "MINDEE_V2_API_KEY",
    "oneclickdz": "ONECLICKDZ_ACCESS_TOKEN",
    "azure-translator": "AZURE_TRANSLATOR_KEY",
}

_MODEL = "5a7e1d34-18c0-4a8e-bf4e-7f7a5d1f0c22"
_GIFT_PRODUCT = "5f0c0ffee0ddba11c0ffee01"


def _azure_inputs(source: str) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "source": {
                    "sourceUrl": source,
                    "language": "en",
                    "storageSource": "AzureBlob",
                },
                "targets": [
                    {
                        "targetUrl": "https://store.blob.core.windows.net/target-fr",
                        "language": "fr",
                    }
                ],
                "storageType": "Folder",
            }
        ]
    }


@attrs.frozen
class DemoJob:
    """One demo job: what to submit and the terminal state it must reach."""

    title: str
    service: str
    lifecycle: str
    inputs: dict[str, Any] = attrs.field(hash=False)
    expect: str
    cancel: bool = False


DEMO_JOBS: Final = (
    DemoJob(
        "invoice processed",
        "mindee",
        "inference",
        {
            "model_id": _MODEL,
            "file": ("sim-processed-invoice.pdf", b"%PDF-1.4 demo", "application/pdf"),
        },
        "Processed",
    ),
    DemoJob(
        "scan fails",
        "mindee",
        "inference",
        {
            "model_id": _MODEL,
            "file": ("sim-failed-scan.jpg", b"\xff\xd8 demo", "image/jpeg"),
        },
        "Failed",
    ),
    DemoJob(
        "top-up fulfilled",
        "oneclickdz",
        "mobile_topup",
        {"plan_code": "PREPAID_MOBILIS", "MSSIDN": "0661234501", "amount": 300},
        "FULFILLED",
    ),
    DemoJob(
        "top-up refunded",
        "oneclickdz",
        "mobile_topup",
        {"plan_code": "PREPAID_MOBILIS", "MSSIDN": "0661234502", "amount": 300},
        "REFUNDED",
    ),
    DemoJob(
        "top-up unknown, then fulfilled",
        "oneclickdz",
        "mobile_topup",
        {"plan_code": "PREPAID_MOBILIS", "MSSIDN": "0661234503", "amount": 300},
        "FULFILLED",
    ),
    DemoJob(
        "ADSL card fulfilled",
        "oneclickdz",
        "internet_topup",
        {"type": "ADSL", "number": "031234501", "value": 1000},
        "FULFILLED",
    ),
    DemoJob(
        "ADSL card queued, then fulfilled",
        "oneclickdz",
        "internet_topup",
        {"type": "ADSL", "number": "031234503", "value": 1000},
        "FULFILLED",
    ),
    DemoJob(
        "gift cards fulfilled",
        "oneclickdz",
        "gift_card",
        {"productId": _GIFT_PRODUCT, "typeId": "type_001", "quantity": 2},
        "FULFILLED",
    ),
    DemoJob(
        "gift cards partly filled",
        "oneclickdz",
        "gift_card",
        {"productId": _GIFT_PRODUCT, "typeId": "type_002", "quantity": 3},
        "PARTIALLY_FILLED",
    ),
    DemoJob(
        "batch of 120 documents (3 pages)",
        "azure-translator",
        "batch",
        _azure_inputs("https://store.blob.core.windows.net/source?docs=120&faildocs=3"),
        "Succeeded",
    ),
    DemoJob(
        "batch cancelled",
        "azure-translator",
        "batch",
        _azure_inputs("https://store.blob.core.windows.net/source?docs=8"),
        "Cancelled",
        cancel=True,
    ),
)


@contextlib.contextmanager
def _simulators(seed: int) -> Iterator[dict[str, ServerHandle]]:
    handles: dict[str, ServerHandle] = {}
    try:
        for service, scale in SCALES.items():
            app = create_simulator(
                service, seed=seed, time_scale=scale, api_key=DEMO_KEY
            )
            handles[service] = serve(app)
        yield handles
    finally:
        for handle in handles.values():
            handle.close()


def run_demo(
    *,
    out: TextIO,
    audit: str | None = None,
    store: str | None = None,
    seed: int = 7,
) -> bool:
    """Run every demo job; return whether each reached its expected state."""
    with _simulators(seed) as handles:
        for service, handle in handles.items():
            print(f"simulator {service:<17} {handle.url}", file=out)
        return asyncio.run(
            _drive(handles, out=out, audit=audit, store=store, seed=seed)
        )


async def _drive(
    handles: dict[str, ServerHandle],
    *,
    out: TextIO,
    audit: str | None,
    store: str | None,
    seed: int,
) -> bool:
    env = dict.fromkeys(CREDENTIAL_ENV.values(), DEMO_KEY)
    engine = AsyncEngine(
        audit=audit,
        store=store,
        base_urls={s: h.url for s, h in handles.items()},
        env=env,
        time_scale=dict(SCALES),
        seed=seed,
    )
    progress = Progress(out)
    progress.attach(engine)
    failures = 0
    try:
        await engine.open()
        refs: list[tuple[DemoJob, JobRef]] = []
        for job in DEMO_JOBS:
            refs.append(
                (job, await engine.submit(job.service, job.lifecycle, job.inputs))
            )
        for job, ref in refs:
            if job.cancel:
                accepted = await engine.cancel(ref)
                progress.line(
                    f"{ref.service}/{ref.lifecycle} {ref.job_id[:12]} cancel {'accepted' if accepted else 'refused'}"
                )
        for job, ref in refs:
            try:
                result = await engine.wait(ref, timeout=120)
                state = result.state
                extra = f", {len(result.items)} documents" if result.items else ""
            except (JobError, WaitTimeout) as exc:
                state = f"{type(exc).__name__}: {exc}"
                extra = ""
            ok = state == job.expect
            failures += not ok
            progress.flush()
            mark = "ok  " if ok else "FAIL"
            print(
                f"{mark} {job.service}/{job.lifecycle}: {job.title}: {state}{extra} (expected {job.expect})",
                file=out,
            )
    finally:
        progress.close()
        await engine.aclose()
    print(
        f"\n{len(DEMO_JOBS) - failures}/{len(DEMO_JOBS)} jobs ended as expected",
        file=out,
    )
    return not failures
