"""The statepoll engine: drivers, results, errors, events and the protocols they take.

``AsyncEngine`` is the core; ``Engine`` is its blocking twin. Names are loaded
on first use, so ``engine.simulators`` and ``statepoll specs`` do not pay for
the drivers' imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._clock import Clock, SystemClock
    from ._core.state import JobStatus
    from ._engine import AsyncEngine, EngineOptions, JobRef, JobResult
    from ._errors import (
        CancelError,
        CredentialError,
        EngineClosedError,
        InputError,
        JobError,
        JobFailed,
        JobTimedOut,
        RemoteError,
        WaitTimeout,
    )
    from ._events import (
        EVENT_NAMES,
        Completed,
        Entered,
        Errored,
        Event,
        HookFailed,
        IllegalTransition,
        ItemTransition,
        Polled,
        Retrying,
        Submitted,
        TimedOut,
        TransitionEvent,
        UnknownState,
    )
    from ._sync import Engine
    from ._worker import Worker
    from .audit import AuditSink, AuditWriteError
    from .stores import JobStore, StoreError

__all__ = [
    "EVENT_NAMES",
    "AsyncEngine",
    "AuditSink",
    "AuditWriteError",
    "CancelError",
    "Clock",
    "Completed",
    "CredentialError",
    "Engine",
    "EngineClosedError",
    "EngineOptions",
    "Entered",
    "Errored",
    "Event",
    "HookFailed",
    "IllegalTransition",
    "InputError",
    "ItemTransition",
    "JobError",
    "JobFailed",
    "JobRef",
    "JobResult",
    "JobStatus",
    "JobStore",
    "JobTimedOut",
    "Polled",
    "RemoteError",
    "Retrying",
    "Submitted",
    "StoreError",
    "SystemClock",
    "TimedOut",
    "TransitionEvent",
    "UnknownState",
    "WaitTimeout",
    "Worker",
]

#: Public name → the private module that defines it (loaded on first use).
_WHERE = {
    "AsyncEngine": "._engine",
    "EngineOptions": "._engine",
    "JobRef": "._engine",
    "JobResult": "._engine",
    "JobStatus": "._core.state",
    "Engine": "._sync",
    "Worker": "._worker",
    "Clock": "._clock",
    "SystemClock": "._clock",
    "AuditSink": ".audit",
    "AuditWriteError": ".audit",
    "JobStore": ".stores",
    "StoreError": ".stores",
    **dict.fromkeys(
        (
            "CancelError",
            "CredentialError",
            "EngineClosedError",
            "InputError",
            "JobError",
            "JobFailed",
            "JobTimedOut",
            "RemoteError",
            "WaitTimeout",
        ),
        "._errors",
    ),
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        msg = f"module 'engine' has no attribute {name!r}"
        raise AttributeError(msg)
    module = importlib.import_module(_WHERE.get(name, "._events"), __name__)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
