"""The engine against the OneClickDZ simulator, over a real socket on 127.0.0.1.

Outcomes are chosen with the simulator's triggers: the last two digits of the
mobile ``MSSIDN`` or internet ``number`` (01 fulfilled, 02 refunded, 03 and 04
through the provisional state to fulfilled / refunded) and the gift card
``typeId`` (type_001 fulfilled, type_002 partially filled, type_003 refunded).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import RemoteError
from engine.audit import read_records, verify_log
from engine.simulators import ServerHandle
from statemachines import Outcome
from tests.integration.conftest import EventLog, engine_for, simulator

# Seconds-long states last well under a millisecond to a few; the 5 s poll
# interval becomes 0.5 ms and the 300 s deadline 30 ms.
SCALE = 1e-4
# The long tail (UNKNOWN_ERROR resolved in 1-12 h, QUEUED in 12-48 h) at this
# scale lasts 0.04-0.43 s and 0.43-1.73 s; hourly / six-hourly re-checks become
# 36 ms / 216 ms, and the deadlines (26 h, 50 h) still outlast the resolution.
LONG_TAIL_SCALE = 1e-5
TIMEOUT = 10.0
PRODUCT = "5f0c0ffee0ddba11c0ffee01"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    """Serve one OneClickDZ simulator, 10,000 times faster, for the module."""
    with simulator("oneclickdz", seed=21, time_scale=SCALE) as handle:
        yield handle


@pytest.fixture(scope="module")
def long_tail_server() -> Iterator[ServerHandle]:
    """Serve one OneClickDZ simulator 100,000 times faster, for the hour-long states."""
    with simulator("oneclickdz", seed=22, time_scale=LONG_TAIL_SCALE) as handle:
        yield handle


def _mobile(suffix: str) -> dict[str, Any]:
    return {
        "plan_code": "PREPAID_MOBILIS",
        "MSSIDN": f"06612345{suffix}",
        "amount": 100,
    }


def _internet(kind: str, suffix: str) -> dict[str, Any]:
    number = f"0312345{suffix}" if kind == "ADSL" else f"2136612345{suffix}"
    return {"type": kind, "number": number, "value": 1000}


def _secrets(response: Any) -> list[str]:
    """Return the card codes and transaction numbers in a final poll body."""
    data = response["data"]
    found = [data[key] for key in ("card_code", "num_trans") if key in data]
    for card in data.get("cards", []):
        found.extend((card["value"], card["serial"]))
    return [str(value) for value in found]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("suffix", "state", "outcome"),
    [("01", "FULFILLED", Outcome.SUCCESS), ("02", "REFUNDED", Outcome.FAILURE)],
)
async def test_mobile_topup_ends_in_its_triggered_state(
    server: ServerHandle, suffix: str, state: str, outcome: Outcome
) -> None:
    """A mobile top-up goes PENDING → HANDLING → FULFILLED or REFUNDED."""
    async with engine_for("oneclickdz", server, SCALE) as engine:
        log = EventLog.attach(engine)
        job = await engine.submit("oneclickdz", "mobile_topup", _mobile(suffix))

        result = await engine.wait(job, timeout=TIMEOUT)

    assert (result.state, result.outcome) == (state, outcome)
    assert result.response["data"]["status"] == state
    assert result.response["data"]["_id"] == job.job_id
    assert log.moves(job.job_id) == [("PENDING", "HANDLING"), ("HANDLING", state)]


@pytest.mark.anyio
async def test_refunded_mobile_topup_keeps_the_refund_explanation(
    server: ServerHandle,
) -> None:
    """A refunded top-up's response carries refund_message and suggested_offers."""
    async with engine_for("oneclickdz", server, SCALE) as engine:
        job = await engine.submit("oneclickdz", "mobile_topup", _mobile("02"))

        result = await engine.wait(job, timeout=TIMEOUT)

    assert result.state == "REFUNDED"
    assert result.response["data"]["refund_message"]
    assert result.response["data"]["suggested_offers"]


@pytest.mark.anyio
@pytest.mark.parametrize(("suffix", "final"), [("03", "FULFILLED"), ("04", "REFUNDED")])
async def test_mobile_unknown_error_is_provisional_and_resolves_later(
    long_tail_server: ServerHandle, suffix: str, final: str
) -> None:
    """UNKNOWN_ERROR is entered as provisional, re-checked, then resolved."""
    async with engine_for("oneclickdz", long_tail_server, LONG_TAIL_SCALE) as engine:
        log = EventLog.attach(engine)
        job = await engine.submit("oneclickdz", "mobile_topup", _mobile(suffix))

        result = await engine.wait(job, timeout=TIMEOUT)

    entered = {e.state: e.provisional for e in log.named("entered")}
    assert result.state == final
    assert entered["UNKNOWN_ERROR"] is True
    assert entered[final] is False
    assert log.moves(job.job_id)[-2:] == [
        ("HANDLING", "UNKNOWN_ERROR"),
        ("UNKNOWN_ERROR", final),
    ]


@pytest.mark.anyio
async def test_skipped_state_is_recorded_as_an_inferred_transition(
    server: ServerHandle,
) -> None:
    """A first look at FULFILLED from PENDING infers the HANDLING step in between."""
    # The engine runs 100 times slower than the simulator on purpose: its first
    # poll (5 s x 0.01 = 50 ms) comes after the simulated job ended (<= 2.3 ms).
    async with engine_for("oneclickdz", server, 0.01) as engine:
        log = EventLog.attach(engine)
        job = await engine.submit("oneclickdz", "mobile_topup", _mobile("01"))

        result = await engine.wait(job, timeout=TIMEOUT)

    moves = [(e.source, e.dest, e.inferred) for e in log.named("transition")]
    assert result.state == "FULFILLED"
    assert moves == [("PENDING", "HANDLING", True), ("HANDLING", "FULFILLED", False)]
    assert [e.trigger for e in log.named("transition")] == ["inferred", "poll"]
    assert result.attempts == 1


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["ADSL", "4G"])
@pytest.mark.parametrize(
    ("suffix", "state", "outcome"),
    [("01", "FULFILLED", Outcome.SUCCESS), ("02", "REFUNDED", Outcome.FAILURE)],
)
async def test_internet_topup_ends_in_its_triggered_state(
    server: ServerHandle, kind: str, suffix: str, state: str, outcome: Outcome
) -> None:
    """An internet top-up goes HANDLING → FULFILLED or REFUNDED, for ADSL and 4G."""
    async with engine_for("oneclickdz", server, SCALE) as engine:
        log = EventLog.attach(engine)
        job = await engine.submit(
            "oneclickdz", "internet_topup", _internet(kind, suffix)
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    assert (result.state, result.outcome) == (state, outcome)
    assert log.moves(job.job_id) == [("HANDLING", state)]
    assert ("card_code" in result.response["data"]) is (state == "FULFILLED")


@pytest.mark.anyio
@pytest.mark.parametrize(("suffix", "final"), [("03", "FULFILLED"), ("04", "REFUNDED")])
async def test_internet_queued_is_provisional_and_resolves_later(
    long_tail_server: ServerHandle, suffix: str, final: str
) -> None:
    """QUEUED is entered as provisional, re-checked every 6 (scaled) hours, then resolved."""
    async with engine_for("oneclickdz", long_tail_server, LONG_TAIL_SCALE) as engine:
        log = EventLog.attach(engine)
        job = await engine.submit(
            "oneclickdz", "internet_topup", _internet("ADSL", suffix)
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    entered = [(e.state, e.provisional) for e in log.named("entered")]
    assert result.state == final
    assert entered == [("QUEUED", True), (final, False)]
    assert log.moves(job.job_id) == [("HANDLING", "QUEUED"), ("QUEUED", final)]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("type_id", "state", "outcome"),
    [
        ("type_001", "FULFILLED", Outcome.SUCCESS),
        ("type_002", "PARTIALLY_FILLED", Outcome.PARTIAL),
        ("type_003", "REFUNDED", Outcome.FAILURE),
    ],
)
async def test_gift_card_order_ends_in_its_triggered_state(
    server: ServerHandle, type_id: str, state: str, outcome: Outcome
) -> None:
    """A gift-card order goes HANDLING → FULFILLED, PARTIALLY_FILLED or REFUNDED."""
    async with engine_for("oneclickdz", server, SCALE) as engine:
        log = EventLog.attach(engine)
        job = await engine.submit(
            "oneclickdz", "gift_card", productId=PRODUCT, typeId=type_id, quantity=3
        )

        result = await engine.wait(job, timeout=TIMEOUT)

    data = result.response["data"]
    assert (result.state, result.outcome) == (state, outcome)
    assert log.moves(job.job_id) == [("HANDLING", state)]
    assert [e.outcome for e in log.named("completed")] == [outcome.value]
    assert len(data["cards"]) == data["fulfilled_quantity"]


@pytest.mark.anyio
async def test_reused_ref_is_refused_with_duplicated_ref(server: ServerHandle) -> None:
    """A second send with the same ``ref`` raises RemoteError 403 DUPLICATED_REF."""
    ref = f"shop-{uuid.uuid4().hex[:12]}"
    async with engine_for("oneclickdz", server, SCALE) as engine:
        first = await engine.submit(
            "oneclickdz", "mobile_topup", _mobile("01"), ref=ref
        )
        with pytest.raises(RemoteError) as info:
            await engine.submit("oneclickdz", "mobile_topup", _mobile("01"), ref=ref)
        result = await engine.wait(first, timeout=TIMEOUT)

    assert (info.value.kind, info.value.status, info.value.code) == (
        "status",
        403,
        "DUPLICATED_REF",
    )
    assert info.value.remote_message == "This reference ID is already in use"
    assert result.response["data"]["ref"] == ref


@pytest.mark.anyio
async def test_wrong_token_is_refused_with_the_service_code() -> None:
    """The token goes in X-Access-Token: a wrong one is a 401 INVALID_ACCESS_TOKEN."""
    # Its own simulator: failed attempts are counted and could block the address.
    with simulator("oneclickdz", seed=23, time_scale=SCALE) as handle:
        async with engine_for("oneclickdz", handle, SCALE, key="wrong") as engine:
            with pytest.raises(RemoteError) as info:
                await engine.submit(
                    "oneclickdz", "gift_card", productId=PRODUCT, typeId="type_001"
                )

    assert (info.value.status, info.value.code) == (401, "INVALID_ACCESS_TOKEN")


@pytest.mark.anyio
async def test_card_codes_never_reach_the_log(
    server: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """Card codes, serials and transaction numbers appear in no log record."""
    caplog.set_level(logging.DEBUG)
    async with engine_for("oneclickdz", server, SCALE) as engine:
        internet = await engine.submit(
            "oneclickdz", "internet_topup", _internet("4G", "01")
        )
        gift = await engine.submit(
            "oneclickdz", "gift_card", productId=PRODUCT, typeId="type_001", quantity=2
        )

        results = [await engine.wait(j, timeout=TIMEOUT) for j in (internet, gift)]

    secrets = [s for r in results for s in _secrets(r.response)]
    engine_lines = [r for r in caplog.records if r.name.startswith("statepoll")]
    assert [r.state for r in results] == ["FULFILLED", "FULFILLED"]
    assert len(secrets) == 2 + 2 * 2
    assert engine_lines  # the engine did log its transitions
    assert [s for s in secrets if s in caplog.text] == []


@pytest.mark.anyio
async def test_audit_log_of_every_lifecycle_verifies_and_holds_no_card_code(
    server: ServerHandle, tmp_path: Path
) -> None:
    """A real run's audit log passes verify (chain and legality) and has no card code."""
    path = tmp_path / "audit.jsonl"
    async with engine_for("oneclickdz", server, SCALE, audit=path) as engine:
        jobs = [
            await engine.submit("oneclickdz", "mobile_topup", _mobile("01")),
            await engine.submit(
                "oneclickdz", "internet_topup", _internet("ADSL", "01")
            ),
            await engine.submit(
                "oneclickdz",
                "gift_card",
                productId=PRODUCT,
                typeId="type_002",
                quantity=3,
            ),
        ]

        results = [await engine.wait(j, timeout=TIMEOUT) for j in jobs]

    text = path.read_text(encoding="utf-8")
    secrets = [s for r in results for s in _secrets(r.response)]
    assert [r.state for r in results] == ["FULFILLED", "FULFILLED", "PARTIALLY_FILLED"]
    assert verify_log(path) == []
    assert [r["kind"] for r in read_records(path)].count("completed") == 3
    assert secrets
    assert [s for s in secrets if s in text] == []
