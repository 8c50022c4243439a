"""Lifecycle → Mermaid ``stateDiagram-v2`` text."""

from __future__ import annotations

import re

from .spec import Lifecycle, Outcome

__all__ = ["mermaid"]

_SAFE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CLASS = {
    Outcome.SUCCESS: "fill:#d4edda,stroke:#2e7d32",
    Outcome.FAILURE: "fill:#f8d7da,stroke:#c62828",
    Outcome.CANCELLED: "fill:#e2e3e5,stroke:#616161",
    Outcome.PARTIAL: "fill:#fff3cd,stroke:#f9a825",
}


def mermaid(lifecycle: Lifecycle) -> str:
    """Return a Mermaid ``stateDiagram-v2`` of ``lifecycle``.

    Terminal states lead to ``[*]`` and are coloured by outcome; provisional
    states are noted. State names Mermaid cannot take as ids are aliased.
    """
    ids = _aliases(lifecycle.state_names)
    lines = ["stateDiagram-v2"]
    if lifecycle.description:
        lines.append(f"    %% {lifecycle.name}: {_one_line(lifecycle.description)}")
    for name, ident in ids.items():
        if ident != name:
            lines.append(f'    state "{name}" as {ident}')
    lines.append(f"    [*] --> {ids[lifecycle.initial]}")
    seen: set[tuple[str, str]] = set()
    for t in lifecycle.transitions:
        if (t.source, t.dest) not in seen:
            seen.add((t.source, t.dest))
            lines.append(f"    {ids[t.source]} --> {ids[t.dest]}")
    for state in lifecycle.states:
        if state.terminal:
            lines.append(f"    {ids[state.name]} --> [*]")
    for state in lifecycle.states:
        if state.outcome is not None:
            lines.append(f"    {ids[state.name]} : {state.outcome.value}")
        elif state.provisional:
            lines.append(f"    {ids[state.name]} : provisional (re-checked slowly)")
    used = sorted(
        {s.outcome for s in lifecycle.states if s.outcome is not None},
        key=list(Outcome).index,
    )
    for outcome in used:
        lines.append(f"    classDef {outcome.value} {_CLASS[outcome]}")
    for state in lifecycle.states:
        if state.outcome is not None:
            lines.append(f"    class {ids[state.name]} {state.outcome.value}")
    return "\n".join(lines) + "\n"


def _aliases(names: tuple[str, ...]) -> dict[str, str]:
    """Map each state to a Mermaid id: itself when safe, else a unique alias."""
    taken = set(names)
    ids: dict[str, str] = {}
    for i, name in enumerate(names):
        alias = name
        if not _SAFE.match(name):
            # An alias must not collide with a real state called "s1".
            alias = f"s{i}"
            while alias in taken:
                alias = f"_{alias}"
            taken.add(alias)
        ids[name] = alias
    return ids


def _one_line(text: str) -> str:
    return " ".join(text.split())
