"""Chained lifecycles in the core, on plain values: inputs, keys, the steps of the next job."""

from __future__ import annotations

import json
import random
from typing import Any

import attrs
import pytest

from engine._core import step
from engine._core.binding import Binding, bind
from engine._core.chain import (
    Chained,
    ChainError,
    chain_inputs,
    chain_key,
    client_ref_for,
)
from engine._core.state import End, JobRef, JobState, Phase
from engine._errors import CancelError, RemoteError
from statemachines import Spec, load_document
from statemachines.spec import Then, ThenInput
from tests.engine._chain_service import chain_document, reports_document, to_reports
from tests.engine.core.conftest import reply

BASE = "https://files.example.test"
NOW = 50.0


def _spec(document: dict[str, Any] | None = None) -> Spec:
    return load_document(document or chain_document())


def _bind(lifecycle: str, document: dict[str, Any] | None = None) -> Binding:
    return bind(
        _spec(document), lifecycle, base_url=BASE, scale=1.0, auth=None, secrets=set()
    )


def _ended(b: Binding, **changes: Any) -> JobState:
    """A job of ``b`` whose last poll is due (phase poll, one poll to the end)."""
    job = step.new_submission(
        b, key="k1", inputs={"name": "a.jsonl"}, filters=None, now=0.0
    )
    return attrs.evolve(job, job_id="file-1", phase=Phase.POLL, **changes)


# -- the inputs ------------------------------------------------------------------------------


def _then(*sources: ThenInput) -> Then:
    return Then(lifecycle="batch", inputs=sources)


def _job(**changes: Any) -> JobState:
    return attrs.evolve(_ended(_bind("upload")), **changes)


def test_inputs_come_from_the_result_a_value_and_an_own_input() -> None:
    """A pointer into the result, a fixed value, the job's own kept input."""
    then = _then(
        ThenInput(name="input_file_id", pointer="/id"),
        ThenInput(name="window", value="24h", has_value=True),
        ThenInput(name="label", input="name"),
    )
    job = _job(result={"id": "file-1"})

    values = chain_inputs(then, _spec().lifecycle("batch"), job)

    assert values == {"input_file_id": "file-1", "window": "24h", "label": "a.jsonl"}


def test_a_pointer_may_read_the_final_response() -> None:
    """from: response reads the final poll body, not the fetched result."""
    then = _then(ThenInput(name="input_file_id", pointer="/id", source="response"))
    job = _job(response={"id": "from-response"}, result={"id": "from-result"})

    values = chain_inputs(then, _spec().lifecycle("batch"), job)

    assert values == {"input_file_id": "from-response"}


def test_defaults_fill_what_is_not_given_and_nulls_are_no_value() -> None:
    """The target's defaults apply; a null given for an optional input is dropped."""
    document = chain_document()
    document["lifecycles"]["batch"]["inputs"]["window"]["default"] = "48h"
    then = _then(
        ThenInput(name="input_file_id", value="f", has_value=True),
        ThenInput(name="label", value=None, has_value=True),
    )

    values = chain_inputs(then, _spec(document).lifecycle("batch"), _job())

    assert values == {"input_file_id": "f", "window": "48h"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (ThenInput(name="input_file_id", pointer="/nope"), "no value at '/nope'"),
        (ThenInput(name="input_file_id", input="ghost"), "no input 'ghost'"),
        (
            ThenInput(name="input_file_id", value=None, has_value=True),
            "no value for the required input 'input_file_id'",
        ),
    ],
)
def test_a_value_that_cannot_be_found_stops_the_chain(
    source: ThenInput, message: str
) -> None:
    """Nothing at the pointer, an input the job does not have, a required null."""
    with pytest.raises(ChainError, match=message):
        chain_inputs(_then(source), _spec().lifecycle("batch"), _job(result={}))


# -- keys and references ---------------------------------------------------------------------


def test_keys_of_a_chain_are_one_family() -> None:
    """K starts K~2, which starts K~3: the first key, then the place in the chain."""
    first = _job()
    second = attrs.evolve(first, key="k1~2", chain=(first.ref(),))

    assert (chain_key(first), chain_key(second)) == ("k1~2", "k1~3")


def test_a_chained_jobs_client_ref_is_derived_from_its_key() -> None:
    """The same key gives the same reference (a driver that takes over names it alike)."""
    ref = client_ref_for("k1~2")

    assert ref == client_ref_for("k1~2") != client_ref_for("k1~3")
    assert ref.startswith("sp")
    assert len(ref) == 24


# -- the step that ends the first job --------------------------------------------------------


def _last_poll(b: Binding, job: JobState, body: dict[str, Any]) -> step.Step:
    return step.on_reply(b, job, reply(body=body, url=f"{BASE}/files/file-1"),
                         now=NOW, rng=random.Random(1))  # fmt: skip


def test_a_success_with_then_names_the_next_job() -> None:
    """The completed record says what starts; the step carries it; the job keeps its key."""
    b = _bind("upload")
    done = _last_poll(b, _ended(b), {"id": "file-1", "status": "processed"})

    assert done.then == Chained(
        spec="files",
        lifecycle="batch",
        key="k1~2",
        inputs={"input_file_id": "file-1", "window": "24h", "label": "a.jsonl"},
    )
    assert (done.job.end, done.job.next_key) == (End.COMPLETED, "k1~2")
    (completed,) = [r for r in done.records if r.kind == "completed"]
    assert (completed.detail or {})["then"] == {
        "spec": "files",
        "lifecycle": "batch",
        "key": "k1~2",
    }


def test_a_success_whose_value_is_missing_ends_errored() -> None:
    """No /id in the final answer: the job ends errored, saying which chain could not start."""
    b = _bind("upload")
    done = _last_poll(b, _ended(b), {"status": "processed"})

    assert done.then is None
    assert (done.job.end, done.job.next_key, done.job.state) == (
        End.ERRORED,
        None,
        "processed",
    )
    error = done.job.job_error()
    assert isinstance(error, RemoteError)
    assert "cannot start batch: no value at '/id' in the result" in str(error)


def test_a_failure_starts_nothing() -> None:
    """A failure state ends the job; no next job, no then in the record."""
    b = _bind("upload")
    done = _last_poll(b, _ended(b), {"id": "file-1", "status": "error"})

    assert (done.then, done.job.next_key, done.job.end) == (None, None, End.COMPLETED)


# -- the next job ---------------------------------------------------------------------------


def _started() -> tuple[Binding, JobState, step.Step]:
    upload, batch = _bind("upload"), _bind("batch")
    first = _last_poll(upload, _ended(upload), {"id": "file-1", "status": "processed"})
    assert first.then is not None
    return batch, first.job, step.start_chained(batch, first.job, first.then, now=NOW)


def test_the_next_job_starts_unsent_with_its_inputs_and_chain() -> None:
    """Phase start, due now, no id; its inputs pending; its chain names the first job."""
    _, first, started = _started()
    job = started.job

    assert (job.key, job.lifecycle, job.phase, job.job_id, job.due) == (
        "k1~2",
        "batch",
        Phase.START,
        "",
        NOW,
    )
    assert job.pending == {
        "input_file_id": "file-1",
        "window": "24h",
        "label": "a.jsonl",
    }
    assert job.chain == (first.ref(),)
    assert job.client_ref is None  # the batch submit sends no reference
    (record,) = started.records
    assert (record.kind, record.trigger, record.to_state) == (
        "chained",
        "then",
        "in_progress",
    )
    assert record.detail == {
        "key": "k1~2",
        "chained_from": "k1",
        "from_lifecycle": "upload",
        "from_job_id": "file-1",
    }


def test_a_next_job_whose_spec_sends_a_reference_gets_one_from_its_key() -> None:
    """submit.client_ref declared: the chained job's reference is derived from its key."""
    document = chain_document()
    document["lifecycles"]["batch"]["submit"]["client_ref"] = {
        "header": "Idempotency-Key"
    }
    first = _ended(_bind("upload", document))
    chained = Chained(
        spec="files", lifecycle="batch", key="k1~2", inputs={"input_file_id": "f"}
    )

    job = step.start_chained(_bind("batch", document), first, chained, now=NOW).job

    assert job.client_ref == client_ref_for("k1~2")


def test_its_intent_is_committed_before_it_is_sent() -> None:
    """From start to submit, due now, with an intent record naming it by key."""
    batch, _, started = _started()

    intent = step.begin_submit(batch, started.job, now=NOW + 1)

    assert (intent.job.phase, intent.job.due) == (Phase.SUBMIT, NOW + 1)
    assert started.job.phase is Phase.START  # the step works on a copy
    (record,) = intent.records
    assert (record.kind, record.detail) == (
        "intent",
        {"client_ref": None, "key": "k1~2"},
    )


def test_then_its_submit_is_built_from_the_pending_inputs() -> None:
    """In phase submit with pending inputs, the next request is the submit with its body."""
    batch, _, started = _started()
    sending = step.begin_submit(batch, started.job, now=NOW).job

    out = step.request_for(batch, sending)

    assert (out.method, out.url) == ("POST", f"{BASE}/batches")
    assert out.json_body == {
        "input_file_id": "file-1",
        "window": "24h",
        "label": "a.jsonl",
    }


def test_a_submit_that_cannot_be_built_is_a_protocol_error() -> None:
    """Pending inputs the submit cannot use (a path input missing): a classified error."""
    document = chain_document()
    document["lifecycles"]["batch"]["submit"]["request"]["path"] = "/p/{region}"
    document["lifecycles"]["batch"]["inputs"]["region"] = {"in": "path"}
    batch = _bind("batch", document)
    job = attrs.evolve(
        step.new_submission(batch, key="k", inputs={}, filters=None, now=NOW),
        pending={"input_file_id": "f"},
    )

    with pytest.raises(RemoteError, match="files/batch:"):
        step.request_for(batch, job)


def test_the_answered_submit_lets_the_pending_inputs_go() -> None:
    """Once submitted, the job polls, and keeps only what later requests use."""
    batch, _, started = _started()
    sending = step.begin_submit(batch, started.job, now=NOW).job

    answered = step.on_reply(batch, sending, reply(201, {"id": "batch-1"}, url=f"{BASE}/batches"),
                             now=NOW, rng=random.Random(1)).job  # fmt: skip

    assert (answered.phase, answered.job_id, answered.pending) == (
        Phase.POLL,
        "batch-1",
        None,
    )
    (submitted,) = [
        r
        for r in step.on_reply(
            batch,
            sending,
            reply(201, {"id": "b"}, url=f"{BASE}/batches"),
            now=NOW,
            rng=random.Random(1),
        ).records
        if r.kind == "submitted"
    ]
    assert submitted.detail == {"key": "k1~2"}


def test_a_submit_to_be_retried_keeps_its_inputs() -> None:
    """A 429 the spec retries: still in submit, inputs kept for the next try."""
    document = chain_document()
    document["lifecycles"]["batch"]["submit"]["retry_status"] = [429]
    batch = _bind("batch", document)
    first = _ended(_bind("upload", document))
    chained = Chained(
        spec="files", lifecycle="batch", key="k1~2", inputs={"input_file_id": "f"}
    )
    started = step.start_chained(batch, first, chained, now=NOW).job
    sending = step.begin_submit(batch, started, now=NOW).job

    retried = step.on_reply(batch, sending, reply(429, {}, url=f"{BASE}/batches"),
                            now=NOW, rng=random.Random(1)).job  # fmt: skip

    assert (retried.phase, retried.pending) == (Phase.SUBMIT, {"input_file_id": "f"})


def test_a_job_not_submitted_yet_cannot_be_cancelled() -> None:
    """Cancelling a chained job in start: nothing to cancel yet."""
    document = chain_document()
    document["lifecycles"]["batch"]["cancel"] = {
        "request": {"method": "POST", "path": "/batches/{job_id}/cancel"},
        "from": ["in_progress"],
        "leads_to": ["failed"],
    }
    batch = _bind("batch", document)
    first = _ended(_bind("upload", document))
    chained = Chained(
        spec="files", lifecycle="batch", key="k1~2", inputs={"input_file_id": "f"}
    )
    started = step.start_chained(batch, first, chained, now=NOW).job

    with pytest.raises(CancelError, match="not been submitted yet"):
        step.request_cancel(batch, started, now=NOW)


def test_a_chained_jobs_result_names_the_chain_and_the_snapshot_keeps_it() -> None:
    """JobResult.chain is every job, the first first; chain, next key and pending are stored."""
    _, first, started = _started()
    job = attrs.evolve(started.job, next_key="k1~3")

    again = JobState.from_json(json.loads(json.dumps(job.to_json())))
    result = again.to_result(None)

    assert (again.chain, again.next_key, again.pending) == (
        (first.ref(),),
        "k1~3",
        job.pending,
    )
    assert result.chained_from == (first.ref(),)
    assert result.chain == (first.ref(), again.ref())
    assert first.to_result(None).chain == (JobRef("k1", "files", "upload", "file-1"),)


# -- another spec, and the length of a chain ---------------------------------------------------


def _to_reports(*, with_reports: bool) -> Binding:
    document = to_reports(chain_document())
    return bind(
        _spec(document),
        "upload",
        base_url=BASE,
        scale=1.0,
        auth=None,
        secrets=set(),
        chained={"reports": _spec(reports_document())} if with_reports else None,
    )


def test_a_then_of_another_spec_names_that_spec_and_checks_its_inputs() -> None:
    """The next job is the reports spec's render, given the upload's id as its source."""
    b = _to_reports(with_reports=True)

    done = _last_poll(b, _ended(b), {"id": "file-1", "status": "processed"})

    assert done.then == Chained(
        spec="reports", lifecycle="render", key="k1~2", inputs={"source": "file-1"}
    )


def test_a_then_of_a_spec_the_binding_lacks_ends_errored() -> None:
    """Bound without the other spec: the job ends errored instead of guessing."""
    b = _to_reports(with_reports=False)

    done = _last_poll(b, _ended(b), {"id": "file-1", "status": "processed"})

    assert (done.then, done.job.end) == (None, End.ERRORED)
    assert "no lifecycle 'render' of spec 'reports' here" in str(done.job.job_error())


def test_a_chain_stops_at_its_longest() -> None:
    """The 16th job of a chain starts no 17th: chains through other specs cannot run forever."""
    b = _bind("upload")
    earlier = tuple(JobRef(f"k0~{i}", "files", "upload", f"f{i}") for i in range(15))
    last = _ended(b, chain=earlier)
    within = _ended(b, chain=earlier[:14])

    stopped = _last_poll(b, last, {"id": "file-1", "status": "processed"})
    going = _last_poll(b, within, {"id": "file-1", "status": "processed"})

    assert stopped.job.end is End.ERRORED
    assert "a chain has at most 16 jobs" in str(stopped.job.job_error())
    assert going.then is not None
    assert going.then.key == "k0~0~16"


def test_an_input_a_chain_passes_on_is_kept_after_the_submit() -> None:
    """A body input named by then's {"input": NAME} stays with the job until it ends."""
    document = chain_document()
    upload = document["lifecycles"]["upload"]
    upload["inputs"]["note"] = {"in": "body"}
    upload["states"]["processed"]["then"]["inputs"]["label"] = {"input": "note"}

    b = _bind("upload", document)

    assert "note" in b.kept
