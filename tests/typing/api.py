"""Every public signature, used as an application would: checked by mypy only, never run.

pytest does not collect this file (its name does not start with ``test_``);
CI runs ``mypy --strict`` over ``tests``, so an accidental ``Any`` in a
return type, a broken overload or a renamed option fails the build here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, assert_type

import httpx

import statemachines
from engine import (
    EVENT_NAMES,
    AsyncEngine,
    CancelError,
    Clock,
    CredentialError,
    Engine,
    EngineClosedError,
    EngineOptions,
    InputError,
    JobError,
    JobFailed,
    JobRef,
    JobResult,
    JobTimedOut,
    RemoteError,
    SystemClock,
    audit,
    stores,
)
from engine import _events as events
from statemachines import (
    LifecycleMachine,
    Problem,
    Spec,
    SpecError,
    StatepollError,
    Template,
    TemplateError,
    UnknownSpecError,
)


def spec_language(path: os.PathLike[str]) -> None:
    """Loading, validating, compiling and drawing specs."""
    spec = statemachines.load_spec(path)
    assert_type(spec, Spec)
    assert_type(statemachines.load_spec("mindee"), Spec)
    assert_type(statemachines.load_builtin("oneclickdz"), Spec)
    assert_type(statemachines.load_document({"spec_version": "1"}, source="x"), Spec)
    assert_type(statemachines.builtin_names(), tuple[str, ...])
    assert_type(statemachines.builtin_path("mindee"), Path)
    assert_type(statemachines.specs_dir(), Path)
    assert_type(spec.content_hash, str)
    assert_type(spec.document, Mapping[str, Any])
    assert_type(spec.warnings, tuple[Problem, ...])
    assert_type(spec.lifecycle_names, tuple[str, ...])
    lifecycle = spec.lifecycle("inference")
    assert_type(lifecycle.initial, str)
    assert_type(lifecycle.state("Processed").terminal, bool)
    machine = statemachines.build_machine(lifecycle)
    assert_type(machine, LifecycleMachine)
    assert_type(machine.is_legal("Processing", "Processed"), bool)
    assert_type(machine.path("Processing", "Processed"), tuple[str, ...] | None)
    assert_type(statemachines.mermaid(lifecycle), str)
    assert_type(statemachines.split_pointer("/a/b"), tuple[str, ...])
    assert_type(statemachines.resolve_pointer({"a": 1}, "/a"), Any)
    template = Template.parse("/jobs/{job_id}")
    assert_type(template, Template)
    assert_type(template.variables, tuple[str, ...])
    assert_type(template.expand({"job_id": "1"}), str)
    assert_type(template.expand({"job_id": "1"}, encode=False), str)


def spec_errors() -> None:
    """A bad spec names every problem: file, pointer, message."""
    try:
        statemachines.load_spec("nope.json")
    except SpecError as exc:
        assert_type(exc.problems, tuple[Problem, ...])
        first = exc.problems[0]
        assert_type(first.file, str)
        assert_type(first.pointer, str)
        assert_type(first.message, str)
        assert_type(first.severity, Literal["error", "warning"])
    except UnknownSpecError as exc:
        family: StatepollError = exc  # every error of ours is a StatepollError
        assert_type(str(family), str)
    try:
        Template.parse("{}")
    except TemplateError as exc:
        assert_type(exc.template, str)
        assert_type(exc.variable, str | None)
        as_value_error: ValueError = exc
        assert_type(str(as_value_error), str)


async def async_engine(client: httpx.AsyncClient, clock: Clock) -> None:
    """The async core: every operation and its result types."""
    async with AsyncEngine(
        ["mindee", statemachines.load_builtin("oneclickdz")],
        client=client,
        clock=clock,
        audit="audit.jsonl",
        store=Path("jobs.db"),
        base_urls={"mindee": "http://127.0.0.1:8000"},
        env={"MINDEE_V2_API_KEY": "key"},
        max_in_flight=32,
        seed=1,
        max_body=1 << 20,
        time_scale={"mindee": 0.1},
    ) as engine:
        assert_type(engine, AsyncEngine)
        job = await engine.submit("mindee", "inference", model_id="m", file=b"%PDF")
        assert_type(job, JobRef)
        adopted = await engine.track(
            "oneclickdz", "topup", "ref-1", {"plan": "x"}, state="PENDING"
        )
        assert_type(adopted, JobRef)
        limited = await engine.submit(
            "mindee", "inference", {"model_id": "m"}, deadline=120, max_attempts=40
        )
        assert_type(limited, JobRef)
        assert_type((await engine.status(limited)).progress, float | None)
        assert_type(job.job_id, str)
        result = await engine.wait(job, timeout=60)
        assert_type(result, JobResult)
        assert_type(result.ok, bool)
        assert_type(result.state, str)
        assert_type(result.status, int | None)
        assert_type(result.items, Mapping[str, str])
        assert_type(result.error, JobError | None)
        assert_type(result.raise_for_outcome(), JobResult)
        assert_type(result.chain, tuple[JobRef, ...])
        assert_type(result.chained_from, tuple[JobRef, ...])
        stream = engine.as_completed([job, adopted], timeout=5.0)
        assert_type(stream, AsyncGenerator[JobResult, None])
        async for done in stream:
            assert_type(done, JobResult)
        assert_type(await engine.cancel(adopted), bool)
        assert_type(engine.state_of(job), str)
        assert_type(engine.jobs(), list[JobRef])


async def hooks(
    engine: AsyncEngine,
    blocking: Engine,
    moved: events.TransitionEvent,
    item: events.ItemTransition,
    ended: events.Completed,
) -> None:
    """``on`` returns the hook it was given with its own type, or a decorator that does."""

    def on_polled(event: events.Polled) -> None:
        assert_type(event.progress, float | None)

    engine.on("polled", on_polled)

    def on_transition(event: events.TransitionEvent) -> None:
        assert_type(event.source, str)
        assert_type(event.dest, str)
        assert_type(event.inferred, bool)
        assert_type(event.next_delay, float | None)

    # Calling what on() returns: an Any would make these None checks fail.
    assert_type(engine.on("transition", on_transition)(moved), None)
    assert_type(blocking.on("transition", on_transition, service="mindee")(moved), None)

    @engine.on("item_transition", lifecycle="batch")
    async def decorated(event: events.ItemTransition) -> None:
        assert_type(event.item_id, str)

    @blocking.on("completed", state="Processed")
    def finished(event: events.Completed) -> None:
        assert_type(event.outcome, statemachines.Outcome | None)

    assert_type(await decorated(item), None)
    assert_type(finished(ended), None)
    for name in EVENT_NAMES:
        assert_type(name, str)


def blocking_engine(options: EngineOptions) -> None:
    """The blocking twin takes the same options (checked against EngineOptions)."""
    with Engine(["mindee"], **options) as engine:
        assert_type(engine, Engine)
        job = engine.submit("mindee", "inference", {"model_id": "m"}, file=b"%PDF")
        assert_type(job, JobRef)
        queued = engine.enqueue("mindee", "inference", deadline=60.0, max_attempts=5)
        assert_type(queued, JobRef)
        assert_type(engine.wait(job, timeout=1.0), JobResult)
        stream = engine.as_completed()
        assert_type(stream, Iterator[JobResult])
        assert_type(engine.cancel(job), bool)
    Engine(max_in_flight=4, time_scale=0.5, clock=SystemClock())


def errors(exc: Exception) -> None:
    """Errors carry their classification; every one is a StatepollError."""
    if isinstance(exc, RemoteError):
        assert_type(exc.retryable, bool)
        assert_type(exc.status, int | None)
        assert_type(exc.code, str | None)
    if isinstance(exc, JobFailed):
        assert_type(exc.outcome, str)
    for kind in (
        CancelError,
        CredentialError,
        EngineClosedError,
        InputError,
        JobTimedOut,
    ):
        assert issubclass(kind, StatepollError)


def audit_and_store(path: Path, spec: Spec) -> None:
    """Audit sinks, redaction, verification, reports and the job store."""
    sink = audit.open_audit(path, fsync="interval", secrets=["k"])
    assert_type(sink, audit.AuditSink)
    redactor = audit.Redactor.for_spec(spec, {"k"})
    redactor.add_secret("k2")
    assert_type(redactor.text("?sig=x"), str)
    assert_type(redactor.redact({"a": [1]}), Any)
    entry = audit.spec_entry(spec, {"spec_version": "1"})
    assert_type(redactor.entry(entry), audit.AuditEntry)
    assert_type(sink.append(entry), Mapping[str, Any])
    built = audit.build_record(entry, seq=1, prev=audit.GENESIS, secrets=["k"])
    assert_type(built, dict[str, Any])
    report = audit.verify_log(path, specs=[spec])
    assert_type(report, audit.VerifyReport)
    assert_type(report.intact, bool)
    assert_type(report.checked, bool)
    assert_type(report.records, int)
    for problem in report.problems:
        assert_type(problem, audit.AuditProblem)
        assert_type(problem.kind, Literal["tampered", "illegal", "unchecked"])
        assert_type(problem.seq, int | None)
    assert_type(report[0], audit.AuditProblem)
    assert_type(list(report), list[audit.AuditProblem])
    assert issubclass(audit.AuditFormatError, ValueError)
    assert issubclass(audit.AuditWriteError, OSError)
    assert "spec" in audit.AUDIT_KINDS
    for record in audit.read_records(path):
        assert_type(record, Mapping[str, Any])
        assert_type(audit.record_hash(record), str)
    assert_type(audit.show_log(path, job="id"), list[str])
    stats = audit.log_stats(path)
    assert_type(stats, list[audit.LifecycleStats])
    assert_type(audit.format_stats(stats), list[str])
    jobs = stores.open_store(path)
    assert_type(jobs, stores.JobStore)
