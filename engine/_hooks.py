"""Hook registry and dispatch: sync or async callables, filtered, isolated.

Hooks run in registration order after the transition they report has been
committed. A hook that raises is logged, reported as a ``hook_failed`` event
(to the other hooks) and never stops the engine or other jobs.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from ._events import EVENT_NAMES, Event, HookFailed

__all__ = ["Hook", "HookRegistry"]

logger = logging.getLogger("statepoll.hooks")

HookFn = Callable[[Any], Awaitable[None] | None]


@attrs.frozen
class Hook:
    """A registered callable and its filters (``None`` matches anything)."""

    event: str
    fn: HookFn
    service: str | None = None
    lifecycle: str | None = None
    state: str | None = None

    def matches(self, event: Event) -> bool:
        """Whether this hook wants ``event``."""
        return (
            self.event in ("*", event.name)
            and (self.service is None or self.service == event.service)
            and (self.lifecycle is None or self.lifecycle == event.lifecycle)
            and (self.state is None or self.state == event.state)
        )


class HookRegistry:
    """Registered hooks and their dispatch."""

    def __init__(self) -> None:
        """Start with no hooks."""
        self._hooks: list[Hook] = []
        #: Names with at least one hook: lets the engine skip building events.
        self.wanted: set[str] = set()
        self.failures = 0

    def add(
        self,
        event: str,
        fn: HookFn,
        *,
        service: str | None = None,
        lifecycle: str | None = None,
        state: str | None = None,
    ) -> None:
        """Register ``fn`` for ``event`` (or ``"*"`` for every event).

        Raises:
            ValueError: for an unknown event name, with a suggestion.
        """
        if event != "*" and event not in EVENT_NAMES:
            close = difflib.get_close_matches(event, EVENT_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            msg = f"unknown event {event!r}{hint} Known: {', '.join(EVENT_NAMES)}"
            raise ValueError(msg)
        self._hooks.append(Hook(event, fn, service, lifecycle, state))
        self.wanted.update(EVENT_NAMES if event == "*" else (event,))

    def wants(self, name: str) -> bool:
        """Whether any hook listens to events called ``name``."""
        return name in self.wanted

    async def dispatch(
        self, event: Event, redact: Callable[[str], str] = str
    ) -> list[HookFailed]:
        """Call every matching hook in order; return what failed (already logged).

        ``redact`` blanks secrets in what a failing hook's exception says:
        its message and traceback may carry anything the hook touched.
        """
        failed: list[HookFailed] = []
        for hook in self._hooks:
            if not hook.matches(event):
                continue
            try:
                outcome = hook.fn(event)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as exc:  # noqa: BLE001 - a hook must never stop the engine; logged below
                self.failures += 1
                name = getattr(hook.fn, "__qualname__", repr(hook.fn))
                trace = redact("".join(traceback.format_exception(exc)))
                logger.error(  # noqa: TRY400 - the traceback is logged redacted, as text
                    "hook %s failed on %s for %s/%s job %s\n%s",
                    name,
                    event.name,
                    event.service,
                    event.lifecycle,
                    event.job_id,
                    trace,
                )
                failed.append(
                    HookFailed(
                        service=event.service,
                        lifecycle=event.lifecycle,
                        job_id=event.job_id,
                        state=event.state,
                        attempt=event.attempt,
                        http_status=event.http_status,
                        time=event.time,
                        hook=name,
                        event=event.name,
                        error=redact(f"{type(exc).__name__}: {exc}"),
                    )
                )
        if failed and event.name != "hook_failed":
            for report in failed:
                # Report failures to hook_failed listeners; their own failures
                # are only logged, so a broken reporter cannot loop.
                await self.dispatch(report, redact)
        return failed
