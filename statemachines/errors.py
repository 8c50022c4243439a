"""The statepoll error hierarchy's spec-side roots, and :class:`Problem`.

::

    StatepollError
    ├── SpecError(ValueError)          .problems: every problem of every file
    ├── IllegalTransitionError(ValueError)  .lifecycle, .source, .dest
    └── UnknownSpecError(LookupError)  .name, .known

The engine adds ``EngineClosedError`` and the ``JobError`` family
(``engine.errors``) under the same root.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = [
    "IllegalTransitionError",
    "Problem",
    "SpecError",
    "StatepollError",
    "UnknownSpecError",
]


class StatepollError(Exception):
    """Root of every error statepoll raises on purpose."""


@attrs.frozen
class Problem:
    """One mistake in a spec: the file, the JSON pointer of the bad field, a message.

    ``str(problem)`` is the line ``statepoll validate`` prints:
    ``FILE: /json/pointer: message`` (``(root)`` for the empty pointer).
    """

    file: str
    pointer: str
    message: str

    def __str__(self) -> str:
        """Render as ``FILE: /pointer: message``."""
        return f"{self.file}: {self.pointer or '(root)'}: {self.message}"


class SpecError(StatepollError, ValueError):
    """A spec failed to load: it carries every problem found, not only the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        """Collect ``problems`` (at least one)."""
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(str(p) for p in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun} in spec:\n{lines}")


class UnknownSpecError(StatepollError, LookupError):
    """A name is neither a built-in spec nor a readable file."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        """Remember the name and the built-in names to suggest."""
        self.name = name
        self.known: tuple[str, ...] = tuple(known)
        msg = (
            f"unknown spec {name!r}: not a file, and not a built-in spec "
            f"(built-in: {', '.join(self.known)})"
        )
        super().__init__(msg)

    def __str__(self) -> str:
        """Return the message without LookupError's quoting."""
        return str(self.args[0])


class IllegalTransitionError(StatepollError, ValueError):
    """A move the lifecycle does not allow was attempted."""

    def __init__(self, lifecycle: str, source: str, dest: str) -> None:
        """Name the lifecycle and the refused move."""
        self.lifecycle = lifecycle
        self.source = source
        self.dest = dest
        msg = f"illegal transition in lifecycle {lifecycle!r}: {source!r} -> {dest!r}"
        super().__init__(msg)
