"""Console progress of ``run``, ``track``, ``resume`` and ``demo``.

One line per job-level event (submitted, moved, retrying, ended). Item moves
(an Azure batch's documents) are not printed one by one: each job's item
counts are summarized in one line whenever they changed: at the job's next
event, or at most a second after an item moved. A batch of 120 documents
takes a handful of lines, not hundreds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import TYPE_CHECKING, Final, TextIO

import attrs

if TYPE_CHECKING:
    from engine import (
        AsyncEngine,
        Completed,
        Errored,
        Event,
        IllegalTransition,
        ItemTransition,
        Polled,
        Retrying,
        Submitted,
        TimedOut,
        TransitionEvent,
        UnknownState,
        Worker,
    )

__all__ = ["Progress", "seconds"]

#: Longest an item move waits to be summarized when its job has no event.
_ITEM_QUIET: Final = 1.0

_JobKey = tuple[str, str, str]


def seconds(value: float) -> str:
    """Render a duration for people: ``0.25s``, ``12s``, ``150s``."""
    return f"{value:.0f}s" if value >= 100 else f"{value:.3g}s"


@attrs.define
class _Items:
    """What is known of one job's items, and what was last printed."""

    noun: str
    states: dict[str, str] = attrs.field(factory=dict)
    #: States in the order they were first seen (roughly the lifecycle's order).
    order: dict[str, None] = attrs.field(factory=dict)
    shown: str = ""

    def summary(self) -> str:
        counts = Counter(self.states.values())
        return ", ".join(f"{counts[s]} {s}" for s in self.order if counts[s])


class Progress:
    """Print job events as lines (and, on a terminal, each poll as a status line)."""

    def __init__(self, out: TextIO) -> None:
        """Write to ``out``; a status line is kept only when ``out`` is a terminal."""
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.start = time.monotonic()
        self._items: dict[_JobKey, _Items] = {}
        self._dirty: set[_JobKey] = set()
        self._timer: asyncio.TimerHandle | None = None

    def line(self, text: str) -> None:
        """Print one timestamped line (clearing the status line first)."""
        if self.tty:
            self.out.write("\r\x1b[2K")
        print(f"{self._stamp()} {text}", file=self.out, flush=True)

    def status(self, text: str) -> None:
        """Overwrite the status line (terminals only)."""
        if self.tty:
            self.out.write(f"\r\x1b[2K{self._stamp()} {text}")
            self.out.flush()

    def attach(self, engine: AsyncEngine | Worker) -> None:
        """Register the handlers on ``engine`` (or on a worker: the same events)."""
        engine.on("submitted", self.on_submitted)
        engine.on("polled", self.on_polled)
        engine.on("retrying", self.on_retrying)
        engine.on("transition", self.on_transition)
        engine.on("item_transition", self.on_item_transition)
        engine.on("illegal_transition", self.on_illegal)
        engine.on("unknown_state", self.on_unknown)
        engine.on("completed", self.on_completed)
        engine.on("timed_out", self.on_timed_out)
        engine.on("errored", self.on_errored)

    def close(self) -> None:
        """Print every pending item summary and stop the quiet timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()

    def flush(self, job: _JobKey | None = None) -> None:
        """Print the item summary of ``job`` (default: every job) if its counts changed."""
        for key in [job] if job is not None else sorted(self._dirty):
            if key not in self._dirty:
                continue
            self._dirty.discard(key)
            items = self._items[key]
            summary = items.summary()
            if summary != items.shown:
                items.shown = summary
                service, lifecycle, job_id = key
                self.line(
                    f"{service}/{lifecycle} {job_id[:12]} {items.noun}: {summary}"
                )

    # -- handlers -------------------------------------------------------------------------

    def on_submitted(self, e: Submitted) -> None:
        """A job was submitted or adopted."""
        self._job_line(e, f"{'adopted' if e.adopted else 'submitted'} in {e.state}")

    def on_polled(self, e: Polled) -> None:
        """A poll was read: the job's items seen so far are summarized, and how far along it is."""
        self.flush(_key(e))
        done = "" if e.progress is None else f" ({e.progress:.0%} done)"
        self.status(f"{_short(e)} poll #{e.attempt}: {e.observed!r}{done}")

    def on_retrying(self, e: Retrying) -> None:
        """A request failed transiently and is retried."""
        self._job_line(
            e,
            f"retrying after a {e.kind} error: {e.error} "
            f"(retry {e.failures}/{e.budget}, next in {seconds(e.delay)})",
        )

    def on_transition(self, e: TransitionEvent) -> None:
        """The job moved."""
        self._job_line(
            e, f"{e.source} -> {e.dest}{' (inferred)' if e.inferred else ''}"
        )

    def on_item_transition(self, e: ItemTransition) -> None:
        """An item moved: counted, printed later in the job's summary line."""
        key = _key(e)
        items = self._items.get(key)
        if items is None:
            items = self._items[key] = _Items(f"{e.item_lifecycle}s")
        items.order.setdefault(e.source)
        items.order.setdefault(e.dest)
        items.states[e.item_id] = e.dest
        self._dirty.add(key)
        self._start_timer()

    def on_illegal(self, e: IllegalTransition) -> None:
        """A poll observed a move the lifecycle does not allow."""
        self._job_line(e, f"refused illegal {e.state} -> {e.dest} ({e.policy})")

    def on_unknown(self, e: UnknownState) -> None:
        """A poll observed a value that maps to no state."""
        self._job_line(e, f"unknown state {e.observed!r} ({e.policy})")

    def on_completed(self, e: Completed) -> None:
        """The job reached a terminal state."""
        self._job_line(e, f"completed: {e.state} ({e.outcome})")

    def on_timed_out(self, e: TimedOut) -> None:
        """The job ran out of attempts or time."""
        self._job_line(e, f"timed out in {e.state}: {e.reason}")

    def on_errored(self, e: Errored) -> None:
        """The job ended with a remote error."""
        code = f" {e.code}" if e.code else ""
        self._job_line(e, f"error ({e.kind}){code}: {e.message}")

    # -- internals ------------------------------------------------------------------------

    def _job_line(self, e: Event, text: str) -> None:
        # The job's pending item summary first, so lines stay in event order.
        self.flush(_key(e))
        self.line(f"{_short(e)} {text}")

    def _start_timer(self) -> None:
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a direct call): summaries wait for the next event
        self._timer = loop.call_later(_ITEM_QUIET, self._quiet)

    def _quiet(self) -> None:
        self._timer = None
        self.flush()

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.start:7.2f}s]"


def _key(e: Event) -> _JobKey:
    return (e.service, e.lifecycle, e.job_id)


def _short(e: Event) -> str:
    return f"{e.service}/{e.lifecycle} {e.job_id[:12]}"
