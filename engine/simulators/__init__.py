"""Faithful local simulators of the seed services, with fault injection.

Each is a plain ASGI app (``create_app(...)`` in its module) that serves
in-process through ``httpx.ASGITransport``, on 127.0.0.1 through
:func:`serve`, or from ``statepoll simulate``.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from ._base import FaultInjector, Faults, ServerHandle, parse_faults, serve, serving

__all__ = [
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


def create_simulator(service: str, **options: Any) -> FaultInjector:
    """Build the simulator app of ``service`` (options as its ``create_app``).

    Raises:
        LookupError: for a service without a simulator, naming the ones there are.
    """
    module = SIMULATORS.get(service)
    if module is None:
        msg = f"no simulator for {service!r}; there are: {', '.join(SIMULATORS)}"
        raise LookupError(msg)
    app: FaultInjector = importlib.import_module(module).create_app(**options)
    return app
