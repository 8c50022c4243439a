"""The statepoll error hierarchy's spec-side roots, and :class:`Problem`.

::

    StatepollError
    ├── SpecError(ValueError)          .problems: every problem of every file
    ├── TemplateError(ValueError)      .template, .variable
    ├── IllegalTransitionError(ValueError)  .lifecycle, .source, .dest
    └── UnknownSpecError(LookupError)  .name, .known

The engine adds ``EngineClosedError`` and the ``JobError`` family
(``engine.errors``) under the same root.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import attrs

from .pointer import split_pointer

__all__ = [
    "MAX_PROBLEMS",
    "MESSAGE_LIMIT",
    "IllegalTransitionError",
    "Problem",
    "SpecError",
    "StatepollError",
    "TemplateError",
    "UnknownSpecError",
    "at_most",
    "in_pointer_order",
    "shorten",
]

#: The longest message a :class:`Problem` keeps whole; a longer one is cut in
#: its middle, so that a 10 MB value never reaches a terminal.
MESSAGE_LIMIT: Final = 300
#: The most problems a loader puts in one SpecError: a hostile file can hold
#: a million mistakes, and the first hundred say what is wrong with it.
MAX_PROBLEMS: Final = 100
# What a cut message keeps: its start names the bad value, its end says what is
# wrong with it (jsonschema's messages are "<repr of the value> is not ...").
_HEAD: Final = 120
_TAIL: Final = 100


class StatepollError(Exception):
    """Root of every error statepoll raises on purpose."""


def shorten(text: str, limit: int = _HEAD) -> str:
    """Return ``text``, or its first ``limit`` characters and an ellipsis."""
    return text if len(text) <= limit else text[:limit] + "…"


def _capped(message: str) -> str:
    if len(message) <= MESSAGE_LIMIT:
        return message
    cut = len(message) - _HEAD - _TAIL
    return f"{message[:_HEAD]}… [{cut:,} characters cut] …{message[-_TAIL:]}"


@attrs.frozen
class Problem:
    """One mistake in a spec: the file, the JSON pointer of the bad field, a message.

    ``str(problem)`` is the line ``statepoll validate`` prints:
    ``FILE: /json/pointer: message`` (``(root)`` for the empty pointer), and
    ``FILE: /json/pointer: warning: message`` for a warning. A warning does not
    stop a spec from loading. A message longer than :data:`MESSAGE_LIMIT` is
    kept as its start and its end around a note of what was cut.
    """

    file: str
    pointer: str
    message: str = attrs.field(converter=_capped)
    severity: Literal["error", "warning"] = attrs.field(
        default="error", validator=attrs.validators.in_(("error", "warning"))
    )

    def __str__(self) -> str:
        """Render as ``FILE: /pointer: message`` (``warning: message`` for a warning)."""
        label = "warning: " if self.severity == "warning" else ""
        return f"{self.file}: {self.pointer or '(root)'}: {label}{self.message}"


def in_pointer_order(problems: Iterable[Problem]) -> list[Problem]:
    """Sort problems by pointer, token by token; at one pointer errors come first."""
    return sorted(
        problems, key=lambda p: (split_pointer(p.pointer), p.severity, p.message)
    )


def at_most(problems: list[Problem], limit: int = MAX_PROBLEMS) -> list[Problem]:
    """Return ``problems``, or their first ``limit - 1`` and a line saying how many more."""
    if len(problems) <= limit:
        return problems
    kept = problems[: limit - 1]
    more = len(problems) - len(kept)
    return [*kept, Problem(kept[0].file, "", f"{more:,} more problems not listed")]


class SpecError(StatepollError, ValueError):
    """A spec failed to load: it carries every problem found, not only the first.

    ``problems`` holds the errors and any warnings found with them, in the
    order given (the loader gives them in pointer order).
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        """Collect ``problems`` (at least one)."""
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(str(p) for p in self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun} in spec:\n{lines}")


class TemplateError(StatepollError, ValueError):
    """A URI template is outside the subset specs may use, or cannot be expanded.

    ``template`` is the template's text; ``variable`` names the variable whose
    value is missing or refused (``None`` for a malformed template).
    """

    def __init__(
        self, reason: str, *, template: str, variable: str | None = None
    ) -> None:
        """Say what is wrong with ``template`` (and which ``variable``, if one)."""
        self.reason = reason
        self.template = template
        self.variable = variable
        super().__init__(f"template {shorten(template)!r}: {reason}")


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
