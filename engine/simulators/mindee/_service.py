"""Mindee simulator: the in-memory jobs, their bodies and the route handlers."""

from __future__ import annotations

import copy
import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.simulators._base import ServiceBase, Timeline, random_uuid

from ._models import (
    _CONFIDENCES,
    _FAILURES,
    _MAX_FIELD_BYTES,
    _TIMESTAMP,
    FAILED,
    FAILED_AFTER,
    FAILURE_RATE,
    PROCESSED,
    PROCESSED_AFTER,
    PROCESSING,
    PRODUCTS,
    _bad_path_id,
    _error,
    _is_uuid,
    _Job,
    _not_found,
    _Submission,
)
from ._parse import _FormErrors, _parse_bool, _parse_form


def _timestamp(moment: dt.datetime) -> str:
    return moment.strftime(_TIMESTAMP)


def _sample_fields(job: _Job) -> dict[str, Any]:
    """Return illustrative invoice fields, the same every time for one job."""
    # Seeded by the inference id (itself seeded), so a result reads the same on
    # every fetch without being stored.
    rng = random.Random(job.inference_id)  # noqa: S311 - simulation, not security
    options = job.submission.options

    def simple(value: object) -> dict[str, Any]:
        confidence = rng.choice(_CONFIDENCES) if options.confidence else None
        locations = []
        if options.polygon:
            x, y = round(rng.uniform(0.05, 0.7), 3), round(rng.uniform(0.05, 0.9), 3)
            right, bottom = round(x + 0.2, 3), round(y + 0.03, 3)
            box = [[x, y], [right, y], [right, bottom], [x, bottom]]
            locations.append({"polygon": box, "page": 0})
        return {"value": value, "confidence": confidence, "locations": locations}

    number = f"F-{rng.randint(2020, 2030)}-{rng.randint(1, 9999):04d}"
    amounts = [round(rng.uniform(5, 500), 2) for _ in range(rng.randint(1, 3))]
    return {
        "invoice_number": simple(number),
        "total_amount": simple(round(sum(amounts), 2)),
        "line_items": {
            "items": [{"fields": {"amount": simple(amount)}} for amount in amounts]
        },
        "supplier": {"fields": {"name": simple("ACME SARL")}},
    }


def _inference_body(job: _Job) -> dict[str, Any]:
    submission = job.submission
    options = submission.options
    raw_text = None
    if options.raw_text:
        name = submission.filename or "document"
        pages = [{"content": f"Page {n + 1} of {name}"} for n in range(job.page_count)]
        raw_text = {"pages": pages}
    return {
        "inference": {
            "id": job.inference_id,
            "job": {"id": job.id},
            "model": {"id": submission.model_id},
            "file": {
                "name": submission.filename,
                "alias": submission.alias,
                "page_count": job.page_count,
                "mime_type": submission.mime_type,
            },
            "active_options": {
                "raw_text": options.raw_text,
                "polygon": options.polygon,
                "confidence": options.confidence,
                "rag": options.rag,
                "text_context": bool(options.text_context),
                "data_schema": {"replace": options.data_schema is not None},
            },
            "result": {
                "fields": _sample_fields(job),
                "raw_text": raw_text,
                "rag": {"retrieved_document_id": None} if options.rag else None,
            },
        }
    }


class _Service(ServiceBase):
    """The in-memory Mindee: jobs by id and by inference id, and the handlers."""

    def __init__(
        self,
        *,
        seed: int | None,
        time_scale: float,
        clock: Callable[[], float],
        public_base_url: str | None,
    ) -> None:
        super().__init__(seed=seed, time_scale=time_scale, clock=clock)
        self.public_base_url = public_base_url
        self.jobs: dict[str, _Job] = {}
        self.inferences: dict[str, _Job] = {}

    def base_url(self, request: Request) -> str:
        return (self.public_base_url or str(request.base_url)).rstrip("/")

    # -- enqueue ---------------------------------------------------------------

    async def enqueue_product(self, request: Request) -> Response:
        product: str = request.path_params["product"]
        if product not in PRODUCTS:
            return _not_found(f"Unknown product {product!r}; use one of {PRODUCTS}.")
        return await self._enqueue(request, product, legacy=False)

    async def enqueue_legacy(self, request: Request) -> Response:
        return await self._enqueue(request, "extraction", legacy=True)

    async def _enqueue(
        self, request: Request, product: str, *, legacy: bool
    ) -> Response:
        errors = _FormErrors()
        try:
            async with request.form(max_part_size=_MAX_FIELD_BYTES) as form:
                submission = _parse_form(form, errors)
        except HTTPException as exc:  # a malformed multipart body
            errors.add("file", str(exc.detail))
            submission = None
        if submission is None:
            return _error(
                422,
                "Invalid fields in form",
                "422-001",
                "One or more fields failed validation.",
                errors=errors.items,
            )
        job = self._plan(submission, product, legacy=legacy)
        self.jobs[job.id] = job
        self.inferences[job.inference_id] = job
        return JSONResponse(self._job_body(job, request), status_code=202)

    def _plan(self, submission: _Submission, product: str, *, legacy: bool) -> _Job:
        """Draw a job's ids, outcome and duration from the seeded RNG."""
        job_id = random_uuid(self.rng)
        inference_id = job_id if legacy else random_uuid(self.rng)
        # Drawn even when a trigger decides, so that adding a trigger to one
        # request does not reshuffle the outcomes of the requests after it.
        draw = self.rng.random()
        chosen = submission.triggered()
        if chosen is None:
            chosen = "500-012" if draw < FAILURE_RATE else PROCESSED
        final, failure = (PROCESSED, None) if chosen == PROCESSED else (FAILED, chosen)
        low, high = FAILED_AFTER if final == FAILED else PROCESSED_AFTER
        duration = self.rng.uniform(low, high)
        pdf = submission.mime_type == "application/pdf"
        page_count = self.rng.randint(1, 3) if pdf else 1
        now = self.clock()
        timeline = Timeline.build(
            now, ((PROCESSING, duration),), final, time_scale=self.time_scale
        )
        return _Job(
            id=job_id,
            inference_id=inference_id,
            product=product,
            legacy=legacy,
            submission=submission,
            page_count=page_count,
            created_at=self.wall(now),
            timeline=timeline,
            failure=failure,
        )

    # -- jobs ------------------------------------------------------------------

    def result_url(self, job: _Job, request: Request) -> str:
        if job.legacy:
            return f"{self.base_url(request)}/v2/inferences/{job.id}"
        path = f"/v2/products/{job.product}/results/{job.inference_id}"
        return self.base_url(request) + path

    def _job_body(self, job: _Job, request: Request) -> dict[str, Any]:
        state = job.timeline.state_at(self.clock())
        done = state != PROCESSING
        completed = self.wall(job.timeline.ends_at)
        # Webhooks are not called; a delivery entry appears once the job ends.
        delivered = completed + dt.timedelta(seconds=0.1 * self.time_scale)
        webhooks = [
            {
                "id": webhook_id,
                "created_at": _timestamp(delivered),
                "status": PROCESSED,
                "error": None,
            }
            for webhook_id in job.submission.webhook_ids
            if done
        ]
        error = None
        if state == FAILED and job.failure is not None:
            error = copy.deepcopy(_FAILURES[job.failure])
        return {
            "job": {
                "id": job.id,
                "model_id": job.submission.model_id,
                "filename": job.submission.filename,
                "alias": job.submission.alias,
                "created_at": _timestamp(job.created_at),
                "completed_at": _timestamp(completed) if done else None,
                "status": state,
                "polling_url": f"{self.base_url(request)}/v2/jobs/{job.id}",
                "result_url": (
                    self.result_url(job, request) if state == PROCESSED else None
                ),
                "webhooks": webhooks,
                "error": error,
            }
        }

    async def get_job(self, request: Request) -> Response:
        job_id: str = request.path_params["job_id"]
        if not _is_uuid(job_id):
            return _bad_path_id("job_id")
        redirect = _parse_bool(request.query_params.get("redirect", "true"))
        if redirect is None:
            item = {"pointer": "#/redirect", "detail": "redirect must be a boolean"}
            return _error(
                422,
                "Invalid query",
                "422-001",
                "redirect is not a boolean.",
                errors=[item],
            )
        job = self.jobs.get(job_id.lower())
        if job is None:
            return _not_found(f"No job with id {job_id}.")
        body = self._job_body(job, request)
        result_url = body["job"]["result_url"]
        if redirect and result_url is not None:
            # Mindee sends the whole job along with the redirect; clients are
            # told to prefer job.result_url over following Location.
            return JSONResponse(body, status_code=302, headers={"Location": result_url})
        return JSONResponse(body)

    # -- results ---------------------------------------------------------------

    async def get_result(self, request: Request) -> Response:
        product: str = request.path_params["product"]
        if product not in PRODUCTS:
            return _not_found(f"Unknown product {product!r}; use one of {PRODUCTS}.")
        return self._result(request.path_params["inference_id"], product)

    async def get_legacy_result(self, request: Request) -> Response:
        return self._result(request.path_params["inference_id"], "extraction")

    def _result(self, inference_id: str, product: str) -> Response:
        if not _is_uuid(inference_id):
            return _bad_path_id("inference_id")
        job = self.inferences.get(inference_id.lower())
        if job is None or job.product != product:
            return _not_found(f"No {product} inference with id {inference_id}.")
        state = job.timeline.state_at(self.clock())
        if state != PROCESSED:
            # Our choice: Mindee does not say what an early fetch answers.
            detail = f"Inference {inference_id} is not available: the job is {state}."
            return _not_found(detail)
        return JSONResponse(_inference_body(job))
