"""OneClickDZ simulator: the mobile top-up handlers (plans, send, check by id and ref)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine.simulators._base import Timeline

from ._core import _ServiceCore
from ._models import (
    _MOBILE_HANDLING,
    _MOBILE_PENDING,
    _MOBILE_UNKNOWN,
    _PLANS,
    _REFUND_FAILED,
    _REFUND_PLAN_MISMATCH,
    _UNKNOWN_MESSAGE,
    FULFILLED,
    HANDLING,
    PENDING,
    REFUNDED,
    UNKNOWN_ERROR,
    _hex_id,
    _MobileTopup,
    _money,
    _Plan,
    _timestamp,
)
from ._parse import _parse_mobile, _Problems


class _MobileHandlers(_ServiceCore):
    """The ``/v3/mobile/...`` handlers."""

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


def _suggested_offers(plan: _Plan) -> list[dict[str, Any]]:
    """Return the fixed plans of the line's operator, as a refund's suggestions."""
    return [
        {"typename": p.name, "plan_code": p.code, "amount": p.amount}
        for p in _PLANS
        if p.amount is not None and p.operator == plan.operator
    ]
