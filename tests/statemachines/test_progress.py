"""poll.progress: the schema, the model it builds, and the combinations the checks refuse."""

from __future__ import annotations

from typing import Any

import pytest

from statemachines import SpecError, load_document
from statemachines.spec import Progress
from tests.statemachines.helpers import job_lifecycle, minimal_spec

AT = "/lifecycles/job/poll/progress"


def _with_progress(progress: Any) -> dict[str, Any]:
    document = minimal_spec()
    job_lifecycle(document)["poll"]["progress"] = progress
    return document


def _errors(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        load_document(document)
    return [
        (p.pointer, p.message) for p in info.value.problems if p.severity == "error"
    ]


def test_a_percent_pointer_builds_with_its_location() -> None:
    """A pointer alone is a percent: max_value stays None (100), the location is kept."""
    spec = load_document(_with_progress({"pointer": "/percentComplete"}))

    progress = spec.lifecycle("job").poll.progress

    assert progress == Progress(pointer="/percentComplete")
    assert progress is not None
    assert progress.location == AT


def test_a_fraction_and_counts_build() -> None:
    """A max turns a pointer into a fraction; done and total are counts."""
    fraction = load_document(_with_progress({"pointer": "/p", "max": 1}))
    counts = load_document(_with_progress({"done": "/n", "total": "/of"}))

    assert fraction.lifecycle("job").poll.progress == Progress(
        pointer="/p", max_value=1
    )
    assert counts.lifecycle("job").poll.progress == Progress(done="/n", total="/of")


def test_a_poll_without_progress_has_none() -> None:
    """Existing specs are unchanged: no progress block, no progress read."""
    assert load_document(minimal_spec()).lifecycle("job").poll.progress is None


@pytest.mark.parametrize(
    ("progress", "where"),
    [
        ({"pointer": "no-slash"}, f"{AT}/pointer"),
        ({"pointer": "/p", "max": 0}, f"{AT}/max"),
        ({"pointer": "/p", "extra": 1}, f"{AT}/extra"),
        ({}, AT),
    ],
)
def test_the_schema_refuses_malformed_progress(progress: Any, where: str) -> None:
    """A bad pointer, a max of 0, an unknown key or an empty block: a schema problem there."""
    assert where in [pointer for pointer, _ in _errors(_with_progress(progress))]


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (
            {"pointer": "/p", "done": "/d", "total": "/t"},
            (AT, "give pointer (a number out of max) or done and total, not both"),
        ),
        (
            {"max": 1, "done": "/d", "total": "/t"},
            (f"{AT}/max", "max is what pointer's number is out of: add pointer"),
        ),
        (
            {"done": "/d"},
            (f"{AT}/done", "done needs total beside it (the count in all)"),
        ),
        (
            {"total": "/t"},
            (f"{AT}/total", "total needs done beside it (the count done)"),
        ),
        (
            {"done": "/n", "total": "/n"},
            (f"{AT}/total", "done and total are the same pointer: always complete"),
        ),
        (
            {"description": "nothing to read"},
            (
                AT,
                "give pointer (a number out of max, 100 by default) or done and total",
            ),
        ),
    ],
)
def test_the_checks_refuse_what_cannot_be_read(
    progress: Any, expected: tuple[str, str]
) -> None:
    """Each bad combination is one problem at its pointer, saying what to do."""
    assert _errors(_with_progress(progress)) == [expected]


def test_progress_on_an_items_only_lifecycle_is_refused() -> None:
    """Items are not shown with a progress: the block belongs on the job's lifecycle."""
    document = minimal_spec()
    document["lifecycles"]["doc"] = {
        **job_lifecycle(minimal_spec()),
        "item_only": True,
    }
    document["lifecycles"]["doc"]["poll"]["progress"] = {"pointer": "/p"}

    assert _errors(document) == [
        (
            "/lifecycles/doc/poll/progress",
            (
                "progress is read on a job's polls; this lifecycle only tracks "
                "items (declare it on the job's lifecycle)"
            ),
        )
    ]
