"""Local simulator of the OneClickDZ "Flexy" API v3: mobile, internet and gift cards.

Routes (every one needs ``X-Access-Token: <api key>``; not ``Authorization``):

======  ==============================================  ===============================
Method  Path                                            Answers
======  ==============================================  ===============================
GET     ``/v3/validate``                                200 key description
GET     ``/v3/account/balance``                         200 ``{"balance"}``
GET     ``/v3/mobile/plans``                            200 ``dynamicPlans``/``fixedPlans``
POST    ``/v3/mobile/send``                             200 ``{"topupId", "topupRef"}``,
                                                        400, 403
GET     ``/v3/mobile/check-id/{topupId}``               200 top-up, 404
GET     ``/v3/mobile/check-ref/{ref}``                  200 top-up, 404
GET     ``/v3/internet/products?type=ADSL|4G``          200 ``{"products", "type"}``, 400
GET     ``/v3/internet/check-number?type=&number=``     200 ``{"ncli", "offre", "type"}``,
                                                        400 ``ERR_PHONE``
POST    ``/v3/internet/send``                           200 ``{"topupId", "topupRef"}``,
                                                        400, 403
GET     ``/v3/internet/check-id/{topupId}``             200 order, 404
GET     ``/v3/internet/check-ref/{ref}``                200 order, 404
GET     ``/v3/gift-cards/catalog``                      200 ``{"categories"}``
GET     ``/v3/gift-cards/checkProduct/{productId}``     200 product with types, 404
POST    ``/v3/gift-cards/placeOrder``                   200 ``{"orderId"}``, 400, 403
GET     ``/v3/gift-cards/checkOrder/{orderId}``         200 order, 404
GET     ``/_sim/faults``                                fault counts (no key needed)
======  ==============================================  ===============================

Every success is HTTP 200 with ``{"success": true, "data": ..., "meta": {"timestamp"},
"requestId": "req_<epoch>_<6 chars>"}``; every error is ``{"success": false, "error":
{"code", "message", "details"?}, "requestId"}``. Ids are 24 hex digits.

Sends: ``/v3/mobile/send`` takes ``plan_code`` (from the plans), ``MSSIDN``
(``0[567]`` + 8 digits; 05 is Ooredoo, 06 Mobilis, 07 Djezzy and must match the plan's
operator), ``amount`` (integer, required and within ``min_amount..max_amount`` for
dynamic plans, ignored for fixed ones) and an optional ``ref``.
``/v3/internet/send`` takes ``type`` (``ADSL`` or ``4G``), ``number`` (ADSL ``0`` + 8
digits, 4G ``213`` + 9 digits), ``value`` (500, 1000, 2000 or 3000) and an optional
``ref``. ``/v3/internet/products`` and ``check-number`` need the ``type`` query
(400 ``ERR_VALIDATION`` without it). ``/v3/gift-cards/placeOrder`` takes
``productId``, ``typeId`` and ``quantity`` (integer >= 1). A ``ref`` already used on
the same service is a 403 ``DUPLICATED_REF``; without one a ``topupRef`` is generated.

The account starts at 100000 DZD. A mobile top-up costs ``amount`` x the plan's
``cost`` (0.98: 300 DZD cost 294, its ``balance_amount``); an internet card costs its
face value; a gift card order costs ``price x quantity``. The balance is debited at
once and credited back when an order reaches ``REFUNDED`` (and, for
``PARTIALLY_FILLED``, by the cards not delivered). A charge above the balance is a 403
``INSUFFICIENT_BALANCE`` (``NO_BALANCE`` when the balance is 0). Internet cards and
gift cards have a stock; a send or order beyond it is a 400 ``OUT_OF_STOCK``, and
undelivered cards go back to stock when the order ends.

Getting a terminal outcome on purpose:

===============================  =========================================================
Input                            Outcome
===============================  =========================================================
``MSSIDN`` ends in ``01``        ``FULFILLED``
``MSSIDN`` ends in ``02``        ``REFUNDED`` with ``refund_message`` and
                                 ``suggested_offers`` (the plan did not match the line)
``MSSIDN`` ends in ``03``        ``UNKNOWN_ERROR``, resolved to ``FULFILLED`` 1-12 h later
``MSSIDN`` ends in ``04``        ``UNKNOWN_ERROR``, resolved to ``REFUNDED`` 1-12 h later
internet ``number`` ends ``01``  ``FULFILLED`` (with ``card_code``, ``num_trans``,
                                 ``date_traitement``)
internet ``number`` ends ``02``  ``REFUNDED``
internet ``number`` ends ``03``  ``QUEUED``, resolved to ``FULFILLED`` 12-48 h later
internet ``number`` ends ``04``  ``QUEUED``, resolved to ``REFUNDED`` 12-48 h later
``typeId`` ``type_001``          ``FULFILLED`` (every card)
``typeId`` ``type_002``          ``PARTIALLY_FILLED`` (a seeded 1..quantity-1 cards; with
                                 ``quantity`` 1 no partial fill is possible, so it ends
                                 ``REFUNDED``, here and in the mix below)
``typeId`` ``type_003``          ``REFUNDED`` (no card)
anything else                    seeded mix. Mobile: 80 % ``FULFILLED``, 12 % ``REFUNDED``
                                 (no ``suggested_offers``), 8 % ``UNKNOWN_ERROR`` (then
                                 70 % ``FULFILLED``). Internet: 80 % ``FULFILLED``, 10 %
                                 ``REFUNDED``, 10 % ``QUEUED`` (then 80 % ``FULFILLED``).
                                 Gift cards (``type_004``, the second product's types):
                                 80 % ``FULFILLED``, 10 % ``PARTIALLY_FILLED``, 10 %
                                 ``REFUNDED``.
===============================  =========================================================

The gift card product ``5f0c0ffee0ddba11c0ffee01`` has the types ``type_001`` ..
``type_004``; ``5f0c0ffee0ddba11c0ffee02`` has ``type_101`` and ``type_102``.

Timing (seeded, uniform, multiplied by ``time_scale``; states are computed from the
clock at request time): mobile ``PENDING`` 2-15 s, ``HANDLING`` 3-8 s, then the
outcome, ``UNKNOWN_ERROR`` lasting 1-12 h; internet ``HANDLING`` 3-45 s, then the
outcome, ``QUEUED`` lasting 12-48 h; gift cards ``HANDLING`` 1-5 s.

Authentication: no token is a 401 ``MISSING_ACCESS_TOKEN``; a wrong one a 401
``INVALID_ACCESS_TOKEN`` whose ``details.attemptsLeft`` counts down from 4. The fifth
wrong token in a row from one client address blocks that address for 15 min (x
``time_scale``): every request from it is then a 403 ``IP_BLOCKED``, even with the
right token. A right token resets the count. The token is checked before routing, so an
unknown path without it is a 401.

Our own choices where OneClickDZ documents nothing: codes ``OUT_OF_STOCK`` (400),
``NOT_FOUND`` for unknown routes and ids (malformed ids are simply not found),
``METHOD_NOT_ALLOWED`` (405, with ``Allow``); ``ERR_VALIDATION`` lists every bad field
in ``details.errors`` and its message is the first one's; ``Retry-After`` is only sent
with injected 429/503 faults; the simulator emits no absolute URL, so
``public_base_url`` has nothing to change.
"""

from __future__ import annotations

import datetime as dt
import heapq
import hmac
import json
import random
import re
import string
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._base import (
    ASGIApp,
    FaultInjector,
    FaultProfile,
    Faults,
    Receive,
    Scope,
    Send,
    Timeline,
)

__all__ = ["GIFT_PRODUCT", "PROFILE", "create_app"]

PENDING: Final = "PENDING"
HANDLING: Final = "HANDLING"
FULFILLED: Final = "FULFILLED"
REFUNDED: Final = "REFUNDED"
UNKNOWN_ERROR: Final = "UNKNOWN_ERROR"
QUEUED: Final = "QUEUED"
PARTIALLY_FILLED: Final = "PARTIALLY_FILLED"

#: The gift card product whose types carry the outcome triggers.
GIFT_PRODUCT: Final = "5f0c0ffee0ddba11c0ffee01"

_HOUR: Final = 3600.0
#: Seconds in each state, as documented (before ``time_scale``).
_MOBILE_PENDING: Final = (2.0, 15.0)
_MOBILE_HANDLING: Final = (3.0, 8.0)
_MOBILE_UNKNOWN: Final = (1 * _HOUR, 12 * _HOUR)
_INTERNET_HANDLING: Final = (3.0, 45.0)
_INTERNET_QUEUED: Final = (12 * _HOUR, 48 * _HOUR)
_GIFT_HANDLING: Final = (1.0, 5.0)

_INITIAL_BALANCE_CENTS: Final = 100_000 * 100
_KEY_ATTEMPTS: Final = 5
_IP_BLOCK_SECONDS: Final = 15 * 60.0

_MSSIDN: Final = re.compile(r"0[567]\d{8}")
_OPERATOR_BY_PREFIX: Final = {"5": "Ooredoo", "6": "Mobilis", "7": "Djezzy"}
_INTERNET_NUMBER: Final = {"ADSL": re.compile(r"0\d{8}"), "4G": re.compile(r"213\d{9}")}
_INTERNET_RULE: Final = {
    "ADSL": "ADSL numbers are 0 followed by 8 digits",
    "4G": "4G numbers are 213 followed by 9 digits",
}
_CARD_VALUES: Final = (500, 1000, 2000, 3000)
# 3000 DZD cards are rare, so that running out of stock is easy to reach.
_CARD_STOCK: Final = {500: 1000, 1000: 1000, 2000: 1000, 3000: 3}
_OFFERS: Final = {
    "ADSL": ("ADSL 8 Mega", "ADSL 15 Mega", "ADSL 20 Mega"),
    "4G": ("4G LTE 30 Go", "4G LTE 60 Go", "4G LTE 100 Go"),
}

# Texts for the end user, in Arabic as the vendor's are.
_REFUND_PLAN_MISMATCH: Final = (
    "العرض غير متوافق مع هذا الرقم، تم إرجاع المبلغ إلى رصيدك"
)
_REFUND_FAILED: Final = "تعذر إتمام عملية الشحن، تم إرجاع المبلغ إلى رصيدك"
_UNKNOWN_MESSAGE: Final = "حالة العملية غير معروفة، جاري التحقق منها"


@attrs.frozen(kw_only=True)
class _Plan:
    """A mobile plan: fixed (``amount``) or dynamic (``min_amount..max_amount``)."""

    code: str
    name: str
    operator: str
    cost: float = 0.98
    #: The price of a fixed plan; None for a dynamic one.
    amount: int | None = None
    #: The range of a dynamic plan (not shown for fixed ones).
    min_amount: int = 0
    max_amount: int = 0

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "name": self.name,
            "operator": self.operator,
            "cost": self.cost,
            "isEnabled": True,
        }
        if self.amount is None:
            body.update(min_amount=self.min_amount, max_amount=self.max_amount)
        else:
            body["amount"] = self.amount
        return body


_PLANS: Final = (
    _Plan(code="PREPAID_MOBILIS", name="Mobilis Prepaid", operator="Mobilis",
          min_amount=50, max_amount=5000),
    _Plan(code="PREPAID_DJEZZY", name="Djezzy Prepaid", operator="Djezzy",
          min_amount=50, max_amount=5000),
    _Plan(code="PREPAID_OOREDOO", name="Ooredoo Prepaid", operator="Ooredoo",
          min_amount=50, max_amount=5000),
    _Plan(code="MIX300_MOBILIS", name="Mix 300", operator="Mobilis", amount=300),
    _Plan(code="MIX1000_MOBILIS", name="Mix 1000", operator="Mobilis", amount=1000),
    _Plan(code="MIX500_DJEZZY", name="Djezzy Mix 500", operator="Djezzy", amount=500),
    _Plan(code="MIX500_OOREDOO", name="Ooredoo Mix 500", operator="Ooredoo",
          amount=500),
)  # fmt: skip
_PLAN_BY_CODE: Final = {plan.code: plan for plan in _PLANS}


@attrs.frozen(kw_only=True)
class _CardType:
    """One denomination of a gift card product."""

    id: str
    name: str
    price: int
    stock: int


@attrs.frozen(kw_only=True)
class _Product:
    """A gift card product of the catalogue."""

    id: str
    title: str
    category: str
    region: str
    types: tuple[_CardType, ...]

    def type(self, type_id: str) -> _CardType | None:
        return next((t for t in self.types if t.id == type_id), None)


_PRODUCTS: Final = (
    _Product(
        id=GIFT_PRODUCT,
        title="PlayStation Network (US)",
        category="PSN",
        region="us",
        types=(
            _CardType(id="type_001", name="PSN 5 USD", price=490, stock=500),
            _CardType(id="type_002", name="PSN 10 USD", price=980, stock=300),
            _CardType(id="type_003", name="PSN 20 USD", price=1960, stock=200),
            _CardType(id="type_004", name="PSN 50 USD", price=4900, stock=50),
        ),
    ),
    _Product(
        id="5f0c0ffee0ddba11c0ffee02",
        title="Google Play (FR)",
        category="Game Stores",
        region="fr",
        types=(
            _CardType(id="type_101", name="Google Play 10 EUR", price=2300, stock=100),
            _CardType(id="type_102", name="Google Play 25 EUR", price=5700, stock=40),
        ),
    ),
)
_PRODUCT_BY_ID: Final = {product.id: product for product in _PRODUCTS}

_ERROR_CODES: Final = {
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
}
# Fault bodies are built without the service at hand; their request ids need no seed.
_FAULT_IDS: Final = random.Random()  # noqa: S311 - simulation, not security


def _request_id(epoch: float, rng: random.Random) -> str:
    suffix = "".join(rng.choices(string.ascii_lowercase + string.digits, k=6))
    return f"req_{int(epoch)}_{suffix}"


def _error_envelope(
    code: str, message: str, details: Mapping[str, Any] | None, request_id: str
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = dict(details)
    return {"success": False, "error": error, "requestId": request_id}


def _fault_error_body(status: int, reason: str) -> dict[str, Any]:
    code = _ERROR_CODES.get(status, f"HTTP_{status}")
    return _error_envelope(code, reason, None, _request_id(time.time(), _FAULT_IDS))


#: What the fault injector needs to know about OneClickDZ.
PROFILE: Final = FaultProfile(
    status_pointer="/data/status",
    unknown_value="EXPLODING",
    error_body=_fault_error_body,
    earlier={
        HANDLING: PENDING,
        FULFILLED: HANDLING,
        REFUNDED: HANDLING,
        UNKNOWN_ERROR: HANDLING,
        QUEUED: HANDLING,
        PARTIALLY_FILLED: HANDLING,
    },
)


def _timestamp(value: dt.datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _money(cents: int) -> int | float:
    """Render centimes as the vendor does: 294 for whole dinars, 1326.13 otherwise."""
    return cents // 100 if cents % 100 == 0 else cents / 100


def _hex_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(96):024x}"


@attrs.frozen(kw_only=True)
class _MobileTopup:
    """One mobile top-up and its planned life."""

    id: str
    ref: str
    plan: _Plan
    mssidn: str
    amount: int
    charge_cents: int
    created_at: dt.datetime
    timeline: Timeline
    #: Whether a refund comes with suggested_offers (the plan did not match the line).
    plan_mismatch: bool


@attrs.frozen(kw_only=True)
class _InternetTopup:
    """One internet card order and its planned life."""

    id: str
    ref: str
    type: str
    number: str
    value: int
    created_at: dt.datetime
    timeline: Timeline
    # Drawn at creation so that every poll shows the same credentials.
    card_code: str
    num_trans: str
    done_at: dt.datetime


@attrs.frozen(kw_only=True)
class _GiftOrder:
    """One gift card order and its planned life."""

    id: str
    product: str
    type_id: str
    quantity: int
    price: int
    created_at: dt.datetime
    timeline: Timeline
    #: The cards delivered once the order ends (fewer than quantity unless FULFILLED).
    cards: tuple[tuple[str, str], ...]


@attrs.define
class _Ledger:
    """Balance (in centimes) and stock, with refunds that land when their order ends.

    Order states are computed lazily from the clock, so refunds are too: each is
    queued with the clock time its order reaches the refunding state and applied by
    the first request at or after that time. A heap keeps that cheap with many orders.
    """

    cents: int
    stock: dict[str, int]
    _due: list[tuple[float, int, int, str, int]] = attrs.field(factory=list)
    _seq: int = 0

    def settle(self, now: float) -> None:
        while self._due and self._due[0][0] <= now:
            _, _, cents, key, count = heapq.heappop(self._due)
            self.cents += cents
            if key:
                self.stock[key] += count

    def later(self, at: float, *, cents: int, key: str = "", count: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._due, (at, self._seq, cents, key, count))


class _Problems:
    """Collects bad fields so that one ERR_VALIDATION names every one of them."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def text(
        self, body: Mapping[str, Any], name: str, *, required: bool = True
    ) -> str | None:
        value = body.get(name)
        if value is None:
            if required:
                self.add(name, f"{name} is required")
            return None
        if not isinstance(value, str) or not value:
            self.add(name, f"{name} must be a non-empty string")
            return None
        return value

    def integer(self, body: Mapping[str, Any], name: str) -> int | None:
        value = body.get(name)
        if value is None:
            self.add(name, f"{name} is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(name, f"{name} must be an integer")
            return None
        return value


def _stock_key(*parts: str | int) -> str:
    return ":".join(str(p) for p in parts)


def _initial_stock() -> dict[str, int]:
    stock = {
        _stock_key(kind, value): _CARD_STOCK[value]
        for kind in _INTERNET_NUMBER
        for value in _CARD_VALUES
    }
    for product in _PRODUCTS:
        for card in product.types:
            stock[_stock_key(product.id, card.id)] = card.stock
    return stock


class _Service:
    """The in-memory OneClickDZ: account, orders by id and by ref, and the handlers."""

    def __init__(
        self,
        *,
        seed: int | None,
        time_scale: float,
        clock: Callable[[], float],
        api_key: str,
    ) -> None:
        # Outcomes, durations and ids: a fixed number of draws per order, so that a
        # trigger on one order does not reshuffle the orders after it.
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        # Card codes and generated refs, whose number of draws varies per order.
        self.content = random.Random(None if seed is None else f"{seed}:content")  # noqa: S311 - simulation
        # Request ids, drawn per request: polling must not move the outcomes.
        self.request_ids = random.Random(None if seed is None else f"{seed}:requests")  # noqa: S311 - simulation
        self.time_scale = time_scale
        self.clock = clock
        self.api_key = api_key.encode()
        self.ledger = _Ledger(_INITIAL_BALANCE_CENTS, _initial_stock())
        self.mobile: dict[str, _MobileTopup] = {}
        self.mobile_refs: dict[str, _MobileTopup] = {}
        self.internet: dict[str, _InternetTopup] = {}
        self.internet_refs: dict[str, _InternetTopup] = {}
        self.gifts: dict[str, _GiftOrder] = {}
        self.next_serial = 700001
        self.failed_keys: dict[str, int] = {}
        self.blocked_until: dict[str, float] = {}
        # One wall-clock anchor: every timestamp is the anchor plus clock time, so
        # an injected fake clock moves the timestamps too.
        self.wall_anchor = dt.datetime.now(dt.UTC)
        self.clock_anchor = clock()

    # -- envelopes ---------------------------------------------------------------

    def wall(self, clock_time: float) -> dt.datetime:
        return self.wall_anchor + dt.timedelta(seconds=clock_time - self.clock_anchor)

    def new_request_id(self) -> str:
        return _request_id(self.wall(self.clock()).timestamp(), self.request_ids)

    def ok(self, data: Mapping[str, Any]) -> JSONResponse:
        body = {
            "success": True,
            "data": dict(data),
            "meta": {"timestamp": _timestamp(self.wall(self.clock()))},
            "requestId": self.new_request_id(),
        }
        return JSONResponse(body)

    def fail(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        body = _error_envelope(code, message, details, self.new_request_id())
        return JSONResponse(body, status_code=status, headers=headers)

    def invalid(self, problems: _Problems) -> JSONResponse:
        message = problems.items[0]["message"]
        return self.fail(400, "ERR_VALIDATION", message, {"errors": problems.items})

    async def read_object(self, request: Request) -> dict[str, Any] | Response:
        raw = await request.body()
        problems = _Problems()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            problems.add("body", "Request body must be valid JSON")
            return self.invalid(problems)
        if not isinstance(body, dict):
            problems.add("body", "Request body must be a JSON object")
            return self.invalid(problems)
        return body

    # -- authentication ----------------------------------------------------------

    def refusal(self, host: str, given: bytes | None) -> Response | None:
        """Return the answer to a request without the right token, else None."""
        now = self.clock()
        until = self.blocked_until.get(host)
        if until is not None:
            if now < until:
                details = {"blockedUntil": _timestamp(self.wall(until))}
                message = "Too many failed attempts; this IP is temporarily blocked"
                return self.fail(403, "IP_BLOCKED", message, details)
            del self.blocked_until[host]
        if not given:
            return self.fail(401, "MISSING_ACCESS_TOKEN", "Access token is required")
        # Constant-time, so the simulator does not teach a timing side channel.
        if hmac.compare_digest(given, self.api_key):
            self.failed_keys.pop(host, None)
            return None
        failures = self.failed_keys.get(host, 0) + 1
        self.failed_keys[host] = failures
        left = max(0, _KEY_ATTEMPTS - failures)
        if left == 0:
            self.failed_keys.pop(host)
            self.blocked_until[host] = now + _IP_BLOCK_SECONDS * self.time_scale
        return self.fail(
            401,
            "INVALID_ACCESS_TOKEN",
            "The provided access token is invalid",
            {"attemptsLeft": left},
        )

    # -- account -----------------------------------------------------------------

    async def validate(self, _request: Request) -> Response:
        key = self.api_key.decode()
        masked = key[:4] + "*" * max(0, len(key) - 4)
        api_key = {
            "key": masked,
            "isEnabled": True,
            "type": "SANDBOX",
            "allowedips": [],
            "scope": "READ-WRITE",
        }
        return self.ok({"username": "+213555000111", "apiKey": api_key})

    async def balance(self, _request: Request) -> Response:
        self.ledger.settle(self.clock())
        return self.ok({"balance": _money(self.ledger.cents)})

    def refuse_charge(self, cents: int) -> Response | None:
        """Return the 403 for a charge the balance cannot cover, else None."""
        self.ledger.settle(self.clock())
        available = self.ledger.cents
        if cents <= available:
            return None
        details = {"required": _money(cents), "available": _money(available)}
        if available <= 0:
            return self.fail(403, "NO_BALANCE", "Your balance is empty", details)
        message = "Your balance is insufficient for this operation"
        return self.fail(403, "INSUFFICIENT_BALANCE", message, details)

    def refuse_stock(self, key: str, wanted: int) -> Response | None:
        """Return the 400 for more cards than in stock, else None."""
        self.ledger.settle(self.clock())
        available = self.ledger.stock[key]
        if wanted <= available:
            return None
        details = {"requested": wanted, "available": available}
        return self.fail(400, "OUT_OF_STOCK", "Not enough cards in stock", details)

    def refuse_ref(
        self, refs: Mapping[str, object], ref: str | None
    ) -> Response | None:
        if ref is None or ref not in refs:
            return None
        message = "This reference ID is already in use"
        return self.fail(403, "DUPLICATED_REF", message, {"ref": ref})

    def new_ref(self) -> str:
        return f"oc-{self.content.getrandbits(64):016x}"

    def durations(self, *ranges: tuple[float, float]) -> list[float]:
        return [self.rng.uniform(low, high) for low, high in ranges]

    # -- mobile ------------------------------------------------------------------

    async def mobile_plans(self, _request: Request) -> Response:
        dynamic = [p.as_json() for p in _PLANS if p.amount is None]
        fixed = [p.as_json() for p in _PLANS if p.amount is not None]
        return self.ok({"dynamicPlans": dynamic, "fixedPlans": fixed})

    async def mobile_send(self, request: Request) -> Response:
        body = await self.read_object(request)
        if isinstance(body, Response):
            return body
        problems = _Problems()
        plan, mssidn, amount = _parse_mobile(body, problems)
        ref = problems.text(body, "ref", required=False)
        if problems.items or plan is None or mssidn is None or amount is None:
            return self.invalid(problems)
        charge = round(amount * plan.cost * 100)
        refusal = self.refuse_ref(self.mobile_refs, ref) or self.refuse_charge(charge)
        if refusal is not None:
            return refusal
        topup = self.plan_mobile(plan, mssidn, amount, charge, ref or self.new_ref())
        self.mobile[topup.id] = topup
        self.mobile_refs[topup.ref] = topup
        self.ledger.cents -= charge
        if topup.timeline.final == REFUNDED:
            self.ledger.later(topup.timeline.ends_at, cents=charge)
        return self.ok({"topupId": topup.id, "topupRef": topup.ref})

    def plan_mobile(
        self, plan: _Plan, mssidn: str, amount: int, charge: int, ref: str
    ) -> _MobileTopup:
        """Draw a mobile top-up's id, outcome and durations from the seeded RNG."""
        topup_id = _hex_id(self.rng)
        draw, resolve = self.rng.random(), self.rng.random()
        pending, handling, unknown = self.durations(
            _MOBILE_PENDING, _MOBILE_HANDLING, _MOBILE_UNKNOWN
        )
        trigger = mssidn[-2:]
        outcomes = {
            "01": (FULFILLED, False),
            "02": (REFUNDED, False),
            "03": (FULFILLED, True),
            "04": (REFUNDED, True),
        }
        if trigger in outcomes:
            final, via_unknown = outcomes[trigger]
        elif draw < 0.80:
            final, via_unknown = FULFILLED, False
        elif draw < 0.92:
            final, via_unknown = REFUNDED, False
        else:
            final, via_unknown = (FULFILLED if resolve < 0.7 else REFUNDED), True
        path = [(PENDING, pending), (HANDLING, handling)]
        if via_unknown:
            path.append((UNKNOWN_ERROR, unknown))
        now = self.clock()
        return _MobileTopup(
            id=topup_id,
            ref=ref,
            plan=plan,
            mssidn=mssidn,
            amount=amount,
            charge_cents=charge,
            created_at=self.wall(now),
            timeline=Timeline.build(
                now, tuple(path), final, time_scale=self.time_scale
            ),
            plan_mismatch=trigger == "02",
        )

    def mobile_body(self, topup: _MobileTopup) -> dict[str, Any]:
        state = topup.timeline.state_at(self.clock())
        body: dict[str, Any] = {
            "_id": topup.id,
            "ref": topup.ref,
            "status": state,
            "plan_code": topup.plan.code,
            "MSSIDN": topup.mssidn,
            "topup_amount": topup.amount,
            "balance_amount": _money(topup.charge_cents),
            "created_at": _timestamp(topup.created_at),
        }
        if state == UNKNOWN_ERROR:
            body["refund_message"] = _UNKNOWN_MESSAGE
        elif state == REFUNDED and topup.plan_mismatch:
            body["refund_message"] = _REFUND_PLAN_MISMATCH
            body["suggested_offers"] = _suggested_offers(topup.plan)
        elif state == REFUNDED:
            body["refund_message"] = _REFUND_FAILED
        body.update(follow_orderid=None, retry_orderid=None)
        return body

    async def mobile_check_id(self, request: Request) -> Response:
        topup_id: str = request.path_params["topupId"]
        topup = self.mobile.get(topup_id.lower())
        if topup is None:
            return self.not_found(f"Top-up with id '{topup_id}' not found")
        return self.ok(self.mobile_body(topup))

    async def mobile_check_ref(self, request: Request) -> Response:
        ref: str = request.path_params["ref"]
        topup = self.mobile_refs.get(ref)
        if topup is None:
            return self.not_found(f"Top-up with reference '{ref}' not found")
        return self.ok(self.mobile_body(topup))

    # -- internet ----------------------------------------------------------------

    def query_type(self, request: Request) -> str | Response:
        kind = request.query_params.get("type")
        if kind in _INTERNET_NUMBER:
            return kind
        problems = _Problems()
        problems.add("type", "type must be ADSL or 4G")
        return self.invalid(problems)

    async def internet_products(self, request: Request) -> Response:
        kind = self.query_type(request)
        if isinstance(kind, Response):
            return kind
        self.ledger.settle(self.clock())
        products = [
            {
                "value": value,
                "cost": value,
                "available": self.ledger.stock[_stock_key(kind, value)] > 0,
            }
            for value in _CARD_VALUES
        ]
        return self.ok({"products": products, "type": kind})

    async def internet_check_number(self, request: Request) -> Response:
        kind = self.query_type(request)
        if isinstance(kind, Response):
            return kind
        number = request.query_params.get("number", "")
        if not _INTERNET_NUMBER[kind].fullmatch(number):
            details = {"number": number, "type": kind, "reason": _INTERNET_RULE[kind]}
            return self.fail(400, "ERR_PHONE", f"Invalid {kind} number", details)
        digits = int(number)
        offers = _OFFERS[kind]
        return self.ok(
            {
                "ncli": f"{digits % 90000 + 10000}*****",
                "offre": offers[digits % len(offers)],
                "type": "ADSL" if kind == "ADSL" else "4GLTE",
            }
        )

    async def internet_send(self, request: Request) -> Response:
        body = await self.read_object(request)
        if isinstance(body, Response):
            return body
        problems = _Problems()
        kind, number, value = _parse_internet(body, problems)
        ref = problems.text(body, "ref", required=False)
        if problems.items or kind is None or number is None or value is None:
            return self.invalid(problems)
        key = _stock_key(kind, value)
        refusal = (
            self.refuse_ref(self.internet_refs, ref)
            or self.refuse_stock(key, 1)
            or self.refuse_charge(value * 100)
        )
        if refusal is not None:
            return refusal
        topup = self.plan_internet(kind, number, value, ref or self.new_ref())
        self.internet[topup.id] = topup
        self.internet_refs[topup.ref] = topup
        self.ledger.cents -= value * 100
        self.ledger.stock[key] -= 1
        if topup.timeline.final == REFUNDED:
            self.ledger.later(
                topup.timeline.ends_at, cents=value * 100, key=key, count=1
            )
        return self.ok({"topupId": topup.id, "topupRef": topup.ref})

    def plan_internet(
        self, kind: str, number: str, value: int, ref: str
    ) -> _InternetTopup:
        """Draw an internet order's id, outcome and durations from the seeded RNG."""
        topup_id = _hex_id(self.rng)
        draw, resolve = self.rng.random(), self.rng.random()
        handling, queued = self.durations(_INTERNET_HANDLING, _INTERNET_QUEUED)
        outcomes = {
            "01": (FULFILLED, False),
            "02": (REFUNDED, False),
            "03": (FULFILLED, True),
            "04": (REFUNDED, True),
        }
        trigger = number[-2:]
        if trigger in outcomes:
            final, via_queue = outcomes[trigger]
        elif draw < 0.80:
            final, via_queue = FULFILLED, False
        elif draw < 0.90:
            final, via_queue = REFUNDED, False
        else:
            final, via_queue = (FULFILLED if resolve < 0.8 else REFUNDED), True
        path = [(HANDLING, handling)]
        if via_queue:
            path.append((QUEUED, queued))
        now = self.clock()
        timeline = Timeline.build(now, tuple(path), final, time_scale=self.time_scale)
        created = self.wall(now)
        return _InternetTopup(
            id=topup_id,
            ref=ref,
            type=kind,
            number=number,
            value=value,
            created_at=created,
            timeline=timeline,
            card_code="".join(self.content.choices(string.digits, k=12)),
            num_trans=f"AT-{created.year}-{self.content.randint(10000, 99999)}",
            done_at=self.wall(timeline.ends_at),
        )

    def internet_body(self, topup: _InternetTopup) -> dict[str, Any]:
        state = topup.timeline.state_at(self.clock())
        body: dict[str, Any] = {
            "_id": topup.id,
            "ref": topup.ref,
            "status": state,
            "type": topup.type,
            "number": topup.number,
            "topup_amount": topup.value,
            "created_at": _timestamp(topup.created_at),
        }
        if state == FULFILLED:
            body.update(
                card_code=topup.card_code,
                num_trans=topup.num_trans,
                date_traitement=_timestamp(topup.done_at),
            )
        return body

    async def internet_check_id(self, request: Request) -> Response:
        topup_id: str = request.path_params["topupId"]
        topup = self.internet.get(topup_id.lower())
        if topup is None:
            return self.not_found(f"Top-up with id '{topup_id}' not found")
        return self.ok(self.internet_body(topup))

    async def internet_check_ref(self, request: Request) -> Response:
        ref: str = request.path_params["ref"]
        topup = self.internet_refs.get(ref)
        if topup is None:
            return self.not_found(f"Top-up with reference '{ref}' not found")
        return self.ok(self.internet_body(topup))

    # -- gift cards --------------------------------------------------------------

    async def gift_catalog(self, _request: Request) -> Response:
        categories: dict[str, list[dict[str, Any]]] = {}
        for product in _PRODUCTS:
            entry = {
                "id": product.id,
                "title": product.title,
                "enabled": True,
                "region": product.region,
            }
            categories.setdefault(product.category, []).append(entry)
        listed = [
            {"title": title, "products": products}
            for title, products in categories.items()
        ]
        return self.ok({"categories": listed})

    async def gift_check_product(self, request: Request) -> Response:
        product_id: str = request.path_params["productId"]
        product = _PRODUCT_BY_ID.get(product_id.lower())
        if product is None:
            return self.not_found(f"Product with id '{product_id}' not found")
        self.ledger.settle(self.clock())
        types = [
            {
                "id": card.id,
                "name": card.name,
                "price": card.price,
                "quantity": self.ledger.stock[_stock_key(product.id, card.id)],
            }
            for card in product.types
        ]
        return self.ok(
            {"productId": product.id, "productTitle": product.title, "types": types}
        )

    async def gift_place_order(self, request: Request) -> Response:
        body = await self.read_object(request)
        if isinstance(body, Response):
            return body
        problems = _Problems()
        product, card, quantity = _parse_gift(body, problems)
        if problems.items or product is None or card is None or quantity is None:
            return self.invalid(problems)
        key = _stock_key(product.id, card.id)
        cost = card.price * quantity * 100
        refusal = self.refuse_stock(key, quantity) or self.refuse_charge(cost)
        if refusal is not None:
            return refusal
        order = self.plan_gift(product, card, quantity)
        self.gifts[order.id] = order
        self.ledger.cents -= cost
        self.ledger.stock[key] -= quantity
        missing = quantity - len(order.cards)
        if missing:
            self.ledger.later(
                order.timeline.ends_at,
                cents=missing * card.price * 100,
                key=key,
                count=missing,
            )
        return self.ok({"orderId": order.id})

    def plan_gift(
        self, product: _Product, card: _CardType, quantity: int
    ) -> _GiftOrder:
        """Draw a gift card order's id, outcome and duration from the seeded RNG."""
        order_id = _hex_id(self.rng)
        draw, share = self.rng.random(), self.rng.random()
        (handling,) = self.durations(_GIFT_HANDLING)
        chosen = {"type_001": FULFILLED, "type_002": PARTIALLY_FILLED}.get(card.id)
        if card.id == "type_003":
            chosen = REFUNDED
        if chosen is None:
            chosen = (
                FULFILLED
                if draw < 0.80
                else PARTIALLY_FILLED
                if draw < 0.90
                else REFUNDED
            )
        # A partial fill needs at least one card delivered and one missing.
        if chosen == PARTIALLY_FILLED and quantity < 2:
            chosen = REFUNDED
        delivered = {
            FULFILLED: quantity,
            PARTIALLY_FILLED: 1 + int(share * (quantity - 1)),
            REFUNDED: 0,
        }[chosen]
        now = self.clock()
        return _GiftOrder(
            id=order_id,
            product=product.id,
            type_id=card.id,
            quantity=quantity,
            price=card.price,
            created_at=self.wall(now),
            timeline=Timeline.build(
                now, ((HANDLING, handling),), chosen, time_scale=self.time_scale
            ),
            cards=tuple(self.new_card() for _ in range(delivered)),
        )

    def new_card(self) -> tuple[str, str]:
        alphabet = string.ascii_uppercase + string.digits
        groups = ("".join(self.content.choices(alphabet, k=4)) for _ in range(4))
        serial = str(self.next_serial)
        self.next_serial += 1
        return "-".join(groups), serial

    def gift_body(self, order: _GiftOrder) -> dict[str, Any]:
        state = order.timeline.state_at(self.clock())
        body: dict[str, Any] = {
            "_id": order.id,
            "status": state,
            "quantity": order.quantity,
            "product": order.product,
            "type": order.type_id,
            "time": _timestamp(order.created_at),
        }
        if state != HANDLING:
            body.update(
                fulfilled_quantity=len(order.cards),
                fulfilled_amount=len(order.cards) * order.price,
                price_per_card=order.price,
                cards=[
                    {"value": value, "serial": serial} for value, serial in order.cards
                ],
            )
        return body

    async def gift_check_order(self, request: Request) -> Response:
        order_id: str = request.path_params["orderId"]
        order = self.gifts.get(order_id.lower())
        if order is None:
            return self.not_found(f"Order with id '{order_id}' not found")
        return self.ok(self.gift_body(order))

    # -- errors ------------------------------------------------------------------

    def not_found(self, message: str) -> JSONResponse:
        return self.fail(404, "NOT_FOUND", message)

    def http_error(self, request: Request, exc: Exception) -> Response:
        """Render Starlette's own 404/405 (unknown route, wrong method) in our shape."""
        if not isinstance(
            exc, HTTPException
        ):  # pragma: no cover - only registered for it
            raise exc
        route = f"{request.method} {request.url.path}"
        if exc.status_code == 405:
            message = f"Method not allowed: {route}"
            return self.fail(405, "METHOD_NOT_ALLOWED", message, headers=exc.headers)
        if exc.status_code == 404:
            return self.not_found(f"Route {route} not found")
        return self.fail(exc.status_code, f"HTTP_{exc.status_code}", str(exc.detail))


def _suggested_offers(plan: _Plan) -> list[dict[str, Any]]:
    """Return the fixed plans of the line's operator, as a refund's suggestions."""
    return [
        {"typename": p.name, "plan_code": p.code, "amount": p.amount}
        for p in _PLANS
        if p.amount is not None and p.operator == plan.operator
    ]


def _parse_mobile(
    body: Mapping[str, Any], problems: _Problems
) -> tuple[_Plan | None, str | None, int | None]:
    """Return the plan, MSSIDN and amount of a mobile send (None where invalid)."""
    plan = None
    code = problems.text(body, "plan_code")
    if code is not None:
        plan = _PLAN_BY_CODE.get(code)
        if plan is None:
            problems.add("plan_code", f"Unknown plan_code '{code}'")
    mssidn = problems.text(body, "MSSIDN")
    if mssidn is not None and not _MSSIDN.fullmatch(mssidn):
        message = "MSSIDN must be 0 then 5, 6 or 7, then 8 digits (e.g. 0661234567)"
        problems.add("MSSIDN", message)
        mssidn = None
    if plan is not None and mssidn is not None:
        operator = _OPERATOR_BY_PREFIX[mssidn[1]]
        if operator != plan.operator:
            message = f"MSSIDN {mssidn} is a {operator} number; {plan.code} is {plan.operator}"
            problems.add("MSSIDN", message)
            mssidn = None
    if plan is None:
        return None, mssidn, None
    if plan.amount is not None:  # fixed plans: any amount sent is ignored
        return plan, mssidn, plan.amount
    amount = problems.integer(body, "amount")
    low, high = plan.min_amount, plan.max_amount
    if amount is not None and not low <= amount <= high:
        message = f"amount must be between {low} and {high} for {plan.code}"
        problems.add("amount", message)
        amount = None
    return plan, mssidn, amount


def _parse_internet(
    body: Mapping[str, Any], problems: _Problems
) -> tuple[str | None, str | None, int | None]:
    """Return the type, number and card value of an internet send."""
    kind = problems.text(body, "type")
    if kind is not None and kind not in _INTERNET_NUMBER:
        problems.add("type", "type must be ADSL or 4G")
        kind = None
    number = problems.text(body, "number")
    if number is not None and kind is not None:
        number = _check_number(number, kind, problems)
    value = problems.integer(body, "value")
    if value is not None and value not in _CARD_VALUES:
        problems.add(
            "value", f"value must be one of {', '.join(map(str, _CARD_VALUES))}"
        )
        value = None
    return kind, number, value


def _check_number(number: str, kind: str, problems: _Problems) -> str | None:
    """Return ``number`` if it fits ``kind``; else note why and return None."""
    if _INTERNET_NUMBER[kind].fullmatch(number):
        return number
    other = "4G" if kind == "ADSL" else "ADSL"
    if _INTERNET_NUMBER[other].fullmatch(number):
        problems.add("number", f"number {number} is a {other} number, not {kind}")
    else:
        problems.add("number", _INTERNET_RULE[kind])
    return None


def _parse_gift(
    body: Mapping[str, Any], problems: _Problems
) -> tuple[_Product | None, _CardType | None, int | None]:
    """Return the product, type and quantity of a gift card order."""
    product = card = None
    product_id = problems.text(body, "productId")
    if product_id is not None:
        product = _PRODUCT_BY_ID.get(product_id.lower())
        if product is None:
            problems.add("productId", f"Unknown productId '{product_id}'")
    type_id = problems.text(body, "typeId")
    if type_id is not None and product is not None:
        card = product.type(type_id)
        if card is None:
            problems.add(
                "typeId", f"Unknown typeId '{type_id}' for product {product.id}"
            )
    quantity = problems.integer(body, "quantity")
    if quantity is not None and quantity < 1:
        problems.add("quantity", "quantity must be at least 1")
        quantity = None
    return product, card, quantity


class _RequireToken:
    """ASGI wrapper that refuses requests without the exact access token."""

    def __init__(self, app: ASGIApp, service: _Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"x-access-token")
            client = scope.get("client")
            host = str(client[0]) if client else "unknown"
            refusal = self.service.refusal(host, given)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    api_key: str = "sim-key",
    faults: Faults | None = None,
    clock: Callable[[], float] = time.monotonic,
    public_base_url: str | None = None,
) -> FaultInjector:
    """Build the OneClickDZ v3 simulator, wrapped in the fault injector.

    Args:
        seed: Seeds ids, durations and the outcomes the client did not choose.
        time_scale: Multiplies every duration (``0.01`` runs 100 times faster), the
            IP block included.
        api_key: The only value of ``X-Access-Token`` that is accepted.
        faults: Faults to inject; none by default.
        clock: Monotonic clock that drives the order timelines.
        public_base_url: Accepted for the common signature; OneClickDZ answers carry
            no absolute URL, so there is nothing for it to change.

    Returns:
        The ASGI app; ``.counts`` tells which faults fired.
    """
    del public_base_url  # no link to rewrite: see the docstring
    service = _Service(seed=seed, time_scale=time_scale, clock=clock, api_key=api_key)
    get, post = ["GET"], ["POST"]
    routes = [
        Route("/v3/validate", service.validate, methods=get),
        Route("/v3/account/balance", service.balance, methods=get),
        Route("/v3/mobile/plans", service.mobile_plans, methods=get),
        Route("/v3/mobile/send", service.mobile_send, methods=post),
        Route("/v3/mobile/check-id/{topupId}", service.mobile_check_id, methods=get),
        Route("/v3/mobile/check-ref/{ref}", service.mobile_check_ref, methods=get),
        Route("/v3/internet/products", service.internet_products, methods=get),
        Route("/v3/internet/check-number", service.internet_check_number, methods=get),
        Route("/v3/internet/send", service.internet_send, methods=post),
        Route(
            "/v3/internet/check-id/{topupId}", service.internet_check_id, methods=get
        ),
        Route("/v3/internet/check-ref/{ref}", service.internet_check_ref, methods=get),
        Route("/v3/gift-cards/catalog", service.gift_catalog, methods=get),
        Route(
            "/v3/gift-cards/checkProduct/{productId}",
            service.gift_check_product,
            methods=get,
        ),
        Route("/v3/gift-cards/placeOrder", service.gift_place_order, methods=post),
        Route(
            "/v3/gift-cards/checkOrder/{orderId}", service.gift_check_order, methods=get
        ),
    ]
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: service.http_error}
    )
    return FaultInjector(
        _RequireToken(app, service), faults or Faults(), PROFILE, seed=seed
    )
