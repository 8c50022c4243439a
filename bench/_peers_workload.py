"""The Azure-shaped workload of ``peers.py``, shared by its server, its contenders and its report.

N document-translation batches, each polled with ``GET
/translator/document/batches/{id}?api-version=2024-05-01`` and an
``Ocp-Apim-Subscription-Key`` header, answered with the service's batch status
body (``{"id":…, "status":"Running", "summary":{…}}``). Every batch turns
``Succeeded`` at a known wall-clock time, so the lag between that moment and
the moment a client sees it is measurable for every job.

The timeline of one run, in seconds after ``t0`` (the run's start, chosen by the
client and sent to the server):

- job ``i`` is started (first poll, or ``track()``) at ``stagger * i / n``: the
  jobs begin one interval apart in all, as batches created over time would,
  rather than in one burst that every contender would then repeat forever;
- job ``i`` turns terminal at ``stagger + lead + spread * frac(i * phi)``:
  spread evenly over ``spread`` seconds, in an order unrelated to the start
  order (``phi`` is the golden ratio's fraction);
- a contender stops at ``stagger + lead + spread + grace`` at the latest; a
  job it has not seen end by then "did not finish".
"""

from __future__ import annotations

import json
import resource
from dataclasses import dataclass

API_VERSION = "2024-05-01"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
#: The key every contender sends; the server answers 401 without it.
KEY = "bench-key-5c1e8a90d2"
PATH_PREFIX = "/translator/document/batches/"
#: What a contender asks for besides the path: the service's own query and headers.
PARAMS = {"api-version": API_VERSION}
HEADERS = {KEY_HEADER: KEY, "Accept": "application/json"}
#: Statuses after which a batch is not polled again.
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled", "ValidationFailed"})
_PHI = 0.6180339887498949


@dataclass(frozen=True)
class Timeline:
    """When jobs start, turn terminal and are given up on (seconds after ``t0``)."""

    stagger: float
    lead: float
    spread: float
    grace: float

    def start_offset(self, i: int, jobs: int) -> float:
        """Return when job ``i`` of ``jobs`` is started."""
        return self.stagger * i / jobs

    def terminal_offset(self, i: int) -> float:
        """Return when job ``i`` turns ``Succeeded`` on the server."""
        return self.stagger + self.lead + self.spread * ((i * _PHI) % 1.0)

    @property
    def deadline(self) -> float:
        """Return when a contender stops waiting, whatever it has seen."""
        return self.stagger + self.lead + self.spread + self.grace

    def query(self) -> str:
        """Return the timeline as query parameters for the server's ``/__start``."""
        return (
            f"stagger={self.stagger}&lead={self.lead}"
            f"&spread={self.spread}&grace={self.grace}"
        )


def job_id(i: int) -> str:
    """Return batch ``i``'s id: UUID-shaped as Azure's, the index in its first 8 hex digits."""
    return f"{i:08x}-6c1d-4f7e-9a52-3b8e0c4d2f17"


def job_index(batch_id: str) -> int:
    """Return the index a batch id was made from (``job_id``'s inverse)."""
    return int(batch_id[:8], 16)


def status_path(i: int) -> str:
    """Return batch ``i``'s status path, without the query."""
    return f"{PATH_PREFIX}{job_id(i)}"


def status_body(i: int, status: str) -> bytes:
    """Return batch ``i``'s status body as Azure Document Translation writes it."""
    done = status in TERMINAL
    body = {
        "id": job_id(i),
        "createdDateTimeUtc": "2026-11-23T09:41:07.1234560Z",
        "lastActionDateTimeUtc": "2026-11-23T09:52:12.7654320Z",
        "status": status,
        "summary": {
            "total": 24,
            "failed": 0,
            "success": 24 if done else 9,
            "inProgress": 0 if done else 11,
            "notYetStarted": 0 if done else 4,
            "cancelled": 0,
            "totalCharacterCharged": 148213 if done else 48213,
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


def raise_open_files() -> None:
    """Raise the soft limit on open files to the hard one (10,000 jobs may mean 10,000 sockets)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
