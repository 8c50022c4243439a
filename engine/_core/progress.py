"""How far along a job is, by the spec's ``poll.progress``: a pure reading of a poll body.

A service says it as a percent (``{"percentComplete": 45}``), a fraction
(``{"progress": 0.45}`` with ``max: 1``) or counts (``{"done": 9, "total":
20}``). The answer is always a fraction 0..1, or ``None`` when the body says
nothing usable (no number there, a total of 0): a missing number is not
"0 % done".
"""

from __future__ import annotations

import math
from typing import Any, Final

from statemachines import MISSING, Progress, resolve_pointer

__all__ = ["new_tenth", "read_progress"]

#: A percent when the spec gives no ``max``.
_PERCENT: Final = 100.0


def read_progress(progress: Progress | None, body: Any) -> float | None:
    """Return the fraction done (0..1) a poll body reports, or ``None``.

    Values out of range are clamped (a service that says 101 % is done).
    """
    if progress is None:
        return None
    if progress.pointer is not None:
        value = _number(body, progress.pointer)
        full = progress.max_value if progress.max_value is not None else _PERCENT
        return None if value is None else _clamp(value / full)
    done, total = _number(body, progress.done), _number(body, progress.total)
    if done is None or total is None or total <= 0:
        return None
    return _clamp(done / total)


def new_tenth(before: float | None, now: float | None) -> bool:
    """Whether ``now`` is worth a record: the first reading, or a new tenth reached.

    The audit trail keeps at most about eleven progress records a job
    (0 %, 10 %, … 100 %), however often it is polled; events carry every
    reading.
    """
    if now is None:
        return False
    if before is None:
        return True
    return math.floor(now * 10) != math.floor(before * 10)


def _number(body: Any, pointer: str | None) -> float | None:
    """Return the finite number at ``pointer`` (a JSON number or a numeric string)."""
    if pointer is None:
        return None
    value = resolve_pointer(body, pointer, MISSING)
    if isinstance(value, str):
        try:
            value = float(value.strip().removesuffix("%"))
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer past a float's range
        return None
    return number if math.isfinite(number) else None


def _clamp(fraction: float) -> float:
    return min(1.0, max(0.0, fraction))
