"""Lifecycle → Mermaid stateDiagram-v2 text."""

from __future__ import annotations

import re
from typing import Any

import pytest

from statemachines import Lifecycle, load_builtin, load_document, mermaid
from tests.statemachines.helpers import job_lifecycle, minimal_spec

MINDEE_INFERENCE = """\
stateDiagram-v2
    %% inference: One document inference job: enqueue (multipart) → Processing → \
Processed (302 + result) or Failed.
    [*] --> Processing
    Processing --> Processed
    Processing --> Failed
    Processed --> [*]
    Failed --> [*]
    Processed : success
    Failed : failure
    classDef success fill:#d4edda,stroke:#2e7d32
    classDef failure fill:#f8d7da,stroke:#c62828
    class Processed success
    class Failed failure
"""


def _renamed(old: str, new: str) -> dict[str, Any]:
    """Return the minimal spec with state ``old`` renamed to ``new`` everywhere."""
    document = minimal_spec()
    lifecycle = job_lifecycle(document)
    lifecycle["states"] = {
        (new if name == old else name): state
        for name, state in lifecycle["states"].items()
    }
    for transition in lifecycle["transitions"]:
        for end in ("from", "to"):
            value = transition[end]
            if isinstance(value, list):
                transition[end] = [new if v == old else v for v in value]
            elif value == old:
                transition[end] = new
    mapping = lifecycle["poll"]["observe"][0]["map"]
    lifecycle["poll"]["observe"][0]["map"] = {
        k: (new if v == old else v) for k, v in mapping.items()
    }
    return document


def _job(document: dict[str, Any]) -> Lifecycle:
    return load_document(document).lifecycle("job")


def test_mindee_inference_diagram_is_exact() -> None:
    """The full Mermaid text of Mindee's inference lifecycle, line for line."""
    lifecycle = load_builtin("mindee").lifecycle("inference")

    text = mermaid(lifecycle)

    assert text == MINDEE_INFERENCE


@pytest.mark.parametrize("name", ["In-Progress", "v1.2"])
def test_state_name_mermaid_cannot_take_is_aliased(name: str) -> None:
    """A name with '-' or '.' is declared once with an alias, and edges use the alias."""
    lifecycle = _job(_renamed("Running", name))

    lines = mermaid(lifecycle).splitlines()

    assert f'    state "{name}" as s1' in lines
    assert "    Queued --> s1" in lines
    assert "    s1 --> Done" in lines
    assert not any(name in line for line in lines if not line.startswith("    state "))


def test_alias_never_collides_with_a_declared_state_name() -> None:
    """An aliased state never gets an id that another state already uses as its name."""
    document = _renamed("Running", "In-Progress")
    lifecycle = job_lifecycle(document)
    lifecycle["states"]["s1"] = {}
    lifecycle["transitions"].append({"from": "Queued", "to": "s1"})
    lifecycle["transitions"].append({"from": "s1", "to": "Failed"})

    text = mermaid(_job(document))

    aliases = re.findall(
        r'^    state "In-Progress" as (\S+)$', text, flags=re.MULTILINE
    )
    assert len(aliases) == 1
    assert aliases[0] not in {"Queued", "In-Progress", "Done", "Failed", "s1"}


def test_provisional_state_is_noted() -> None:
    """A provisional, non-terminal state carries a note saying it is re-checked slowly."""
    lifecycle = load_builtin("oneclickdz").lifecycle("mobile_topup")

    lines = mermaid(lifecycle).splitlines()

    assert "    UNKNOWN_ERROR : provisional (re-checked slowly)" in lines
    assert "    UNKNOWN_ERROR --> [*]" not in lines


def test_lifecycle_without_description_has_no_comment_line() -> None:
    """No description, no '%%' line: the initial arrow follows the header."""
    lifecycle = _job(minimal_spec())

    lines = mermaid(lifecycle).splitlines()

    assert lines[:2] == ["stateDiagram-v2", "    [*] --> Queued"]


def test_multiline_description_is_folded_into_one_comment_line() -> None:
    """Whitespace runs, newlines included, collapse so the comment stays one line."""
    document = minimal_spec()
    job_lifecycle(document)["description"] = "First line.\n  Second\tline."

    lines = mermaid(_job(document)).splitlines()

    assert lines[1] == "    %% job: First line. Second line."


def test_every_outcome_gets_its_class_in_outcome_order() -> None:
    """A classDef appears once per outcome used, ordered success, failure, cancelled, partial."""
    lifecycle = load_builtin("oneclickdz").lifecycle("gift_card")
    batch = load_builtin("azure-translator").lifecycle("batch")

    gift_defs = [ln for ln in mermaid(lifecycle).splitlines() if "classDef" in ln]
    batch_defs = [ln for ln in mermaid(batch).splitlines() if "classDef" in ln]

    assert [ln.split()[1] for ln in gift_defs] == ["success", "failure", "partial"]
    assert [ln.split()[1] for ln in batch_defs] == ["success", "failure", "cancelled"]
    assert "    class PARTIALLY_FILLED partial" in mermaid(lifecycle).splitlines()


def test_duplicate_declared_move_is_drawn_once() -> None:
    """A move declared twice gives one arrow."""
    document = minimal_spec()
    job_lifecycle(document)["transitions"].append({"from": "Queued", "to": "Running"})

    lines = mermaid(_job(document)).splitlines()

    assert lines.count("    Queued --> Running") == 1


def test_diagram_ends_with_a_newline() -> None:
    """The text is newline-terminated, ready to write to a file or stdout."""
    lifecycle = _job(minimal_spec())

    text = mermaid(lifecycle)

    assert text.endswith("failure\n")
    assert not text.endswith("\n\n")
