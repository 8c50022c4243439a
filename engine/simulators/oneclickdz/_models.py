"""OneClickDZ simulator: constants, plans and products, the fault profile, orders and the ledger."""

from __future__ import annotations

import datetime as dt
import heapq
import random
import re
import string
import time
from collections.abc import Mapping
from typing import Any, Final

import attrs

from engine.simulators._base import FaultProfile, Timeline

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
