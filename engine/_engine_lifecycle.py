"""AsyncEngine's shared state and its lifecycle: open, close, the closed checks, job keys.

``AsyncEngine.__init__`` (``engine._engine``) sets every attribute declared
here. The mixins that hold the engine's operations build on this class, as
the simulators' per-family handlers build on their shared core:
``engine._engine_jobs`` creates and adopts jobs, ``engine._engine_results``
waits for them and reports on them.
"""

from __future__ import annotations

import itertools
import os
import random
import uuid
from typing import TYPE_CHECKING, Literal, Self

from engine._bindings import Bindings
from engine._clock import Clock
from engine._errors import EngineClosedError
from engine._holder import Holder
from engine._hooks import HookRegistry
from engine._publish import Publisher
from engine._remote import Remote
from engine._scheduler import Scheduler
from engine.stores import JobStore, open_store

if TYPE_CHECKING:
    import httpx

    from engine.audit import AuditSink


class _EngineLifecycle:
    """What every part of :class:`AsyncEngine` shares, and opening and closing it."""

    _owns_client: bool
    _client: httpx.AsyncClient
    _remote: Remote
    _clock: Clock
    _audit_arg: AuditSink | str | os.PathLike[str] | None
    _store_arg: JobStore | str | os.PathLike[str] | None
    _audit: AuditSink | None
    _store: JobStore | None
    _holder: Holder | None
    _lease: float
    _take_over: bool
    _rng: random.Random
    _secrets: set[str]
    _hooks: HookRegistry
    _publisher: Publisher
    _run: Scheduler
    _bind: Bindings
    _keys: itertools.count[int]
    _state: Literal["unopened", "opened", "closed"]

    # -- lifecycle of the engine -------------------------------------------------

    async def __aenter__(self) -> Self:
        """Open the engine."""
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Close the engine."""
        await self.aclose()

    async def open(self) -> None:
        """Start the scheduler, open sinks and resume stored jobs (idempotent).

        Raises:
            EngineClosedError: if the engine was closed (engines do not reopen).
        """
        if self._state == "opened":
            return
        if self._state == "closed":
            msg = "Cannot open: the engine has been closed; create a new one."
            raise EngineClosedError(msg)
        self._state = "opened"
        if self._audit_arg is not None:
            from engine.audit import open_audit  # noqa: PLC0415 - loaded only when used

            self._audit = (
                open_audit(self._audit_arg, secrets=self._secrets)
                if isinstance(self._audit_arg, (str, os.PathLike))
                else self._audit_arg
            )
        if self._store_arg is not None:
            self._store = (
                open_store(self._store_arg)
                if isinstance(self._store_arg, (str, os.PathLike))
                else self._store_arg
            )
            self._holder = Holder(
                self._store, clock=self._clock, lease=self._lease, bindings=self._bind
            )
            await self._holder.open()
        self._publisher.audit = self._audit
        self._publisher.store = self._store
        self._run.open()
        if self._holder is not None and self._take_over:
            await self._holder.take_over(self._run)

    async def aclose(self) -> None:
        """Stop polling, close what the engine created. Live jobs stay in the store."""
        if self._state == "closed":
            return
        self._state = "closed"
        await self._run.close()
        if self._holder is not None:
            await self._holder.close()
        if self._owns_client:
            await self._client.aclose()
        if self._audit is not None and isinstance(self._audit_arg, (str, os.PathLike)):
            self._audit.close()
        if self._store is not None and isinstance(self._store_arg, (str, os.PathLike)):
            await self._store.close()

    def _check_open(self, action: str) -> None:
        if self._state == "closed":
            msg = f"Cannot {action}: the engine has been closed."
            raise EngineClosedError(msg)

    async def _ensure_open(self, action: str) -> None:
        self._check_open(action)
        if self._state == "unopened":
            await self.open()

    # -- specs, bindings, keys ------------------------------------------------------

    def _new_key(self) -> str:
        if self._store is not None:
            # Unique across every process sharing the store.
            return f"j{uuid.uuid4().hex[:16]}"
        key = f"j{next(self._keys)}"
        while key in self._run.jobs:
            key = f"j{next(self._keys)}"
        return key
