"""Making job stores for tests that need one on disk, through the store's own API."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from engine._core.state import JobState
from engine.stores import open_store


def make_store(url: str | os.PathLike[str], *, jobs: Sequence[JobState] = ()) -> None:
    """Create (or open) the store at ``url`` and add ``jobs`` to it, free for any driver."""

    async def create() -> None:
        store = open_store(url)
        try:
            await store.open("tests:0:maker", lease=30.0, now=0.0)
            if jobs:
                await store.add_many([(job, ()) for job in jobs], hold=False, now=0.0)
            await store.release()
        finally:
            await store.close()

    asyncio.run(create())
