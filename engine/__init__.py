"""The statepoll engine: polling runtime, hooks, audit log, CLI, simulators.

``AsyncEngine`` is the core; ``Engine`` is its blocking twin. Names are loaded
on first use, so ``engine.simulators`` and ``statepoll specs`` do not pay for
the runtime's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import (
        CancelError,
        CredentialError,
        EngineClosedError,
        InputError,
        JobError,
        JobFailed,
        JobTimedOut,
        RemoteError,
    )
    from .events import EVENT_NAMES
    from .runtime import AsyncEngine, EngineOptions, JobRef, JobResult
    from .sync import Engine

__all__ = [
    "EVENT_NAMES",
    "AsyncEngine",
    "CancelError",
    "CredentialError",
    "Engine",
    "EngineClosedError",
    "EngineOptions",
    "InputError",
    "JobError",
    "JobFailed",
    "JobRef",
    "JobResult",
    "JobTimedOut",
    "RemoteError",
]

_WHERE = {
    "EVENT_NAMES": "events",
    "AsyncEngine": "runtime",
    "EngineOptions": "runtime",
    "JobRef": "runtime",
    "JobResult": "runtime",
    "Engine": "sync",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        msg = f"module 'engine' has no attribute {name!r}"
        raise AttributeError(msg)
    module = importlib.import_module(f".{_WHERE.get(name, 'errors')}", __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
