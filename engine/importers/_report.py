"""What became of each waiter and service, and the summary the command prints.

A :class:`WaiterReport` per waiter (its :data:`Kind`: runs, validates only,
or not converted, and why), a :class:`ServiceReport` per spec written and a
:class:`Report` over them all; :func:`summary_lines` is the summary that
``statepoll import botocore`` prints after its per-service lines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final, Literal

import attrs

__all__ = ["KINDS", "Kind", "Report", "ServiceReport", "WaiterReport", "summary_lines"]

Kind = Literal["runs", "xml", "host", "not_converted"]

#: What each kind means, for the summary.
KINDS: Final[Mapping[Kind, str]] = {
    "runs": "runs (JSON replies, SigV4)",
    "xml": "validates; XML replies are not readable by the engine",
    "host": "validates; its operation needs another host prefix than the spec's base URL",
    "not_converted": "not converted",
}


@attrs.frozen
class WaiterReport:
    """What became of one waiter."""

    waiter: str
    lifecycle: str
    kind: Kind
    #: Why it was not converted (or what limits it), short and groupable.
    reason: str | None = None


@attrs.frozen
class ServiceReport:
    """One service's waiters and the spec written for them (``None``: nothing converted)."""

    service: str
    waiters: tuple[WaiterReport, ...]
    path: Path | None = None
    #: Warnings ``statepoll validate`` gives the written spec.
    warnings: tuple[str, ...] = ()
    #: An older API version's (``None``: the latest, what boto3 uses).
    api_version: str | None = None

    @property
    def converted(self) -> int:
        """How many of its waiters are lifecycles of a spec that loads."""
        return sum(w.kind != "not_converted" for w in self.waiters)


@attrs.frozen
class Report:
    """Every service converted, and the counts the summary prints."""

    version: str
    services: tuple[ServiceReport, ...]

    @property
    def waiters(self) -> tuple[WaiterReport, ...]:
        """Every waiter, service by service."""
        return tuple(w for s in self.services for w in s.waiters)

    @property
    def total(self) -> int:
        """Waiters looked at."""
        return len(self.waiters)

    @property
    def converted(self) -> int:
        """Waiters that are lifecycles of a written spec that loads."""
        return sum(s.converted for s in self.services)

    def by_kind(self) -> Counter[Kind]:
        """Waiters per kind."""
        return Counter(w.kind for w in self.waiters)

    def reasons(self) -> Counter[str]:
        """Waiters not converted, per reason."""
        return Counter(
            w.reason or "?" for w in self.waiters if w.kind == "not_converted"
        )


def summary_lines(report: Report) -> Iterator[str]:
    """The summary the command prints after the per-service lines."""
    total = report.total
    kinds = report.by_kind()
    share = report.converted / total if total else 0.0
    services = len({s.service for s in report.services if s.waiters})
    yield (
        f"botocore {report.version}: {total} waiters in {services} services; "
        f"converted to specs that validate: {report.converted} ({share:.1%})"
    )
    for kind in ("runs", "xml", "host"):
        if kinds[kind]:
            yield f"  {kinds[kind]:4d} {KINDS[kind]}"
    if kinds["not_converted"]:
        yield f"  {kinds['not_converted']:4d} not converted:"
        for reason, count in sorted(
            report.reasons().items(), key=lambda x: (-x[1], x[0])
        ):
            yield f"    {count:4d} {reason}"
