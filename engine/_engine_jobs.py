"""AsyncEngine's job creation: submit, enqueue, track and track_many, and their helpers.

A submission is sent here (retried as the spec allows, its intent committed
first with a store); an adopted job's first step is built by the core and
handed to the scheduler, or written to the store for workers to drive.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from engine._bindings import check_filters, check_inputs
from engine._core import step as core
from engine._core.state import JobRef, Phase, Record, check_limits
from engine._engine_lifecycle import _EngineLifecycle
from engine._errors import InputError
from engine._scheduler import Live
from engine.stores import StoreError
from statemachines import Spec

if TYPE_CHECKING:
    from engine._core.binding import Binding

#: Jobs written per transaction by track_many.
_BATCH: Final = 1000


class _JobCreation(_EngineLifecycle):
    """Start tracking jobs: create them on the service, or adopt them by id."""

    # -- public operations -----------------------------------------------------------

    async def submit(
        self,
        spec: Spec | str,
        lifecycle: str,
        /,
        inputs: Mapping[str, Any] | None = None,
        *,
        item_filters: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        max_attempts: int | None = None,
        **more_inputs: Any,
    ) -> JobRef:
        """Create a job on the service and start tracking it.

        Inputs are the lifecycle's declared inputs (``inputs`` and keyword
        arguments merge); a ``file`` input takes a path, bytes, or a
        ``(filename, content, content_type)`` tuple. Statuses the spec marks
        safe to repeat (``submit.retry_status``, e.g. 429) are retried on the
        spec's schedule; anything else that fails is raised.

        ``deadline`` (seconds after the submit) and ``max_attempts`` (polls)
        are this job's own limits, in place of the spec's ``schedule`` ones
        (times the time scale, as the spec's); inputs of those names go in
        ``inputs``.

        Raises:
            InputError: a missing, unknown or ill-typed input, or a limit
                that is not positive.
            CredentialError: the spec's credential variable is unset.
            RemoteError: the service refused the submission.
        """
        await self._ensure_open("submit")
        live, step = await self._submit(
            spec,
            lifecycle,
            {**(inputs or {}), **more_inputs},
            item_filters,
            check_limits(deadline, max_attempts),
        )
        self._run.register(live)
        await self._run.commit(live, step)
        return step.job.ref()

    async def enqueue(
        self,
        spec: Spec | str,
        lifecycle: str,
        /,
        inputs: Mapping[str, Any] | None = None,
        *,
        item_filters: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        max_attempts: int | None = None,
        **more_inputs: Any,
    ) -> JobRef:
        """Create a job on the service and leave it in the store for any driver to track.

        The submit is sent (crash-safe, as :meth:`submit`), its job id and
        first state committed to the store, and the job let go at once: a
        ``Worker`` (or another engine with the same store) drives it from
        there. :meth:`wait` and :meth:`status` work on it from any process
        that opens the store. ``deadline`` and ``max_attempts`` are kept with
        the job: every driver applies them (see :meth:`submit`).

        Raises:
            StoreError: the engine has no store to leave the job in.
            InputError: a missing, unknown or ill-typed input, or a limit
                that is not positive.
            CredentialError: the spec's credential variable is unset.
            RemoteError: the service refused the submission.
        """
        await self._ensure_open("enqueue")
        if self._store is None:
            msg = "enqueue needs a store: create the engine with store=…"
            raise StoreError(msg)
        live, step = await self._submit(
            spec,
            lifecycle,
            {**(inputs or {}), **more_inputs},
            item_filters,
            check_limits(deadline, max_attempts),
        )
        lease = await self._publisher.persist(
            live.b,
            step.job,
            step.records,
            live.lease,
            hold=False,
            now=self._clock.now(),
        )
        del lease  # let go: the job is the workers' now
        await self._publisher.announce(live.b, step.job, step.records)
        return step.job.ref()

    async def _submit(
        self,
        spec: Spec | str,
        lifecycle: str,
        given: Mapping[str, Any],
        item_filters: Mapping[str, Any] | None,
        limits: tuple[float | None, int | None],
    ) -> tuple[Live, core.Step]:
        """Send a submission (retried as the spec allows) and return its first step.

        With a store, the intent (the job's key and client reference) is
        committed before the request is sent: a crash while it is on the wire
        leaves a record to resolve (the spec's lookup), never a lost job.
        """
        b = self._bind.binding(spec, lifecycle)
        submit = b.lifecycle.submit
        if submit is None:
            msg = f"{b.name} has no submit; use track() with an existing id"
            raise InputError(msg)
        values = check_inputs(b, given, for_submit=True)
        check_filters(b, item_filters)
        now = self._clock.now()
        job = core.new_submission(
            b,
            key=self._new_key(),
            inputs=values,
            filters=item_filters,
            now=now,
            # Used when the spec sends a reference the caller did not give.
            client_ref=f"sp{uuid.uuid4().hex[:22]}" if submit.client_ref else None,
            deadline_after=limits[0],
            max_attempts=limits[1],
        )
        live = Live(b, job)
        if self._store is not None:
            intent = Record(kind="intent", detail={"client_ref": job.client_ref})
            live.lease = await self._publisher.add(b, job, [intent], hold=True, now=now)
        while True:
            out = core.submit_request(b, job, values)
            got = await self._run.send(b, out, job)
            step = core.on_reply(b, job, got, now=self._clock.now(), rng=self._rng)
            job = step.job
            if job.phase is not Phase.SUBMIT:
                break
            # A retry the spec allows (a 429): written, logged, announced.
            live.lease = await self._publisher.persist(
                b, job, step.records, live.lease, hold=True, now=self._clock.now()
            )
            await self._publisher.announce(b, job, step.records)
            await self._clock.sleep_until(job.due)
        if not job.job_id:
            live.lease = await self._publisher.persist(
                b, job, step.records, live.lease, hold=False, now=self._clock.now()
            )
            await self._publisher.announce(b, job, step.records)
            error = job.job_error()
            assert error is not None  # noqa: S101 - a submission without an id has failed
            raise error
        if live.lease is None:
            # No store: the job's first write is this step.
            live.lease = await self._publisher.add(
                b, job, (), hold=True, now=self._clock.now()
            )
        live.job = job
        return live, step

    async def track(
        self,
        spec: Spec | str,
        lifecycle: str,
        job_id: str,
        /,
        inputs: Mapping[str, Any] | None = None,
        *,
        item_filters: Mapping[str, Any] | None = None,
        state: str | None = None,
        drive: bool = True,
        deadline: float | None = None,
        max_attempts: int | None = None,
        **more_inputs: Any,
    ) -> JobRef:
        """Adopt an existing job by id and start tracking it.

        ``state`` is the state the job is believed to be in (default: initial).
        With ``drive=False`` the job is written to the store and let go at
        once, for a :class:`Worker` to drive (as :meth:`enqueue` does).
        ``deadline`` (seconds from now) and ``max_attempts`` are this job's
        own limits (see :meth:`submit`).

        Raises:
            InputError: a missing or unknown input, an undeclared state, or a
                limit that is not positive.
            CredentialError: the spec's credential variable is unset.
            StoreError: ``drive=False`` on an engine without a store.
        """
        if not drive:
            (ref,) = await self.track_many(
                spec,
                lifecycle,
                (job_id,),
                inputs,
                item_filters=item_filters,
                state=state,
                drive=False,
                deadline=deadline,
                max_attempts=max_attempts,
                **more_inputs,
            )
            return ref
        await self._ensure_open("track")
        limits = check_limits(deadline, max_attempts)
        b = self._bind.binding(spec, lifecycle)
        values = check_inputs(b, {**(inputs or {}), **more_inputs}, for_submit=False)
        check_filters(b, item_filters)
        step = core.adopt(
            b,
            key=self._new_key(),
            job_id=str(job_id),
            inputs=values,
            filters=item_filters,
            state=state,
            now=self._clock.now(),
            rng=self._rng,
            deadline_after=limits[0],
            max_attempts=limits[1],
        )
        await self._run.begin(Live(b, step.job), step)
        return step.job.ref()

    async def track_many(
        self,
        spec: Spec | str,
        lifecycle: str,
        job_ids: Iterable[str],
        /,
        inputs: Mapping[str, Any] | None = None,
        *,
        item_filters: Mapping[str, Any] | None = None,
        state: str | None = None,
        drive: bool = True,
        deadline: float | None = None,
        max_attempts: int | None = None,
        **more_inputs: Any,
    ) -> list[JobRef]:
        """Adopt many existing jobs at once, all with the same inputs and limits.

        With a store, the jobs are written in batches of a thousand, one
        transaction each (a million ids take minutes, not hours). With
        ``drive=False`` they are let go as they are written, for workers to
        drive: this engine holds none of them (a million cost rows, not
        memory here). ``deadline`` and ``max_attempts`` are each job's own
        limits (see :meth:`submit`).

        Raises:
            InputError: a missing or unknown input, an undeclared state, or a
                limit that is not positive.
            CredentialError: the spec's credential variable is unset.
            StoreError: ``drive=False`` on an engine without a store.
        """
        await self._ensure_open("track")
        if not drive and self._store is None:
            msg = (
                "track(drive=False) hands jobs to workers through a store: "
                "create the engine with store=…"
            )
            raise StoreError(msg)
        limits = check_limits(deadline, max_attempts)
        b = self._bind.binding(spec, lifecycle)
        values = check_inputs(b, {**(inputs or {}), **more_inputs}, for_submit=False)
        check_filters(b, item_filters)
        refs: list[JobRef] = []
        batch: list[core.Step] = []
        for job_id in job_ids:
            batch.append(
                core.adopt(
                    b,
                    key=self._new_key(),
                    job_id=str(job_id),
                    inputs=values,
                    filters=item_filters,
                    state=state,
                    now=self._clock.now(),
                    rng=self._rng,
                    deadline_after=limits[0],
                    max_attempts=limits[1],
                )
            )
            if len(batch) >= _BATCH:
                await self._adopt(b, batch, drive=drive)
                refs.extend(step.job.ref() for step in batch)
                batch = []
        if batch:
            await self._adopt(b, batch, drive=drive)
            refs.extend(step.job.ref() for step in batch)
        return refs

    async def _adopt(self, b: Binding, steps: list[core.Step], *, drive: bool) -> None:
        if drive:
            await self._run.begin_many(b, steps)
            return
        pairs = [(step.job, step.records) for step in steps]
        await self._publisher.add_many(b, pairs, hold=False, now=self._clock.now())
        for step in steps:
            await self._publisher.announce(b, step.job, step.records)
