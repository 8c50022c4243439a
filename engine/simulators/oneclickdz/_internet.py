"""OneClickDZ simulator: the internet card handlers (products, number check, send, checks)."""

from __future__ import annotations

import string
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine.simulators._base import Timeline

from ._core import _ServiceCore
from ._models import (
    _CARD_VALUES,
    _INTERNET_HANDLING,
    _INTERNET_NUMBER,
    _INTERNET_QUEUED,
    _INTERNET_RULE,
    _OFFERS,
    FULFILLED,
    HANDLING,
    QUEUED,
    REFUNDED,
    _hex_id,
    _InternetTopup,
    _stock_key,
    _timestamp,
)
from ._parse import _parse_internet, _Problems


class _InternetHandlers(_ServiceCore):
    """The ``/v3/internet/...`` handlers."""

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
