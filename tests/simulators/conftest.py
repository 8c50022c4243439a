"""What the simulator tests share."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock that only moves when told to (a simulator's ``clock``)."""

    def __init__(self, start: float = 1000.0) -> None:
        """Start at ``start``, an arbitrary monotonic time."""
        self.now = start

    def __call__(self) -> float:
        """Return the current time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
