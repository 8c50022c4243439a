"""OneClickDZ simulator: the state every handler shares, envelopes, authentication, account."""

from __future__ import annotations

import hmac
import json
import random
from collections.abc import Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.simulators._base import ServiceBase

from ._models import (
    _INITIAL_BALANCE_CENTS,
    _IP_BLOCK_SECONDS,
    _KEY_ATTEMPTS,
    _error_envelope,
    _GiftOrder,
    _initial_stock,
    _InternetTopup,
    _Ledger,
    _MobileTopup,
    _money,
    _request_id,
    _timestamp,
)
from ._parse import _Problems


class _ServiceCore(ServiceBase):
    """The in-memory OneClickDZ's state and what every product family's handlers share.

    Holds the seeded RNGs, the ledger, the orders by id and by ref and the
    authentication counters, and answers the account routes; the mixins in
    ``_mobile``, ``_internet`` and ``_gift`` add each family's handlers.
    """

    def __init__(
        self,
        *,
        seed: int | None,
        time_scale: float,
        clock: Callable[[], float],
        api_key: str,
    ) -> None:
        # Outcomes, durations and ids (``rng``): a fixed number of draws per order,
        # so that a trigger on one order does not reshuffle the orders after it.
        super().__init__(seed=seed, time_scale=time_scale, clock=clock)
        # Card codes and generated refs, whose number of draws varies per order.
        self.content = random.Random(None if seed is None else f"{seed}:content")  # noqa: S311 - simulation
        # Request ids, drawn per request: polling must not move the outcomes.
        self.request_ids = random.Random(None if seed is None else f"{seed}:requests")  # noqa: S311 - simulation
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

    # -- envelopes ---------------------------------------------------------------

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
