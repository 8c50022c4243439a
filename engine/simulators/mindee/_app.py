"""Mindee simulator: the app, its API-key gate and its 404/405 answers."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.simulators._base import ASGIApp, FaultInjector, Faults, Gate, Scope

from ._models import PROFILE, _error, _not_found
from ._service import _Service


def _http_error(_request: Request, exc: Exception) -> Response:
    """Render Starlette's own 404/405 (unknown route, wrong method) as Mindee does."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - only registered for it
        raise exc
    if exc.status_code == 405:
        detail = "This method is not allowed on this path."
        return _error(405, "Method Not Allowed", "405-001", detail, headers=exc.headers)
    if exc.status_code == 404:
        return _not_found("No such route.")
    title = str(exc.detail)
    return _error(exc.status_code, title, f"{exc.status_code}-000", title)


class _RequireKey(Gate):
    """ASGI wrapper that refuses requests without the exact API key."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        super().__init__(app)
        self.api_key = api_key.encode()

    def refusal(self, scope: Scope) -> Response | None:
        given = dict(scope["headers"]).get(b"authorization", b"")
        if not given:
            return _error(
                401,
                "Credentials are required.",
                "401-008",
                "Send your API key, without a prefix, in the Authorization header.",
            )
        # Constant-time, so the simulator does not teach a timing side channel.
        if not hmac.compare_digest(given, self.api_key):
            return _error(
                401, "Invalid API key", "401-001", "The provided API key is invalid."
            )
        return None


def create_app(
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    api_key: str = "sim-key",
    faults: Faults | None = None,
    clock: Callable[[], float] = time.monotonic,
    public_base_url: str | None = None,
) -> FaultInjector:
    """Build the Mindee v2 simulator, wrapped in the fault injector.

    Args:
        seed: Seeds ids, durations and the outcomes the client did not choose.
        time_scale: Multiplies every duration (``0.01`` runs 100 times faster).
        api_key: The only value of ``Authorization`` that is accepted.
        faults: Faults to inject; none by default.
        clock: Monotonic clock that drives the job timelines.
        public_base_url: Base of every absolute URL emitted, instead of the
            request's own.

    Returns:
        The ASGI app; ``.counts`` tells which faults fired.
    """
    service = _Service(
        seed=seed, time_scale=time_scale, clock=clock, public_base_url=public_base_url
    )
    routes = [
        Route(
            "/v2/products/{product}/enqueue", service.enqueue_product, methods=["POST"]
        ),
        Route("/v2/inferences/enqueue", service.enqueue_legacy, methods=["POST"]),
        Route("/v2/jobs/{job_id}", service.get_job, methods=["GET"]),
        Route(
            "/v2/products/{product}/results/{inference_id}",
            service.get_result,
            methods=["GET"],
        ),
        Route(
            "/v2/inferences/{inference_id}", service.get_legacy_result, methods=["GET"]
        ),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return FaultInjector(
        _RequireKey(app, api_key), faults or Faults(), PROFILE, seed=seed
    )
