"""OneClickDZ simulator: validation of send and order bodies (every bad field in one 400)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._models import (
    _CARD_VALUES,
    _INTERNET_NUMBER,
    _INTERNET_RULE,
    _MSSIDN,
    _OPERATOR_BY_PREFIX,
    _PLAN_BY_CODE,
    _PRODUCT_BY_ID,
    _CardType,
    _Plan,
    _Product,
)


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
