"""OneClickDZ simulator: the service assembled from its handlers, the token gate, the app."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Route

from engine.simulators._base import ASGIApp, FaultInjector, Faults, Gate, Scope

from ._gift import _GiftHandlers
from ._internet import _InternetHandlers
from ._mobile import _MobileHandlers
from ._models import PROFILE


class _Service(_MobileHandlers, _InternetHandlers, _GiftHandlers):
    """The in-memory OneClickDZ: account, orders by id and by ref, and the handlers.

    The state and the account routes are ``_ServiceCore``'s; each product family's
    handlers come from its mixin.
    """


class _RequireToken(Gate):
    """ASGI wrapper that refuses requests without the exact access token."""

    def __init__(self, app: ASGIApp, service: _Service) -> None:
        super().__init__(app)
        self.service = service

    def refusal(self, scope: Scope) -> Response | None:
        given = dict(scope["headers"]).get(b"x-access-token")
        client = scope.get("client")
        host = str(client[0]) if client else "unknown"
        return self.service.refusal(host, given)


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
