"""A process that enqueues many OneClickDZ jobs at once into a store, to be killed mid-way.

Usage: ``python -m tests.integration._submitter STORE BASE_URL LIFECYCLE COUNT
IN_FLIGHT SCALE``. It prints ``ready`` once its engine is open, then keeps
``IN_FLIGHT`` submissions on the wire until ``COUNT`` are done, and prints
each job's key as it is enqueued. The tests kill it with SIGKILL while
submissions are in flight.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from engine import AsyncEngine

#: Each lifecycle's inputs for job ``n``: outcomes that end within seconds (a
#: top-up's ``ref`` is left to the engine, which commits it before sending).
INPUTS: dict[str, Callable[[int], dict[str, Any]]] = {
    "mobile_topup": lambda n: {
        "plan_code": "PREPAID_MOBILIS",
        "MSSIDN": f"06612{n % 1000:03d}01",
        "amount": 50,
    },
    "gift_card": lambda _: {
        "productId": "5f0c0ffee0ddba11c0ffee01",
        "typeId": "type_001",
        "quantity": 1,
    },
}


async def main(  # noqa: PLR0917 - the command line's arguments, in order
    store: str, url: str, lifecycle: str, count: int, in_flight: int, scale: float
) -> None:
    """Enqueue ``count`` jobs, ``in_flight`` at a time."""
    engine = AsyncEngine(
        store=store,
        base_urls={"oneclickdz": url},
        env={"ONECLICKDZ_ACCESS_TOKEN": "sim-key"},
        time_scale=scale,
        take_over=False,
        # Killed, its intents are free this soon (on its own host, at once).
        lease=1.0,
    )
    slots = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        async with slots:
            ref = await engine.enqueue("oneclickdz", lifecycle, INPUTS[lifecycle](n))
            print(ref.key, flush=True)  # noqa: T201 - the test reads it

    async with engine:
        print("ready", flush=True)  # noqa: T201 - the test reads it
        await asyncio.gather(*(one(n) for n in range(count)))


if __name__ == "__main__":
    store, url, lifecycle, count, in_flight, scale = sys.argv[1:]
    asyncio.run(main(store, url, lifecycle, int(count), int(in_flight), float(scale)))
