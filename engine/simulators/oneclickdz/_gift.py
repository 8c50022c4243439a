"""OneClickDZ simulator: the gift card handlers (catalogue, product, order, check)."""

from __future__ import annotations

import string
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine.simulators._base import Timeline

from ._core import _ServiceCore
from ._models import (
    _GIFT_HANDLING,
    _PRODUCT_BY_ID,
    _PRODUCTS,
    FULFILLED,
    HANDLING,
    PARTIALLY_FILLED,
    REFUNDED,
    _CardType,
    _GiftOrder,
    _hex_id,
    _Product,
    _stock_key,
    _timestamp,
)
from ._parse import _parse_gift, _Problems


class _GiftHandlers(_ServiceCore):
    """The ``/v3/gift-cards/...`` handlers."""

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
