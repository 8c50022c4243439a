"""Azure translator simulator: the app, its key gate, request ids and error rendering."""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.simulators._base import (
    ASGIApp,
    FaultInjector,
    Faults,
    Gate,
    Message,
    Receive,
    Scope,
    Send,
)

from ._models import (
    _MISSING_KEY,
    _NEW_PREFIX,
    _V1_PREFIXES,
    _WRONG_KEY,
    PROFILE,
    _AzureError,
    _json,
)
from ._service import _Service

_Handler = Callable[[Request], Awaitable[Response]]


# -- HTTP plumbing --------------------------------------------------------------


def _azure_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, _AzureError):  # pragma: no cover - only registered for it
        raise exc
    return exc.response()


def _http_error(_request: Request, exc: Exception) -> Response:
    """Render Starlette's own 404/405 (unknown route, wrong method) as Azure does."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - only registered for it
        raise exc
    if exc.status_code == 405:
        msg = "The method is not allowed on this resource."
        error = _AzureError(405, "InvalidRequest", msg, "MethodNotAllowed")
        return error.response(exc.headers)
    msg = "The requested resource was not found."
    return _AzureError(exc.status_code, "ResourceNotFound", msg).response()


def _by_method(**handlers: _Handler) -> _Handler:
    """Return one endpoint that hands each method to its handler (HEAD as GET)."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


class _RequireKey(Gate):
    """ASGI wrapper that refuses requests without the exact subscription key."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        super().__init__(app)
        self.api_key = api_key.encode()

    def refusal(self, scope: Scope) -> Response | None:
        given = dict(scope["headers"]).get(b"ocp-apim-subscription-key")
        # Constant-time, so the simulator does not teach a timing side channel.
        if given is None or not hmac.compare_digest(given, self.api_key):
            message = _MISSING_KEY if given is None else _WRONG_KEY
            body = {"error": {"code": "401", "message": message}}
            return _json(body, 401, {"x-ms-error-code": "401"})
        return None


class _RequestIds:
    """ASGI wrapper that stamps every response with Azure's request-id headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - lifespan is off in serve()
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4()).encode()

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"apim-request-id", request_id),
                    (b"x-requestid", request_id),
                ]
            await send(message)

        await self.app(scope, receive, stamped)


def create_app(
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    api_key: str = "sim-key",
    faults: Faults | None = None,
    clock: Callable[[], float] = time.monotonic,
    public_base_url: str | None = None,
) -> FaultInjector:
    """Build the Azure Document Translation simulator, wrapped in the fault injector.

    Args:
        seed: Seeds ids, durations and the outcomes the client did not choose.
        time_scale: Multiplies every duration (``0.01`` runs 100 times faster).
        api_key: The only value of ``Ocp-Apim-Subscription-Key`` accepted.
        faults: Faults to inject; none by default.
        clock: Monotonic clock that drives the batch and document timelines.
        public_base_url: Base of every absolute URL emitted (``Operation-Location``,
            next links), instead of the request's own.

    Returns:
        The ASGI app; ``.counts`` tells which faults fired.
    """
    service = _Service(
        seed=seed, time_scale=time_scale, clock=clock, public_base_url=public_base_url
    )
    routes = [
        Route(f"{_NEW_PREFIX}/formats", service.formats, methods=["GET"]),
    ]
    for prefix in (*_V1_PREFIXES.values(), _NEW_PREFIX):
        batch = f"{prefix}/batches/{{batch_id}}"
        routes += [
            # One route per path, so that a 405 lists every allowed method.
            Route(
                f"{prefix}/batches",
                _by_method(POST=service.submit, GET=service.list_batches),
                methods=["GET", "POST"],
            ),
            Route(
                batch,
                _by_method(GET=service.get_batch, DELETE=service.cancel),
                methods=["GET", "DELETE"],
            ),
            Route(f"{batch}/documents", service.list_documents, methods=["GET"]),
            Route(
                f"{batch}/documents/{{document_id}}",
                service.get_document,
                methods=["GET"],
            ),
        ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, _AzureError: _azure_error},
    )
    return FaultInjector(
        _RequestIds(_RequireKey(app, api_key)), faults or Faults(), PROFILE, seed=seed
    )
