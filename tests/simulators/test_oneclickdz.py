"""The OneClickDZ v3 simulator, spoken to with plain httpx over a real loopback socket."""

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
from engine.simulators.oneclickdz import GIFT_PRODUCT, PROFILE, create_app
from tests.simulators.conftest import FakeClock

KEY = "test-key"
SCALE = 0.001  # mobile top-ups end within 23 ms, internet 45 ms, gift cards 5 ms
OTHER_PRODUCT = "5f0c0ffee0ddba11c0ffee02"
UNKNOWN_ID = "0123456789abcdef01234567"
HOUR = 3600.0

SUCCESS_KEYS = {"success", "data", "meta", "requestId"}
FAILURE_KEYS = {"success", "error", "requestId"}
MOBILE_KEYS = {
    "_id",
    "ref",
    "status",
    "plan_code",
    "MSSIDN",
    "topup_amount",
    "balance_amount",
    "created_at",
    "follow_orderid",
    "retry_orderid",
}
INTERNET_KEYS = {"_id", "ref", "status", "type", "number", "topup_amount", "created_at"}
INTERNET_SECRETS = {"card_code", "num_trans", "date_traitement"}
GIFT_KEYS = {"_id", "status", "quantity", "product", "type", "time"}
GIFT_DONE_KEYS = {"fulfilled_quantity", "fulfilled_amount", "price_per_card", "cards"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
REQUEST_ID = re.compile(r"req_\d+_[a-z0-9]{6}")
HEX_ID = re.compile(r"[0-9a-f]{24}")

MOBILE_DONE = {"FULFILLED", "REFUNDED", "UNKNOWN_ERROR"}
INTERNET_DONE = {"FULFILLED", "REFUNDED", "QUEUED"}
GIFT_DONE = {"FULFILLED", "PARTIALLY_FILLED", "REFUNDED"}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    """Serve one real-clock simulator, 1000 times faster, for the whole module."""
    with serving(create_app(seed=7, time_scale=SCALE, api_key=KEY)) as handle:
        yield handle


@pytest.fixture
def client(server: ServerHandle) -> Iterator[httpx.Client]:
    """Return a client of the shared simulator that sends the right token."""
    with httpx.Client(base_url=server.url, headers={"X-Access-Token": KEY}) as c:
        yield c


@pytest.fixture
def clock() -> FakeClock:
    """Return a fresh fake clock."""
    return FakeClock(start=5000.0)


@pytest.fixture(scope="module")
def module_clock() -> FakeClock:
    """Return the fake clock of the module's shared fake-clock simulator."""
    return FakeClock(start=5000.0)


@pytest.fixture(scope="module")
def timed_server(module_clock: FakeClock) -> Iterator[ServerHandle]:
    """Serve one fake-clock simulator for the tests that only read their own orders."""
    with serving(create_app(seed=4, api_key=KEY, clock=module_clock)) as handle:
        yield handle


@pytest.fixture
def timed(timed_server: ServerHandle) -> Iterator[httpx.Client]:
    """A client of the shared fake-clock simulator (advance it with module_clock)."""
    with httpx.Client(base_url=timed_server.url, headers={"X-Access-Token": KEY}) as c:
        yield c


@pytest.fixture
def fresh(clock: FakeClock) -> Iterator[ServerHandle]:
    """Serve a new simulator (full balance, no failed tokens) driven by the fake clock."""
    with serving(create_app(seed=3, api_key=KEY, clock=clock)) as handle:
        yield handle


@pytest.fixture
def frozen(fresh: ServerHandle) -> Iterator[httpx.Client]:
    """A client of the fake-clock simulator, sending the right token."""
    with httpx.Client(base_url=fresh.url, headers={"X-Access-Token": KEY}) as c:
        yield c


def data_of(response: httpx.Response) -> dict[str, Any]:
    """Return ``data`` of a success envelope, asserting the 200."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True
    result: dict[str, Any] = body["data"]
    return result


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """Return ``error`` of a failure envelope, asserting its status and shape."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == FAILURE_KEYS
    assert body["success"] is False
    assert REQUEST_ID.fullmatch(body["requestId"])
    error: dict[str, Any] = body["error"]
    return error


def mobile_body(suffix: str = "01", **extra: Any) -> dict[str, Any]:
    """Return a valid PREPAID_MOBILIS send whose MSSIDN ends in ``suffix``."""
    return {
        "plan_code": "PREPAID_MOBILIS",
        "MSSIDN": f"06612345{suffix}",
        "amount": 300,
        **extra,
    }


def internet_body(
    suffix: str = "01", kind: str = "ADSL", **extra: Any
) -> dict[str, Any]:
    """Return a valid internet send whose number ends in ``suffix``."""
    number = f"0312345{suffix}" if kind == "ADSL" else f"2136612345{suffix}"
    return {"type": kind, "number": number, "value": 1000, **extra}


def gift_body(type_id: str = "type_001", quantity: int = 3) -> dict[str, Any]:
    """Return a valid order of the trigger product."""
    return {"productId": GIFT_PRODUCT, "typeId": type_id, "quantity": quantity}


def send_mobile(client: httpx.Client, suffix: str = "01", **extra: Any) -> str:
    """Send a mobile top-up and return its id."""
    topup_id: str = data_of(
        client.post("/v3/mobile/send", json=mobile_body(suffix, **extra))
    )["topupId"]
    return topup_id


def send_internet(client: httpx.Client, suffix: str = "01", **extra: Any) -> str:
    """Send an internet top-up and return its id."""
    response = client.post("/v3/internet/send", json=internet_body(suffix, **extra))
    topup_id: str = data_of(response)["topupId"]
    return topup_id


def place_gift(
    client: httpx.Client, type_id: str = "type_001", quantity: int = 3
) -> str:
    """Place a gift card order and return its id."""
    response = client.post(
        "/v3/gift-cards/placeOrder", json=gift_body(type_id, quantity)
    )
    order_id: str = data_of(response)["orderId"]
    return order_id


def poll(client: httpx.Client, path: str, done: set[str]) -> dict[str, Any]:
    """Poll ``path`` in real time until its status is in ``done`` (bounded)."""
    deadline = time.monotonic() + 5
    for _ in range(2000):
        data = data_of(client.get(path))
        if data["status"] in done or time.monotonic() > deadline:
            return data
        time.sleep(0.002)
    return data


def walk(
    client: httpx.Client, clock: FakeClock, path: str, *, step: float, steps: int
) -> list[tuple[float, str]]:
    """Step the fake clock, polling each time; return when each status was first seen."""
    start = clock.now
    seen: list[tuple[float, str]] = []
    for _ in range(steps):
        status = data_of(client.get(path))["status"]
        if not seen or seen[-1][1] != status:
            seen.append((clock.now - start, status))
        clock.advance(step)
    return seen


def balance(client: httpx.Client) -> float:
    """Return the account balance."""
    value: float = data_of(client.get("/v3/account/balance"))["balance"]
    return value


def fault_counts(client: httpx.Client) -> dict[str, int]:
    """Return how often each fault fired, as GET /_sim/faults reports it."""
    counts: dict[str, int] = client.get("/_sim/faults").json()["counts"]
    return counts


# -- envelope and account ------------------------------------------------------------


def test_success_envelope_has_data_meta_and_request_id(client: httpx.Client) -> None:
    """A success is 200 JSON with success, data, meta.timestamp (ms, Z) and requestId."""
    response = client.get("/v3/account/balance")

    body = response.json()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert set(body) == SUCCESS_KEYS
    assert body["success"] is True
    assert set(body["meta"]) == {"timestamp"}
    assert TIMESTAMP.fullmatch(body["meta"]["timestamp"])
    assert REQUEST_ID.fullmatch(body["requestId"])


def test_validate_describes_a_sandbox_key_without_revealing_it(
    client: httpx.Client,
) -> None:
    """GET /v3/validate answers the username and the key's properties, key masked."""
    data = data_of(client.get("/v3/validate"))

    assert set(data) == {"username", "apiKey"}
    assert data["username"].startswith("+213")
    assert data["apiKey"] == {
        "key": "test****",
        "isEnabled": True,
        "type": "SANDBOX",
        "allowedips": [],
        "scope": "READ-WRITE",
    }


def test_balance_starts_at_100000(frozen: httpx.Client) -> None:
    """A new simulator's account holds 100000 DZD."""
    data = data_of(frozen.get("/v3/account/balance"))

    assert data == {"balance": 100000}


# -- mobile --------------------------------------------------------------------------


def test_plans_list_dynamic_and_fixed_plans(client: httpx.Client) -> None:
    """The plan catalogue splits dynamic plans (min/max) from fixed ones (amount)."""
    data = data_of(client.get("/v3/mobile/plans"))

    dynamic = {p["code"]: p for p in data["dynamicPlans"]}
    fixed = {p["code"]: p for p in data["fixedPlans"]}
    assert set(data) == {"dynamicPlans", "fixedPlans"}
    assert dynamic["PREPAID_MOBILIS"] == {
        "code": "PREPAID_MOBILIS",
        "name": "Mobilis Prepaid",
        "operator": "Mobilis",
        "cost": 0.98,
        "isEnabled": True,
        "min_amount": 50,
        "max_amount": 5000,
    }
    assert fixed["MIX300_MOBILIS"]["amount"] == 300
    assert "min_amount" not in fixed["MIX300_MOBILIS"]
    operators = {p["operator"] for p in [*dynamic.values(), *fixed.values()]}
    assert operators == {"Mobilis", "Djezzy", "Ooredoo"}


def test_mobile_send_answers_200_with_id_and_ref(client: httpx.Client) -> None:
    """A valid send is a 200 (not 202) carrying exactly topupId and the client's ref."""
    response = client.post("/v3/mobile/send", json=mobile_body(ref="shop-send-1"))

    data = data_of(response)
    assert set(data) == {"topupId", "topupRef"}
    assert HEX_ID.fullmatch(data["topupId"])
    assert data["topupRef"] == "shop-send-1"
    assert "location" not in response.headers


def test_mobile_send_without_ref_generates_one_usable_with_check_ref(
    client: httpx.Client,
) -> None:
    """Without a ref a topupRef is generated, and check-ref finds the top-up by it."""
    data = data_of(client.post("/v3/mobile/send", json=mobile_body()))

    by_ref = data_of(client.get(f"/v3/mobile/check-ref/{data['topupRef']}"))
    assert data["topupRef"]
    assert by_ref["_id"] == data["topupId"]
    assert by_ref["ref"] == data["topupRef"]


def test_mobile_happy_path_goes_pending_then_fulfilled(
    timed: httpx.Client, module_clock: FakeClock
) -> None:
    """A top-up is PENDING when sent and FULFILLED 23 s later, with every listed key."""
    topup_id = send_mobile(timed, "01", ref="happy-mobile")

    first = data_of(timed.get(f"/v3/mobile/check-id/{topup_id}"))
    module_clock.advance(23)
    final = data_of(timed.get(f"/v3/mobile/check-id/{topup_id}"))

    assert set(first) == MOBILE_KEYS
    assert first["status"] == "PENDING"
    assert set(final) == MOBILE_KEYS
    assert final["status"] == "FULFILLED"
    assert (final["_id"], final["ref"], final["plan_code"], final["MSSIDN"]) == (
        topup_id,
        "happy-mobile",
        "PREPAID_MOBILIS",
        "0661234501",
    )
    assert (final["topup_amount"], final["balance_amount"]) == (300, 294)
    assert (final["follow_orderid"], final["retry_orderid"]) == (None, None)
    assert TIMESTAMP.fullmatch(final["created_at"])


def test_mobile_triggered_top_up_ends_in_real_time(client: httpx.Client) -> None:
    """At time_scale 0.001 a top-up polled in real time is FULFILLED within 23 ms."""
    topup_id = send_mobile(client, "01")

    final = poll(client, f"/v3/mobile/check-id/{topup_id}", MOBILE_DONE)

    assert final["status"] == "FULFILLED"


def test_mobile_states_last_their_documented_durations(
    timed: httpx.Client, module_clock: FakeClock
) -> None:
    """PENDING lasts 2-15 s and HANDLING 3-8 s (checked in 0.25 s steps)."""
    topup_id = send_mobile(timed, "01")

    seen = walk(
        timed, module_clock, f"/v3/mobile/check-id/{topup_id}", step=0.25, steps=120
    )

    assert [status for _, status in seen] == ["PENDING", "HANDLING", "FULFILLED"]
    (_, _), (handling_at, _), (fulfilled_at, _) = seen
    assert 2 <= handling_at <= 15.25
    assert 3 - 0.25 <= fulfilled_at - handling_at <= 8 + 0.25


def test_mobile_02_is_refunded_with_message_and_suggested_offers(
    client: httpx.Client,
) -> None:
    """An MSSIDN ending 02 ends REFUNDED, explained, with the operator's fixed offers."""
    topup_id = send_mobile(client, "02")

    final = poll(client, f"/v3/mobile/check-id/{topup_id}", MOBILE_DONE)

    assert final["status"] == "REFUNDED"
    assert set(final) == MOBILE_KEYS | {"refund_message", "suggested_offers"}
    assert final["refund_message"]
    assert {
        "typename": "Mix 300",
        "plan_code": "MIX300_MOBILIS",
        "amount": 300,
    } in final["suggested_offers"]
    for offer in final["suggested_offers"]:
        assert set(offer) == {"typename", "plan_code", "amount"}


@pytest.mark.parametrize(("suffix", "final"), [("03", "FULFILLED"), ("04", "REFUNDED")])
def test_mobile_unknown_error_resolves_hours_later(
    timed: httpx.Client, module_clock: FakeClock, suffix: str, final: str
) -> None:
    """MSSIDN 03/04: UNKNOWN_ERROR after HANDLING, still so at 1 h, resolved by 12 h."""
    path = f"/v3/mobile/check-id/{send_mobile(timed, suffix)}"

    module_clock.advance(23)
    unknown = data_of(timed.get(path))
    module_clock.advance(HOUR - 23)
    still = data_of(timed.get(path))
    module_clock.advance(12 * HOUR)
    resolved = data_of(timed.get(path))

    assert unknown["status"] == "UNKNOWN_ERROR"
    assert set(unknown) == MOBILE_KEYS | {"refund_message"}
    assert still["status"] == "UNKNOWN_ERROR"
    assert resolved["status"] == final
    expected = MOBILE_KEYS | ({"refund_message"} if final == "REFUNDED" else set())
    assert set(resolved) == expected


@pytest.mark.parametrize(("suffix", "final"), [("03", "FULFILLED"), ("04", "REFUNDED")])
def test_mobile_unknown_error_really_resolves_at_a_tiny_time_scale(
    suffix: str, final: str
) -> None:
    """At time_scale 1e-5 UNKNOWN_ERROR (36-432 ms) is seen, then its final status."""
    app = create_app(seed=9, time_scale=1e-5, api_key=KEY)
    with (
        serving(app) as handle,
        httpx.Client(base_url=handle.url, headers={"X-Access-Token": KEY}) as c,
    ):
        path = f"/v3/mobile/check-id/{send_mobile(c, suffix)}"
        seen = [data_of(c.get(path))["status"]]
        deadline = time.monotonic() + 5
        for _ in range(2000):
            if seen[-1] == final or time.monotonic() > deadline:
                break
            time.sleep(0.005)
            seen.append(data_of(c.get(path))["status"])

    assert "UNKNOWN_ERROR" in seen
    assert seen[-1] == final
    assert seen.index("UNKNOWN_ERROR") < len(seen) - 1


def test_untriggered_mobile_outcomes_are_a_seeded_mostly_fulfilled_mix(
    clock: FakeClock,
) -> None:
    """Other MSSIDNs get a seeded mix, mostly FULFILLED; the same seed repeats it."""

    def outcomes() -> list[tuple[str, str]]:
        app = create_app(seed=11, api_key=KEY, clock=clock)
        with (
            serving(app) as handle,
            httpx.Client(base_url=handle.url, headers={"X-Access-Token": KEY}) as c,
        ):
            ids = [send_mobile(c, "55") for _ in range(40)]
            clock.advance(23)
            first = [data_of(c.get(f"/v3/mobile/check-id/{i}"))["status"] for i in ids]
            clock.advance(2 * 12 * HOUR)
            later = [data_of(c.get(f"/v3/mobile/check-id/{i}"))["status"] for i in ids]
        return list(
            zip(
                ids,
                [f"{a}->{b}" for a, b in zip(first, later, strict=True)],
                strict=True,
            )
        )

    run, again = outcomes(), outcomes()

    statuses = [s for _, s in run]
    assert run == again
    assert set(statuses) <= {
        "FULFILLED->FULFILLED",
        "REFUNDED->REFUNDED",
        "UNKNOWN_ERROR->FULFILLED",
        "UNKNOWN_ERROR->REFUNDED",
    }
    assert statuses.count("FULFILLED->FULFILLED") > len(statuses) / 2
    assert len(set(statuses)) > 1


def test_fixed_plan_charges_its_own_amount(frozen: httpx.Client) -> None:
    """A fixed plan tops up its own amount; any amount sent is ignored."""
    body = {"plan_code": "MIX300_MOBILIS", "MSSIDN": "0661234501", "amount": 999}

    topup_id = data_of(frozen.post("/v3/mobile/send", json=body))["topupId"]

    topup = data_of(frozen.get(f"/v3/mobile/check-id/{topup_id}"))
    assert (topup["topup_amount"], topup["balance_amount"]) == (300, 294)
    assert balance(frozen) == 100000 - 294


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"MSSIDN": "0661234501", "amount": 300}, "plan_code"),
        ({"plan_code": "PREPAID_MOBILIS", "amount": 300}, "MSSIDN"),
        (mobile_body(plan_code="NO_SUCH_PLAN"), "plan_code"),
        (mobile_body(MSSIDN="661234501"), "MSSIDN"),
        (mobile_body(MSSIDN="+213661234501"), "MSSIDN"),
        (mobile_body(MSSIDN="0861234501"), "MSSIDN"),
        (mobile_body(MSSIDN="0771234501"), "MSSIDN"),  # a Djezzy line, a Mobilis plan
        ({"plan_code": "PREPAID_MOBILIS", "MSSIDN": "0661234501"}, "amount"),
        (mobile_body(amount=49), "amount"),
        (mobile_body(amount=5001), "amount"),
        (mobile_body(amount="300"), "amount"),
        (mobile_body(amount=300.5), "amount"),
        (mobile_body(ref=42), "ref"),
        (mobile_body(ref=""), "ref"),
    ],
)
def test_invalid_mobile_send_is_400_err_validation_naming_the_field(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    """A bad mobile send is a 400 ERR_VALIDATION whose details name the bad field."""
    error = error_of(client.post("/v3/mobile/send", json=body), 400)

    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "ERR_VALIDATION"
    assert [e["field"] for e in error["details"]["errors"]] == [field]
    assert error["message"] == error["details"]["errors"][0]["message"]


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b""])
def test_send_body_that_is_not_a_json_object_is_400(
    client: httpx.Client, content: bytes
) -> None:
    """A send body that is not a JSON object is a 400 ERR_VALIDATION on 'body'."""
    response = client.post(
        "/v3/mobile/send", content=content, headers={"content-type": "application/json"}
    )

    error = error_of(response, 400)
    assert error["code"] == "ERR_VALIDATION"
    assert error["details"]["errors"][0]["field"] == "body"


def test_every_bad_field_is_reported_at_once(client: httpx.Client) -> None:
    """ERR_VALIDATION lists every bad field, not only the first."""
    body = {"plan_code": "NOPE", "MSSIDN": "123", "ref": 5}

    error = error_of(client.post("/v3/mobile/send", json=body), 400)

    assert [e["field"] for e in error["details"]["errors"]] == [
        "plan_code",
        "MSSIDN",
        "ref",
    ]


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v3/mobile/send", mobile_body()), ("/v3/internet/send", internet_body())],
)
def test_reused_ref_is_403_duplicated_ref(
    client: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    """A ref already used on the service is refused with 403 DUPLICATED_REF."""
    ref = f"dup-{path.split('/')[2]}"
    first = client.post(path, json={**body, "ref": ref})

    second = client.post(path, json={**body, "ref": ref})

    assert first.status_code == 200
    error = error_of(second, 403)
    assert (error["code"], error["message"]) == (
        "DUPLICATED_REF",
        "This reference ID is already in use",
    )


def test_refused_send_does_not_use_up_its_ref(client: httpx.Client) -> None:
    """A send refused by validation leaves its ref free for a later valid send."""
    bad = client.post("/v3/mobile/send", json=mobile_body(amount=1, ref="retry-me"))

    good = client.post("/v3/mobile/send", json=mobile_body(ref="retry-me"))

    assert bad.status_code == 400
    assert data_of(good)["topupRef"] == "retry-me"


def test_mobile_and_internet_refs_are_separate(client: httpx.Client) -> None:
    """The same ref may be used once on mobile and once on internet."""
    mobile = client.post("/v3/mobile/send", json=mobile_body(ref="shared-ref"))

    internet = client.post("/v3/internet/send", json=internet_body(ref="shared-ref"))

    assert (mobile.status_code, internet.status_code) == (200, 200)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v3/mobile/check-ref/nope", "Top-up with reference 'nope' not found"),
        ("/v3/internet/check-ref/nope", "Top-up with reference 'nope' not found"),
        (
            f"/v3/mobile/check-id/{UNKNOWN_ID}",
            f"Top-up with id '{UNKNOWN_ID}' not found",
        ),
        (
            f"/v3/internet/check-id/{UNKNOWN_ID}",
            f"Top-up with id '{UNKNOWN_ID}' not found",
        ),
        ("/v3/mobile/check-id/not-an-id", "Top-up with id 'not-an-id' not found"),
        (
            f"/v3/gift-cards/checkOrder/{UNKNOWN_ID}",
            f"Order with id '{UNKNOWN_ID}' not found",
        ),
        (
            f"/v3/gift-cards/checkProduct/{UNKNOWN_ID}",
            f"Product with id '{UNKNOWN_ID}' not found",
        ),
    ],
)
def test_unknown_id_or_ref_is_404_not_found(
    client: httpx.Client, path: str, message: str
) -> None:
    """An unknown id or ref is a 404 NOT_FOUND naming it."""
    error = error_of(client.get(path), 404)

    assert error == {"code": "NOT_FOUND", "message": message}


# -- internet ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ADSL", "4G"])
def test_internet_happy_path_goes_handling_then_fulfilled_with_the_card(
    timed: httpx.Client, module_clock: FakeClock, kind: str
) -> None:
    """An internet order starts HANDLING; FULFILLED adds card_code, num_trans, date."""
    topup_id = send_internet(timed, "01", kind=kind, ref=f"net-happy-{kind}")

    first = data_of(timed.get(f"/v3/internet/check-id/{topup_id}"))
    module_clock.advance(45)
    final = data_of(timed.get(f"/v3/internet/check-id/{topup_id}"))

    assert set(first) == INTERNET_KEYS
    assert first["status"] == "HANDLING"
    assert final["status"] == "FULFILLED"
    assert set(final) == INTERNET_KEYS | INTERNET_SECRETS
    assert (final["type"], final["topup_amount"], final["ref"]) == (
        kind,
        1000,
        f"net-happy-{kind}",
    )
    assert re.fullmatch(r"\d{12}", final["card_code"])
    assert final["num_trans"].startswith("AT-")
    assert TIMESTAMP.fullmatch(final["date_traitement"])
    by_ref = data_of(timed.get(f"/v3/internet/check-ref/net-happy-{kind}"))
    assert by_ref == final


def test_internet_handling_lasts_3_to_45_seconds(
    timed: httpx.Client, module_clock: FakeClock
) -> None:
    """HANDLING lasts 3-45 s; date_traitement is created_at plus that time."""
    path = f"/v3/internet/check-id/{send_internet(timed, '01')}"

    seen = walk(timed, module_clock, path, step=0.5, steps=100)
    final = data_of(timed.get(path))

    assert [status for _, status in seen] == ["HANDLING", "FULFILLED"]
    assert 3 <= seen[1][0] <= 45.5
    created = dt.datetime.fromisoformat(final["created_at"])
    done = dt.datetime.fromisoformat(final["date_traitement"])
    assert 3 <= (done - created).total_seconds() <= seen[1][0]


def test_internet_02_is_refunded_without_card_fields(client: httpx.Client) -> None:
    """A number ending 02 ends REFUNDED and carries no card_code, num_trans or date."""
    topup_id = send_internet(client, "02", kind="4G")

    final = poll(client, f"/v3/internet/check-id/{topup_id}", INTERNET_DONE)

    assert final["status"] == "REFUNDED"
    assert set(final) == INTERNET_KEYS


@pytest.mark.parametrize(("suffix", "final"), [("03", "FULFILLED"), ("04", "REFUNDED")])
def test_internet_queued_resolves_12_to_48_hours_later(
    timed: httpx.Client, module_clock: FakeClock, suffix: str, final: str
) -> None:
    """Number 03/04: QUEUED after HANDLING, still so at 12 h, resolved by 48 h."""
    path = f"/v3/internet/check-id/{send_internet(timed, suffix)}"

    module_clock.advance(45)
    queued = data_of(timed.get(path))
    module_clock.advance(12 * HOUR - 45)
    still = data_of(timed.get(path))
    module_clock.advance(37 * HOUR)
    resolved = data_of(timed.get(path))

    assert queued["status"] == "QUEUED"
    assert set(queued) == INTERNET_KEYS
    assert still["status"] == "QUEUED"
    assert resolved["status"] == final
    secrets = INTERNET_SECRETS if final == "FULFILLED" else set()
    assert set(resolved) == INTERNET_KEYS | secrets


def test_internet_queued_really_resolves_at_a_tiny_time_scale() -> None:
    """At time_scale 1e-5 QUEUED (0.43-1.73 s) is seen, then FULFILLED."""
    app = create_app(seed=9, time_scale=1e-5, api_key=KEY)
    with (
        serving(app) as handle,
        httpx.Client(base_url=handle.url, headers={"X-Access-Token": KEY}) as c,
    ):
        path = f"/v3/internet/check-id/{send_internet(c, '03')}"
        seen = [data_of(c.get(path))["status"]]
        deadline = time.monotonic() + 5
        for _ in range(1000):
            if seen[-1] == "FULFILLED" or time.monotonic() > deadline:
                break
            time.sleep(0.01)
            seen.append(data_of(c.get(path))["status"])

    assert "QUEUED" in seen
    assert seen[-1] == "FULFILLED"


def test_untriggered_internet_outcomes_are_a_seeded_mix(clock: FakeClock) -> None:
    """Other numbers get a seeded mix of the internet outcomes, mostly FULFILLED."""
    app = create_app(seed=12, api_key=KEY, clock=clock)
    with (
        serving(app) as handle,
        httpx.Client(base_url=handle.url, headers={"X-Access-Token": KEY}) as c,
    ):
        ids = [send_internet(c, "77") for _ in range(40)]
        clock.advance(45)
        first = [data_of(c.get(f"/v3/internet/check-id/{i}"))["status"] for i in ids]

    assert set(first) <= INTERNET_DONE
    assert first.count("FULFILLED") > len(first) / 2
    assert len(set(first)) > 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"number": "031234501", "value": 1000}, "type"),
        (internet_body(type="FIBRE"), "type"),
        (internet_body(number="31234501"), "number"),
        (internet_body(number="213661234501"), "number"),  # a 4G number as ADSL
        (internet_body(kind="4G", number="031234501"), "number"),
        (internet_body(value=750), "value"),
        ({"type": "ADSL", "number": "031234501"}, "value"),
        (internet_body(ref=7), "ref"),
    ],
)
def test_invalid_internet_send_is_400_err_validation_naming_the_field(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    """A bad internet send is a 400 ERR_VALIDATION whose details name the bad field."""
    error = error_of(client.post("/v3/internet/send", json=body), 400)

    assert error["code"] == "ERR_VALIDATION"
    assert [e["field"] for e in error["details"]["errors"]] == [field]


def test_number_of_the_other_type_is_named_as_such(client: httpx.Client) -> None:
    """A 4G number sent as ADSL is reported as a type mismatch."""
    body = internet_body(number="213661234501")

    error = error_of(client.post("/v3/internet/send", json=body), 400)

    assert error["message"] == "number 213661234501 is a 4G number, not ADSL"


@pytest.mark.parametrize(
    ("kind", "number", "answered_type"),
    [("ADSL", "031234567", "ADSL"), ("4G", "213661234567", "4GLTE")],
)
def test_check_number_describes_the_line(
    client: httpx.Client, kind: str, number: str, answered_type: str
) -> None:
    """check-number answers a masked ncli, an offer and the line type (4G is 4GLTE)."""
    data = data_of(
        client.get("/v3/internet/check-number", params={"type": kind, "number": number})
    )

    assert set(data) == {"ncli", "offre", "type"}
    assert re.fullmatch(r"\d{5}\*{5}", data["ncli"])
    assert data["offre"]
    assert data["type"] == answered_type


def test_check_number_with_a_bad_number_is_400_err_phone(client: httpx.Client) -> None:
    """A number that does not fit its type is a 400 ERR_PHONE with number, type, reason."""
    response = client.get(
        "/v3/internet/check-number", params={"type": "4G", "number": "031234567"}
    )

    error = error_of(response, 400)
    assert error["code"] == "ERR_PHONE"
    assert set(error["details"]) == {"number", "type", "reason"}
    assert (error["details"]["number"], error["details"]["type"]) == ("031234567", "4G")


@pytest.mark.parametrize(
    "path",
    [
        "/v3/internet/check-number?number=031234567",
        "/v3/internet/products",
        "/v3/internet/products?type=FIBRE",
    ],
)
def test_internet_type_query_is_required(client: httpx.Client, path: str) -> None:
    """The products and check-number routes need type=ADSL or 4G, else 400 ERR_VALIDATION."""
    error = error_of(client.get(path), 400)

    assert error["code"] == "ERR_VALIDATION"
    assert error["details"]["errors"][0]["field"] == "type"


def test_products_list_card_values_with_cost_and_availability(
    client: httpx.Client,
) -> None:
    """The products route lists each denomination of the type with its cost and availability."""
    data = data_of(client.get("/v3/internet/products", params={"type": "4G"}))

    assert set(data) == {"products", "type"}
    assert data["type"] == "4G"
    assert [p["value"] for p in data["products"]] == [500, 1000, 2000, 3000]
    for product in data["products"]:
        assert set(product) == {"value", "cost", "available"}
        assert product["cost"] == product["value"]


def test_cards_run_out_of_stock_and_come_back_when_refunded(
    frozen: httpx.Client, clock: FakeClock
) -> None:
    """A 4th 3000 DZD ADSL card is 400 OUT_OF_STOCK; refunded cards return to stock."""
    for _ in range(3):
        send_internet(frozen, "02", value=3000)

    refused = frozen.post("/v3/internet/send", json=internet_body(value=3000))
    listed = data_of(frozen.get("/v3/internet/products", params={"type": "ADSL"}))
    clock.advance(46)
    relisted = data_of(frozen.get("/v3/internet/products", params={"type": "ADSL"}))
    again = frozen.post("/v3/internet/send", json=internet_body(value=3000))

    error = error_of(refused, 400)
    assert error["code"] == "OUT_OF_STOCK"
    assert error["details"] == {"requested": 1, "available": 0}
    available = {p["value"]: p["available"] for p in listed["products"]}
    assert available == {500: True, 1000: True, 2000: True, 3000: False}
    assert relisted["products"][3]["available"] is True
    assert again.status_code == 200


# -- gift cards ----------------------------------------------------------------------


def test_catalog_lists_products_by_category(client: httpx.Client) -> None:
    """The catalog groups products (id, title, enabled, region) by category."""
    data = data_of(client.get("/v3/gift-cards/catalog"))

    products = {p["id"]: p for c in data["categories"] for p in c["products"]}
    assert set(data) == {"categories"}
    for category in data["categories"]:
        assert set(category) == {"title", "products"}
    assert set(products) == {GIFT_PRODUCT, OTHER_PRODUCT}
    assert set(products[GIFT_PRODUCT]) == {"id", "title", "enabled", "region"}


def test_check_product_lists_its_types_with_price_and_stock(
    frozen: httpx.Client,
) -> None:
    """The checkProduct route answers productId, productTitle and types with price and stock."""
    data = data_of(frozen.get(f"/v3/gift-cards/checkProduct/{GIFT_PRODUCT}"))

    assert set(data) == {"productId", "productTitle", "types"}
    assert data["productId"] == GIFT_PRODUCT
    assert [t["id"] for t in data["types"]] == [
        "type_001",
        "type_002",
        "type_003",
        "type_004",
    ]
    for card in data["types"]:
        assert set(card) == {"id", "name", "price", "quantity"}
        assert card["price"] > 0
        assert card["quantity"] > 0


def test_gift_order_answers_an_order_id_and_starts_handling(
    timed: httpx.Client,
) -> None:
    """A placeOrder is a 200 with exactly orderId; the order starts HANDLING, bare."""
    data = data_of(timed.post("/v3/gift-cards/placeOrder", json=gift_body()))

    order = data_of(timed.get(f"/v3/gift-cards/checkOrder/{data['orderId']}"))

    assert set(data) == {"orderId"}
    assert HEX_ID.fullmatch(data["orderId"])
    assert set(order) == GIFT_KEYS
    assert order["status"] == "HANDLING"
    assert (order["quantity"], order["product"], order["type"]) == (
        3,
        GIFT_PRODUCT,
        "type_001",
    )


@pytest.mark.parametrize(
    ("type_id", "status"),
    [
        ("type_001", "FULFILLED"),
        ("type_002", "PARTIALLY_FILLED"),
        ("type_003", "REFUNDED"),
    ],
)
def test_gift_type_triggers_its_outcome_with_consistent_counts(
    client: httpx.Client, type_id: str, status: str
) -> None:
    """type_001/002/003 end FULFILLED/PARTIALLY_FILLED/REFUNDED with matching cards."""
    order_id = place_gift(client, type_id, quantity=3)

    final = poll(client, f"/v3/gift-cards/checkOrder/{order_id}", GIFT_DONE)

    assert final["status"] == status
    assert set(final) == GIFT_KEYS | GIFT_DONE_KEYS
    filled = final["fulfilled_quantity"]
    assert len(final["cards"]) == filled
    assert final["fulfilled_amount"] == filled * final["price_per_card"]
    holds = {
        "FULFILLED": filled == 3,
        "PARTIALLY_FILLED": 0 < filled < 3,
        "REFUNDED": filled == 0,
    }
    assert holds[status]
    for card in final["cards"]:
        assert set(card) == {"value", "serial"}
        assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4}){3}", card["value"])


def test_partial_trigger_with_one_card_is_refunded(client: httpx.Client) -> None:
    """type_002 with quantity 1 cannot be partly filled: it ends REFUNDED."""
    order_id = place_gift(client, "type_002", quantity=1)

    final = poll(client, f"/v3/gift-cards/checkOrder/{order_id}", GIFT_DONE)

    assert (final["status"], final["fulfilled_quantity"], final["cards"]) == (
        "REFUNDED",
        0,
        [],
    )


def test_gift_handling_lasts_1_to_5_seconds(
    timed: httpx.Client, module_clock: FakeClock
) -> None:
    """A gift card order is HANDLING for 1-5 s."""
    path = f"/v3/gift-cards/checkOrder/{place_gift(timed)}"

    seen = walk(timed, module_clock, path, step=0.1, steps=60)

    assert [status for _, status in seen] == ["HANDLING", "FULFILLED"]
    assert 1 <= seen[1][0] <= 5.1


def test_untriggered_gift_types_get_a_seeded_mix(
    frozen: httpx.Client, clock: FakeClock
) -> None:
    """type_004 and the other product's types end in a mix, mostly FULFILLED."""
    ids = [place_gift(frozen, "type_004", quantity=2) for _ in range(8)]
    body = {"productId": OTHER_PRODUCT, "typeId": "type_101", "quantity": 2}
    ids += [
        data_of(frozen.post("/v3/gift-cards/placeOrder", json=body))["orderId"]
        for _ in range(4)
    ]

    clock.advance(5)

    statuses = [
        data_of(frozen.get(f"/v3/gift-cards/checkOrder/{i}"))["status"] for i in ids
    ]
    assert set(statuses) <= GIFT_DONE
    assert statuses.count("FULFILLED") > len(statuses) / 2
    assert len(set(statuses)) > 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"typeId": "type_001", "quantity": 1}, "productId"),
        (gift_body() | {"productId": UNKNOWN_ID}, "productId"),
        (gift_body("type_999"), "typeId"),
        (gift_body("type_101"), "typeId"),  # a type of the other product
        (gift_body(quantity=0), "quantity"),
        (gift_body() | {"quantity": "2"}, "quantity"),
        ({"productId": GIFT_PRODUCT, "typeId": "type_001"}, "quantity"),
    ],
)
def test_invalid_gift_order_is_400_naming_the_field(
    client: httpx.Client, body: dict[str, Any], field: str
) -> None:
    """A bad order (unknown product or type, quantity < 1) is a 400 ERR_VALIDATION."""
    error = error_of(client.post("/v3/gift-cards/placeOrder", json=body), 400)

    assert error["code"] == "ERR_VALIDATION"
    assert [e["field"] for e in error["details"]["errors"]] == [field]


def test_gift_order_above_stock_is_400_out_of_stock(frozen: httpx.Client) -> None:
    """Ordering more cards than the type's stock (50 of type_004) is 400 OUT_OF_STOCK."""
    response = frozen.post("/v3/gift-cards/placeOrder", json=gift_body("type_004", 51))

    error = error_of(response, 400)
    assert error["code"] == "OUT_OF_STOCK"
    assert error["details"] == {"requested": 51, "available": 50}


def test_undelivered_gift_cards_return_to_stock(
    frozen: httpx.Client, clock: FakeClock
) -> None:
    """Stock drops by the quantity ordered and regains the cards not delivered."""

    def stock() -> dict[str, int]:
        data = data_of(frozen.get(f"/v3/gift-cards/checkProduct/{GIFT_PRODUCT}"))
        return {t["id"]: t["quantity"] for t in data["types"]}

    before = stock()
    place_gift(frozen, "type_001", quantity=4)
    place_gift(frozen, "type_003", quantity=4)
    during = stock()
    clock.advance(5)
    after = stock()

    assert (during["type_001"], during["type_003"]) == (
        before["type_001"] - 4,
        before["type_003"] - 4,
    )
    assert (after["type_001"], after["type_003"]) == (
        before["type_001"] - 4,
        before["type_003"],
    )


# -- balance -------------------------------------------------------------------------


def test_balance_is_debited_at_send_and_credited_back_on_refund(
    frozen: httpx.Client, clock: FakeClock
) -> None:
    """Sends debit the balance at once; REFUNDED orders credit it back when they end."""
    send_mobile(frozen, "01")  # 294, kept
    send_mobile(frozen, "02")  # 294, refunded within 23 s
    send_internet(frozen, "02")  # 1000, refunded within 45 s
    order_id = place_gift(frozen, "type_002", quantity=3)  # 2940, part refunded
    debited = balance(frozen)

    clock.advance(46)

    order = data_of(frozen.get(f"/v3/gift-cards/checkOrder/{order_id}"))
    assert debited == 100000 - 294 - 294 - 1000 - 3 * 980
    assert order["status"] == "PARTIALLY_FILLED"
    assert balance(frozen) == 100000 - 294 - order["fulfilled_quantity"] * 980


def test_unknown_error_keeps_the_money_until_resolved_as_refunded(
    frozen: httpx.Client, clock: FakeClock
) -> None:
    """An UNKNOWN_ERROR top-up is not refunded until it resolves to REFUNDED."""
    send_mobile(frozen, "04")
    clock.advance(HOUR)
    while_unknown = balance(frozen)

    clock.advance(12 * HOUR)

    assert while_unknown == 100000 - 294
    assert balance(frozen) == 100000


def test_balance_shows_cents_when_not_whole(frozen: httpx.Client) -> None:
    """A charge with centimes (333 x 0.98 = 326.34) leaves a fractional balance."""
    send_mobile(frozen, "01", amount=333)

    assert balance(frozen) == pytest.approx(100000 - 326.34)


def test_insufficient_then_no_balance_are_403(frozen: httpx.Client) -> None:
    """A charge above the balance is 403 INSUFFICIENT_BALANCE; at 0 it is NO_BALANCE."""
    for _ in range(20):
        send_mobile(frozen, "01", amount=5000)  # 4900 each: 2000 left

    short = frozen.post("/v3/mobile/send", json=mobile_body(amount=5000))
    last_card = frozen.post("/v3/internet/send", json=internet_body(value=2000))
    empty = frozen.post("/v3/gift-cards/placeOrder", json=gift_body(quantity=1))

    error = error_of(short, 403)
    assert error["code"] == "INSUFFICIENT_BALANCE"
    assert error["details"] == {"required": 4900, "available": 2000}
    assert last_card.status_code == 200
    assert error_of(empty, 403)["code"] == "NO_BALANCE"
    assert balance(frozen) == 0


# -- timestamps and determinism ------------------------------------------------------


def test_timestamps_follow_the_injected_clock(
    timed: httpx.Client, module_clock: FakeClock
) -> None:
    """created_at is fixed at the send; meta.timestamp moves with the injected module_clock."""
    topup_id = send_mobile(timed, "01")
    first = timed.get(f"/v3/mobile/check-id/{topup_id}").json()

    module_clock.advance(90)

    later = timed.get(f"/v3/mobile/check-id/{topup_id}").json()
    stamp = dt.datetime.fromisoformat(first["meta"]["timestamp"])
    later_stamp = dt.datetime.fromisoformat(later["meta"]["timestamp"])
    assert later["data"]["created_at"] == first["data"]["created_at"]
    assert (later_stamp - stamp).total_seconds() == pytest.approx(90, abs=0.002)


def test_same_seed_and_requests_give_the_same_ids(clock: FakeClock) -> None:
    """Two simulators with one seed answer the same requests with the same ids."""

    def ids() -> list[str]:
        app = create_app(seed=42, api_key=KEY, clock=clock)
        with (
            serving(app) as handle,
            httpx.Client(base_url=handle.url, headers={"X-Access-Token": KEY}) as c,
        ):
            return [send_mobile(c, "01"), send_internet(c, "01"), place_gift(c)]

    assert ids() == ids()


# -- authentication and routing ------------------------------------------------------


ROUTES = [
    ("GET", "/v3/account/balance"),
    ("GET", "/v3/mobile/plans"),
    ("POST", "/v3/mobile/send"),
    ("GET", f"/v3/mobile/check-id/{UNKNOWN_ID}"),
    ("POST", "/v3/internet/send"),
    ("GET", "/v3/gift-cards/catalog"),
    ("POST", "/v3/gift-cards/placeOrder"),
    ("GET", "/v3/nothing-here"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": KEY}, {"X-Access-Token": ""}],
    ids=["none", "auth", "empty"],
)
def test_missing_token_is_401_missing_access_token(
    server: ServerHandle, method: str, path: str, headers: dict[str, str]
) -> None:
    """Without X-Access-Token (Authorization does not count) every route is a 401."""
    with httpx.Client(base_url=server.url, headers=headers) as c:
        response = c.request(method, path, json={})

    error = error_of(response, 401)
    assert error == {
        "code": "MISSING_ACCESS_TOKEN",
        "message": "Access token is required",
    }


def test_wrong_token_is_401_invalid_access_token_with_attempts_left(
    fresh: ServerHandle,
) -> None:
    """A wrong token is a 401 INVALID_ACCESS_TOKEN whose details count attempts left."""
    with httpx.Client(base_url=fresh.url, headers={"X-Access-Token": "wrong"}) as c:
        responses = [c.request(method, path, json={}) for method, path in ROUTES[4:]]

    errors = [error_of(response, 401) for response in responses]
    assert errors == [
        {
            "code": "INVALID_ACCESS_TOKEN",
            "message": "The provided access token is invalid",
            "details": {"attemptsLeft": left},
        }
        for left in (4, 3, 2, 1)
    ]


def test_five_wrong_tokens_block_the_address_for_15_minutes(
    fresh: ServerHandle, clock: FakeClock
) -> None:
    """The 5th wrong token blocks the address (403 IP_BLOCKED, right token too) 15 min."""
    with httpx.Client(base_url=fresh.url) as c:
        wrong = {"X-Access-Token": "wrong"}
        right = {"X-Access-Token": KEY}
        left = [
            error_of(c.get("/v3/account/balance", headers=wrong), 401)["details"][
                "attemptsLeft"
            ]
            for _ in range(5)
        ]
        blocked = c.get("/v3/account/balance", headers=right)
        clock.advance(15 * 60)
        unblocked = c.get("/v3/account/balance", headers=right)

    assert left == [4, 3, 2, 1, 0]
    error = error_of(blocked, 403)
    assert error["code"] == "IP_BLOCKED"
    assert TIMESTAMP.fullmatch(error["details"]["blockedUntil"])
    assert unblocked.status_code == 200


def test_right_token_resets_the_failed_attempts(fresh: ServerHandle) -> None:
    """A request with the right token starts the count of wrong ones again."""
    with httpx.Client(base_url=fresh.url) as c:
        for _ in range(4):
            c.get("/v3/validate", headers={"X-Access-Token": "wrong"})
        c.get("/v3/validate", headers={"X-Access-Token": KEY})
        after = c.get("/v3/validate", headers={"X-Access-Token": "wrong"})

    assert error_of(after, 401)["details"] == {"attemptsLeft": 4}


def test_unknown_route_is_404_in_the_service_shape(client: httpx.Client) -> None:
    """A path the API does not have is a 404 NOT_FOUND envelope."""
    error = error_of(client.get("/v3/mobile/topup/abc"), 404)

    assert error["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v3/mobile/send", "POST"),
        ("DELETE", f"/v3/gift-cards/checkOrder/{UNKNOWN_ID}", "GET"),
        ("POST", "/v3/account/balance", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: httpx.Client, method: str, path: str, allowed: str
) -> None:
    """A known path with the wrong method is a 405 METHOD_NOT_ALLOWED with Allow."""
    response = client.request(method, path)

    error = error_of(response, 405)
    assert error["code"] == "METHOD_NOT_ALLOWED"
    assert allowed in response.headers["allow"]


# -- faults --------------------------------------------------------------------------


@pytest.fixture
def faulty(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[httpx.Client]:
    """A client of a simulator with the faults named by the test's parameter."""
    app: FaultInjector = create_app(
        seed=5, api_key=KEY, clock=clock, faults=parse_faults(request.param)
    )
    with (
        serving(app) as handle,
        httpx.Client(base_url=handle.url, headers={"X-Access-Token": KEY}) as c,
    ):
        yield c


@pytest.mark.parametrize("faulty", ["429@1,retry-after=2"], indirect=True)
def test_fault_429_carries_retry_after_and_a_service_error(
    faulty: httpx.Client,
) -> None:
    """An injected 429 sends Retry-After and a RATE_LIMITED envelope, then recovers."""
    path = f"/v3/mobile/check-id/{send_mobile(faulty)}"

    limited = faulty.get(path)
    after = faulty.get(path)

    error = error_of(limited, 429)
    assert limited.headers["retry-after"] == "2"
    assert error == {"code": "RATE_LIMITED", "message": "Too Many Requests"}
    assert after.status_code == 200
    assert fault_counts(faulty)["429"] == 1


@pytest.mark.parametrize(
    ("faulty", "status", "code"),
    [
        ("500@1", 500, "INTERNAL_ERROR"),
        ("502@1", 502, "BAD_GATEWAY"),
        ("503@1", 503, "SERVICE_UNAVAILABLE"),
    ],
    indirect=["faulty"],
)
def test_fault_5xx_answers_the_status_in_the_service_shape(
    faulty: httpx.Client, status: int, code: str
) -> None:
    """Injected 500/502/503 answer that status with the error envelope; 503 has Retry-After."""
    path = f"/v3/mobile/check-id/{send_mobile(faulty)}"

    response = faulty.get(path)

    assert error_of(response, status)["code"] == code
    assert ("retry-after" in response.headers) is (status == 503)
    assert fault_counts(faulty)[str(status)] == 1


@pytest.mark.parametrize("faulty", ["reset@1"], indirect=True)
def test_fault_reset_cuts_the_response(faulty: httpx.Client) -> None:
    """An injected reset closes the connection mid-response."""
    path = f"/v3/gift-cards/checkOrder/{place_gift(faulty)}"

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        faulty.get(path)

    assert fault_counts(faulty)["reset"] == 1


@pytest.mark.parametrize("faulty", ["slow@2,delay=0.3"], indirect=True)
def test_fault_slow_delays_the_real_answer(faulty: httpx.Client) -> None:
    """An injected slow response arrives after the delay, with the real data."""
    path = f"/v3/internet/check-id/{send_internet(faulty)}"

    started = time.monotonic()
    fast = faulty.get(path)
    fast_elapsed = time.monotonic() - started
    started = time.monotonic()
    slow = faulty.get(path)
    slow_elapsed = time.monotonic() - started

    assert fast_elapsed < 0.3
    assert slow_elapsed >= 0.3
    assert data_of(slow) == data_of(fast)
    assert fault_counts(faulty)["slow"] == 1


@pytest.mark.parametrize("faulty", ["malformed@1"], indirect=True)
def test_fault_malformed_sends_truncated_json(faulty: httpx.Client) -> None:
    """An injected malformed answer is a 200 whose JSON does not parse."""
    path = f"/v3/mobile/check-id/{send_mobile(faulty)}"

    response = faulty.get(path)

    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert fault_counts(faulty)["malformed"] == 1


@pytest.mark.parametrize("faulty", ["html@1"], indirect=True)
def test_fault_html_sends_a_gateway_page(faulty: httpx.Client) -> None:
    """An injected html answer is a 502 text/html page, not JSON."""
    path = f"/v3/mobile/check-id/{send_mobile(faulty)}"

    response = faulty.get(path)

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text
    assert fault_counts(faulty)["html"] == 1


@pytest.mark.parametrize("faulty", ["unknown_status@1"], indirect=True)
def test_fault_unknown_status_rewrites_data_status(faulty: httpx.Client) -> None:
    """An injected unknown_status puts EXPLODING at /data/status, the rest intact."""
    topup_id = send_mobile(faulty)

    data = data_of(faulty.get(f"/v3/mobile/check-id/{topup_id}"))

    assert PROFILE.unknown_value == "EXPLODING"
    assert data["status"] == "EXPLODING"
    assert data["_id"] == topup_id
    assert fault_counts(faulty)["unknown_status"] == 1


@pytest.mark.parametrize("faulty", ["backwards@1+2"], indirect=True)
def test_fault_backwards_shows_an_earlier_status(
    faulty: httpx.Client, clock: FakeClock
) -> None:
    """Injected backwards shows FULFILLED as HANDLING and QUEUED as HANDLING."""
    mobile = f"/v3/mobile/check-id/{send_mobile(faulty, '01')}"
    internet = f"/v3/internet/check-id/{send_internet(faulty, '03')}"
    clock.advance(46)

    first = data_of(faulty.get(mobile))
    second = data_of(faulty.get(internet))
    truth = data_of(faulty.get(mobile))

    assert first["status"] == "HANDLING"
    assert second["status"] == "HANDLING"
    assert truth["status"] == "FULFILLED"
    assert fault_counts(faulty)["backwards"] == 2


def test_fault_backwards_maps_every_status_to_its_earlier_one(clock: FakeClock) -> None:
    """With backwards on every poll, each status shows as PROFILE.earlier says."""
    faults = parse_faults("backwards:1.0")
    clean_app = create_app(seed=8, api_key=KEY, clock=clock)
    faulty_app = create_app(seed=8, api_key=KEY, clock=clock, faults=faults)
    headers = {"X-Access-Token": KEY}
    pairs: list[tuple[str, str]] = []
    with (
        serving(clean_app) as clean_handle,
        serving(faulty_app) as faulty_handle,
        httpx.Client(base_url=clean_handle.url, headers=headers) as clean,
        httpx.Client(base_url=faulty_handle.url, headers=headers) as faulty,
    ):
        # Same seed, same clock, same request: the same top-up in both.
        path = f"/v3/mobile/check-id/{send_mobile(clean, '04')}"
        assert send_mobile(faulty, "04") == path.rsplit("/", 1)[1]
        for _ in range(60):
            pairs.append(
                (
                    data_of(clean.get(path))["status"],
                    data_of(faulty.get(path))["status"],
                )
            )
            clock.advance(0.5)
        clock.advance(13 * HOUR)
        pairs.append(
            (data_of(clean.get(path))["status"], data_of(faulty.get(path))["status"])
        )
        counts = fault_counts(faulty)

    truths = [truth for truth, _ in pairs]
    assert (truths[0], truths[-2], truths[-1]) == (
        "PENDING",
        "UNKNOWN_ERROR",
        "REFUNDED",
    )
    assert {truth for truth, _ in pairs} == {
        "PENDING",
        "HANDLING",
        "UNKNOWN_ERROR",
        "REFUNDED",
    }
    for truth, shown in pairs:
        assert shown == PROFILE.earlier.get(truth, truth)
    assert counts["backwards"] == len(pairs)


@pytest.mark.parametrize("faulty", ["500:1.0"], indirect=True)
def test_faults_spare_sends_by_default(faulty: httpx.Client) -> None:
    """With the default scope, POST sends are never faulted, only GETs."""
    topup_id = send_mobile(faulty)

    polled = faulty.get(f"/v3/mobile/check-id/{topup_id}")

    assert polled.status_code == 500
    assert fault_counts(faulty)["500"] == 1


@pytest.mark.parametrize("faulty", ["429@1,scope=all"], indirect=True)
def test_faults_with_scope_all_hit_sends(faulty: httpx.Client) -> None:
    """With scope=all, the send itself can be rate limited."""
    response = faulty.post("/v3/mobile/send", json=mobile_body())

    assert error_of(response, 429)["code"] == "RATE_LIMITED"
    assert fault_counts(faulty)["429"] == 1
