"""Every fault kind the simulators inject is survived by the engine over loopback."""

from __future__ import annotations

import pytest

from engine import AsyncEngine
from engine.simulators import create_simulator, parse_faults, serving

MODEL = "5a7e1d34-18c0-4a8e-bf4e-7f7a5d1f0c22"
SCALE = 0.05


@pytest.mark.anyio
@pytest.mark.parametrize(
    "kind",
    [
        "429",
        "500",
        "502",
        "503",
        "reset",
        "slow",
        "malformed",
        "html",
        "unknown_status",
        "backwards",
    ],
)
async def test_fault_on_polls_is_survived(kind: str) -> None:
    """With the fault on the first two polls, the job still ends Processed and the fault fired."""
    app = create_simulator(
        "mindee", seed=3, time_scale=SCALE, faults=parse_faults(f"{kind}@1+2,delay=0.1")
    )
    with serving(app) as server:
        engine = AsyncEngine(
            base_urls={"mindee": server.url},
            env={"MINDEE_V2_API_KEY": "sim-key"},
            time_scale=SCALE,
        )
        events: list[str] = []
        engine.on("*", lambda e: events.append(e.name))
        async with engine:
            job = await engine.submit(
                "mindee",
                "inference",
                model_id=MODEL,
                url="https://x.example/sim-processed.pdf",
            )
            result = await engine.wait(job, timeout=30)

    assert result.state == "Processed"
    assert app.counts[kind] == 2
    assert "errored" not in events
