"""Faithful local simulators of the seed services, with fault injection.

Each is a plain ASGI app (``create_app(...)`` in its module) that serves
in-process through ``httpx.ASGITransport``, on 127.0.0.1 through
:func:`serve`, or from ``statepoll simulate``.
"""

from __future__ import annotations

import importlib
import math
from typing import Any, Final

from ._base import (
    FAULT_KINDS,
    FAULT_SYNTAX,
    FaultInjector,
    Faults,
    ServerHandle,
    parse_faults,
    serve,
    serving,
)

__all__ = [
    "FAULT_KINDS",
    "FAULT_SYNTAX",
    "OUTCOMES",
    "SIMULATORS",
    "FaultInjector",
    "Faults",
    "ServerHandle",
    "create_simulator",
    "parse_faults",
    "serve",
    "serving",
]

#: Service name (as in the built-in specs) → module holding its ``create_app``.
SIMULATORS: Final = {
    "azure-translator": "engine.simulators.azure_translator",
    "mindee": "engine.simulators.mindee",
    "oneclickdz": "engine.simulators.oneclickdz",
}


#: Service → how to get each terminal outcome on purpose, a line each (the
#: short form of the table in each simulator's module docstring; ``statepoll
#: simulate --help`` prints it). Durations are before ``time_scale``.
OUTCOMES: Final = {
    "mindee": (
        "a file name, url or alias containing sim-processed: Processed",
        "... containing sim-failed: Failed (500-012); sim-failed-invalid: Failed (422-001)",
        "anything else: 85 % Processed; Processing lasts 2-6 s (1-3 s if failing)",
    ),
    "oneclickdz": (
        "mobile_topup MSSIDN ending 01: FULFILLED, 02: REFUNDED,",
        "  03: UNKNOWN_ERROR then FULFILLED 1-12 h later, 04: ... then REFUNDED",
        "internet_topup number ending 01: FULFILLED, 02: REFUNDED,",
        "  03: QUEUED then FULFILLED 12-48 h later, 04: ... then REFUNDED",
        "gift_card typeId type_001: FULFILLED, type_002: PARTIALLY_FILLED",
        "  (quantity 2 or more), type_003: REFUNDED",
    ),
    "azure-translator": (
        "read from each input's sourceUrl: sim-validation or docs=0: ValidationFailed",
        "sim-failed: every document Failed (and the batch Failed)",
        "docs=N: N documents; faildocs=K: the first K Failed (the batch Succeeded)",
        "a cancel: Cancelling, then Cancelled; each document runs 5-40 s",
    ),
}


def create_simulator(service: str, **options: Any) -> FaultInjector:
    """Build the simulator app of ``service`` (options as its ``create_app``).

    Raises:
        LookupError: for a service without a simulator, naming the ones there are.
        ValueError: ``time_scale`` is not a positive, finite number.
    """
    module = SIMULATORS.get(service)
    if module is None:
        msg = f"no simulator for {service!r}; there are: {', '.join(SIMULATORS)}"
        raise LookupError(msg)
    scale = options.get("time_scale", 1.0)
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        # 0 would freeze every job in its first state; a negative one would
        # end them before they start.
        msg = f"time_scale must be a positive, finite number, not {scale!r}"
        raise ValueError(msg)
    app: FaultInjector = importlib.import_module(module).create_app(**options)
    return app
