"""Console progress: job-level lines stay readable; item moves are summarized per batch."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from engine import (
    Completed,
    ItemTransition,
    Polled,
    Retrying,
    Submitted,
    TransitionEvent,
)
from engine.cli import main
from engine.cli._progress import Progress
from statemachines import Outcome

JOB: dict[str, Any] = {
    "service": "azure-translator",
    "lifecycle": "batch",
    "job_id": "b-1",
}


def _item(item_id: str, source: str, dest: str) -> ItemTransition:
    return ItemTransition(**JOB, state="Running", item_id=item_id,
                          item_lifecycle="document", source=source, dest=dest)  # fmt: skip


def _lines(out: io.StringIO) -> list[str]:
    return [
        re.sub(r"^\[\s*[\d.]+s\] ", "", line) for line in out.getvalue().splitlines()
    ]


def test_item_moves_print_one_summary_line_per_change_of_counts() -> None:
    """120 item moves between two polls print one line of counts, not 120 lines."""
    out = io.StringIO()
    progress = Progress(out)
    for n in range(120):
        progress.on_item_transition(_item(f"d{n}", "NotStarted", "Running"))
    progress.on_polled(Polled(**JOB, state="Running", attempt=2, observed="Running"))
    for n in range(77):
        progress.on_item_transition(_item(f"d{n}", "Running", "Succeeded"))
    for n in range(77, 80):
        progress.on_item_transition(_item(f"d{n}", "Running", "Failed"))

    progress.on_polled(Polled(**JOB, state="Running", attempt=3, observed="Running"))
    progress.on_polled(Polled(**JOB, state="Running", attempt=4, observed="Running"))

    assert _lines(out) == [
        "azure-translator/batch b-1 documents: 120 Running",
        "azure-translator/batch b-1 documents: 40 Running, 77 Succeeded, 3 Failed",
    ]


def test_item_summary_comes_before_the_jobs_next_line() -> None:
    """Pending item counts print before the job's own next line, keeping event order."""
    out = io.StringIO()
    progress = Progress(out)
    progress.on_item_transition(_item("d1", "Running", "Succeeded"))

    progress.on_transition(
        TransitionEvent(**JOB, state="Succeeded", source="Running", dest="Succeeded")
    )
    progress.on_completed(Completed(**JOB, state="Succeeded", outcome=Outcome.SUCCESS))

    assert _lines(out) == [
        "azure-translator/batch b-1 documents: 1 Succeeded",
        "azure-translator/batch b-1 Running -> Succeeded",
        "azure-translator/batch b-1 completed: Succeeded (success)",
    ]


def test_close_prints_pending_item_counts() -> None:
    """Counts not printed yet are printed when progress closes."""
    out = io.StringIO()
    progress = Progress(out)
    progress.on_item_transition(_item("d1", "NotStarted", "Cancelling"))

    progress.close()

    assert _lines(out) == ["azure-translator/batch b-1 documents: 1 Cancelling"]


def test_retrying_line_names_kind_error_retry_and_delay() -> None:
    """A retry is one line: the error's kind and text, retry n/budget, and when next."""
    out = io.StringIO()
    progress = Progress(out)

    progress.on_retrying(Retrying(service="mindee", lifecycle="inference", job_id="abc",
                                  state="Processing", kind="transport",
                                  error="connection to 127.0.0.1/v2/jobs/abc failed",
                                  delay=1.5, failures=2, budget=8))  # fmt: skip

    assert _lines(out) == [
        (
            "mindee/inference abc retrying after a transport error: connection to "
            "127.0.0.1/v2/jobs/abc failed (retry 2/8, next in 1.5s)"
        )
    ]


def test_submitted_and_adopted_lines() -> None:
    """A job's first line says whether it was submitted or adopted, and where it is."""
    out = io.StringIO()
    progress = Progress(out)

    progress.on_submitted(Submitted(**JOB, state="NotStarted"))
    progress.on_submitted(Submitted(**JOB, state="Running", adopted=True))

    assert _lines(out) == [
        "azure-translator/batch b-1 submitted in NotStarted",
        "azure-translator/batch b-1 adopted in Running",
    ]


def test_demo_ends_zero_with_readable_job_lines(tmp_path: Path) -> None:
    """The demo exits 0 with every job as expected; document moves come as summary lines."""
    out, err = io.StringIO(), io.StringIO()

    code = main(
        ["demo", "--audit", str(tmp_path / "audit.jsonl")], stdout=out, stderr=err
    )

    lines = out.getvalue().splitlines()
    summaries = [line for line in lines if " documents: " in line]
    assert code == 0, err.getvalue()
    assert "11/11 jobs ended as expected" in lines
    assert not [line for line in lines if " item " in line]
    assert summaries
    assert len(lines) < 100
    assert any("documents: 117 Succeeded, 3 Failed" in line for line in summaries)
