"""Shared pieces of the loopback tests: simulators on 127.0.0.1, engines, event logs.

Each module serves its service's simulator once (module scope) and builds a
fresh engine per test with the SAME time scale as the simulator, so that the
spec's schedule (initial delay, interval, per-state re-checks, deadlines) keeps
its documented proportion to the simulated durations.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

from engine import AsyncEngine, Event
from engine.simulators import ServerHandle, create_simulator, serving
from statemachines import Spec, builtin_path, load_document

#: The key every simulator is started with and every engine sends.
API_KEY: Final = "sim-key"

#: Service → environment variable its built-in spec reads the credential from.
CRED_ENV: Final = {
    "mindee": "MINDEE_V2_API_KEY",
    "oneclickdz": "ONECLICKDZ_ACCESS_TOKEN",
    "azure-translator": "AZURE_TRANSLATOR_KEY",
}


@contextlib.contextmanager
def simulator(
    service: str, *, seed: int, time_scale: float, **options: Any
) -> Iterator[ServerHandle]:
    """Serve ``service``'s simulator on 127.0.0.1 until the block ends."""
    app = create_simulator(
        service, seed=seed, time_scale=time_scale, api_key=API_KEY, **options
    )
    with serving(app) as handle:
        yield handle


def engine_for(
    service: str,
    handle: ServerHandle,
    time_scale: float,
    *,
    key: str = API_KEY,
    **options: Any,
) -> AsyncEngine:
    """Return an engine pointed at the simulator ``handle``, scaled like it."""
    return AsyncEngine(
        base_urls={service: handle.url},
        env={CRED_ENV[service]: key},
        time_scale=time_scale,
        seed=1,
        **options,
    )


def spec_variant(name: str, edit: Any, *, source: str) -> Spec:
    """Load built-in spec ``name``'s JSON, let ``edit(doc)`` change it, and load it."""
    document = json.loads(builtin_path(name).read_text(encoding="utf-8"))
    edit(document)
    return load_document(document, source=source)


@attrs.define
class EventLog:
    """Every event an engine emitted, in order (registered as a ``*`` hook)."""

    events: list[Event] = attrs.field(factory=list)

    @classmethod
    def attach(cls, engine: AsyncEngine) -> EventLog:
        """Record every event of ``engine`` from now on."""
        log = cls()
        engine.on("*", log.events.append)
        return log

    def named(self, name: str) -> list[Any]:
        """Return the events called ``name``, in order."""
        return [e for e in self.events if e.name == name]

    def moves(self, job_id: str | None = None) -> list[tuple[str, str]]:
        """Return the ``(source, dest)`` of every transition (of one job if given)."""
        return [
            (e.source, e.dest)
            for e in self.named("transition")
            if job_id is None or e.job_id == job_id
        ]

    def item_moves(self) -> Mapping[str, list[tuple[str, str]]]:
        """Return each item's ``(source, dest)`` moves, by item id."""
        moves: dict[str, list[tuple[str, str]]] = {}
        for event in self.named("item_transition"):
            moves.setdefault(event.item_id, []).append((event.source, event.dest))
        return moves
