"""poll.progress read from poll bodies: a fraction 0..1, or nothing; recorded by the tenth."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from engine._core import step
from engine._core.binding import Binding
from engine._core.progress import new_tenth, read_progress
from engine._core.state import JobState, Phase
from statemachines.spec import Progress
from tests.engine.core.conftest import binding, job, lifecycle_of, reply, toy_document

PERCENT = Progress(pointer="/percent")
FRACTION = Progress(pointer="/fraction", max_value=1)
COUNTS = Progress(done="/done", total="/total")


# -- reading ---------------------------------------------------------------------------------


def test_no_progress_block_reads_nothing() -> None:
    """A spec without poll.progress: None, whatever the body says."""
    assert read_progress(None, {"percent": 50}) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"percent": 45}, 0.45),
        ({"percent": 12.5}, 0.125),
        ({"percent": "45"}, 0.45),
        ({"percent": " 45% "}, 0.45),
        ({"percent": 0}, 0.0),
        ({"percent": 100}, 1.0),
    ],
)
def test_a_percent_becomes_a_fraction(body: Any, expected: float) -> None:
    """Numbers and numeric strings (with or without %) out of 100."""
    assert read_progress(PERCENT, body) == pytest.approx(expected)


@pytest.mark.parametrize(("value", "expected"), [(-5, 0.0), (101, 1.0), (250, 1.0)])
def test_out_of_range_values_are_clamped(value: float, expected: float) -> None:
    """Below 0 reads as 0, above max as complete."""
    assert read_progress(PERCENT, {"percent": value}) == expected


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"percent": None},
        {"percent": True},
        {"percent": "about half"},
        {"percent": [45]},
        {"percent": "nan"},
        {"percent": "inf"},
        {"percent": 10**400},
        "not json",
        None,
    ],
)
def test_no_usable_number_reads_nothing(body: Any) -> None:
    """Missing, null, a bool, words, a list, NaN, infinity or a huge integer: None, not 0 %."""
    assert read_progress(PERCENT, body) is None


def test_a_fraction_is_out_of_its_max() -> None:
    """max: 1 reads 0.3 as 30 %."""
    assert read_progress(FRACTION, {"fraction": 0.3}) == pytest.approx(0.3)


def test_counts_are_done_out_of_total() -> None:
    """9 of 20 units done is 0.45; more done than total is complete."""
    assert read_progress(COUNTS, {"done": 9, "total": 20}) == pytest.approx(0.45)
    assert read_progress(COUNTS, {"done": 25, "total": 20}) == 1.0


@pytest.mark.parametrize(
    "body",
    [{"done": 3}, {"total": 10}, {"done": 3, "total": 0}, {"done": 3, "total": -1}],
)
def test_counts_without_a_positive_total_read_nothing(body: Any) -> None:
    """A count missing, or a total of 0 or less (nothing known yet): None."""
    assert read_progress(COUNTS, body) is None


def test_a_block_with_neither_reads_nothing() -> None:
    """A block the checks would refuse (no pointer, no counts) reads nothing here either."""
    assert read_progress(Progress(), {"percent": 50}) is None


# -- what is worth a record ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "now", "worth"),
    [
        (None, None, False),
        (0.5, None, False),
        (None, 0.0, True),
        (0.1, 0.15, False),
        (0.15, 0.2, True),
        (0.95, 1.0, True),
        (0.5, 0.3, True),
    ],
)
def test_a_record_is_worth_writing_at_each_new_tenth(
    before: float | None, now: float | None, *, worth: bool
) -> None:
    """The first reading and each new tenth (up or down) are recorded; the rest are not."""
    assert new_tenth(before, now) is worth


# -- in the core's step ----------------------------------------------------------------------


def _with_progress(progress: dict[str, Any]) -> Binding:
    document = toy_document()
    lifecycle_of(document)["poll"]["progress"] = progress
    return binding(document)


def _poll(b: Binding, current: JobState, body: Any, now: float = 1.0) -> step.Step:
    return step.on_reply(b, current, reply(body=body), now=now, rng=random.Random(1))


def test_each_poll_carries_its_reading_and_the_job_keeps_the_last() -> None:
    """The polled record says what this poll reported; the job's progress is the last one."""
    b = _with_progress({"pointer": "/pct"})
    first = _poll(b, job(b), {"status": "running", "pct": 20})
    second = _poll(b, first.job, {"status": "running", "pct": 25}, now=2.0)

    polled = [r.detail for r in (*first.records, *second.records) if r.kind == "polled"]

    assert [(d or {}).get("progress") for d in polled] == [0.2, 0.25]
    assert second.job.progress == 0.25
    assert second.job.where().progress == 0.25


def test_a_progress_record_is_written_at_each_new_tenth() -> None:
    """20 %, 25 %, 30 %: the audit records 20 % and 30 %, not 25 %."""
    b = _with_progress({"pointer": "/pct"})
    current, recorded = job(b), []
    for now, pct in enumerate((20, 25, 30), start=1):
        answered = _poll(b, current, {"status": "running", "pct": pct}, now=now)
        current = answered.job
        recorded += [r.detail for r in answered.records if r.kind == "progress"]

    assert recorded == [{"progress": 0.2}, {"progress": 0.3}]


def test_a_poll_that_says_nothing_keeps_the_last_reading() -> None:
    """A body without the number: no progress in the record, the job keeps 40 %."""
    b = _with_progress({"done": "/n", "total": "/of"})
    current = job(b, progress=0.4)

    answered = _poll(b, current, {"status": "running"})

    (polled,) = [r for r in answered.records if r.kind == "polled"]
    assert "progress" not in (polled.detail or {})
    assert answered.job.progress == 0.4
    assert not [r for r in answered.records if r.kind == "progress"]


def test_a_spec_without_progress_records_none(toy: Binding) -> None:
    """The toy spec reads no progress: the polled detail is unchanged."""
    answered = _poll(toy, job(toy), {"status": "running", "pct": 50})

    (polled,) = [r for r in answered.records if r.kind == "polled"]
    assert polled.detail == {"changed": True}
    assert answered.job.progress is None


def test_progress_survives_the_snapshot_and_old_ones_load(toy: Binding) -> None:
    """The last reading is stored; a snapshot without the key loads with None."""
    stored = job(toy, progress=0.7).to_json()
    again = JobState.from_json(json.loads(json.dumps(stored)))
    old = job(toy, phase=Phase.POLL).to_json()
    del old["progress"]

    assert again.progress == 0.7
    assert JobState.from_json(old).progress is None
