"""Azure translator simulator: the in-memory batches and the route handlers."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import Response

from engine.simulators._base import ServiceBase, Timeline, random_uuid

from ._models import (
    _CORRUPTED,
    _FORMATS,
    _JSON,
    _REFUSALS,
    _TERMINAL,
    CANCELLED,
    CANCELLING,
    CANCELLING_FOR,
    DEFAULT_DOCS,
    FAILED,
    FAILURE_RATE,
    NOT_STARTED,
    NOT_STARTED_FOR,
    RUNNING,
    RUNNING_FOR,
    SUCCEEDED,
    VALIDATION_FAILED,
    _AzureError,
    _bad_body,
    _bad_param,
    _Batch,
    _cancelled,
    _changed_at,
    _Document,
    _error_body,
    _json,
    _progress,
    _stamp,
    _status,
)
from ._parse import _Input, _parse_inputs
from ._query import _api_of, _page, _parse_listing, _Row

# -- the service ----------------------------------------------------------------


class _Service(ServiceBase):
    """The in-memory translator: batches by id, and the route handlers."""

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
        self.batches: dict[str, _Batch] = {}

    def base_url(self, request: Request) -> str:
        return (self.public_base_url or str(request.base_url)).rstrip("/")

    def batch_of(self, request: Request) -> _Batch:
        batch_id: str = request.path_params["batch_id"]
        batch = self.batches.get(batch_id.lower())
        if batch is None:
            msg = f"The batch {batch_id} was not found."
            raise _AzureError(404, "ResourceNotFound", msg, "BatchNotFound")
        return batch

    # -- submit -----------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        api = _api_of(request)
        try:
            body = json.loads(await request.body())
        except ValueError:
            msg = "The request body is not valid JSON."
            raise _bad_body(msg) from None
        batch = self.plan(_parse_inputs(body), self.clock())
        self.batches[batch.id] = batch
        location = api.url(self.base_url(request), f"/batches/{batch.id}")
        return Response(status_code=202, headers={"Operation-Location": location})

    def plan(self, inputs: Sequence[_Input], now: float) -> _Batch:
        """Draw a batch's id, documents, durations and outcomes."""
        batch_id = random_uuid(self.rng)
        waiting = self.rng.uniform(*NOT_STARTED_FOR)
        refusal = next((i.refusal for i in inputs if i.refusal is not None), None)
        created = self.wall(now)
        documents = () if refusal else self.plan_documents(inputs, now, waiting)
        timeline = Timeline.build(
            now,
            ((NOT_STARTED, waiting),),
            VALIDATION_FAILED if refusal else RUNNING,
            time_scale=self.time_scale,
        )
        return _Batch(
            id=batch_id,
            created_at=created,
            timeline=timeline,
            documents=documents,
            refusal=refusal,
        )

    def plan_documents(
        self, inputs: Sequence[_Input], now: float, waiting: float
    ) -> tuple[_Document, ...]:
        """Draw every (source document x target language) of a batch."""
        documents: list[_Document] = []
        for item in inputs:
            count = (
                self.rng.randint(*DEFAULT_DOCS) if item.count is None else item.count
            )
            for n, name in enumerate(item.names(count)):
                if item.failing is None:
                    fails = item.all_fail or self.rng.random() < FAILURE_RATE
                else:
                    fails = item.all_fail or n < item.failing
                for target_url, language in item.targets:
                    run = self.rng.uniform(*RUNNING_FOR)
                    timeline = Timeline.build(
                        now,
                        ((NOT_STARTED, waiting), (RUNNING, run)),
                        FAILED if fails else SUCCEEDED,
                        time_scale=self.time_scale,
                    )
                    # 1 µs apart: distinct creation times give listings one order.
                    created = self.wall(now) + dt.timedelta(microseconds=len(documents))
                    documents.append(
                        _Document(
                            id=random_uuid(self.rng),
                            source_path=item.source_path(name),
                            target_path=item.target_path(target_url, name),
                            language=language,
                            created_at=created,
                            characters=self.rng.randint(200, 5000),
                            run_seconds=run * self.time_scale,
                            timeline=timeline,
                        )
                    )
        return tuple(documents)

    # -- bodies -----------------------------------------------------------------

    def document_body(self, document: _Document, now: float) -> dict[str, Any]:
        state = document.timeline.state_at(now)
        changed = max(
            document.created_at, self.wall(_changed_at(document.timeline, now))
        )
        body: dict[str, Any] = {"id": document.id}
        if state == SUCCEEDED:  # the translation exists only once written
            body["path"] = document.target_path
        body.update(
            {
                "sourcePath": document.source_path,
                "createdDateTimeUtc": _stamp(document.created_at),
                "lastActionDateTimeUtc": _stamp(changed),
                "status": state,
                "to": document.language,
                "progress": _progress(document, state, now),
                "characterCharged": document.characters if state == SUCCEEDED else 0,
            }
        )
        if state == FAILED:
            body["error"] = copy.deepcopy(_CORRUPTED)
        return body

    def batch_body(self, batch: _Batch, now: float) -> dict[str, Any]:
        states = [d.timeline.state_at(now) for d in batch.documents]
        status = _status(batch, states, now)
        changes = [_changed_at(d.timeline, now) for d in batch.documents]
        changed = self.wall(max([_changed_at(batch.timeline, now), *changes]))
        charged = sum(
            d.characters
            for d, state in zip(batch.documents, states, strict=True)
            if state == SUCCEEDED
        )
        body: dict[str, Any] = {
            "id": batch.id,
            "createdDateTimeUtc": _stamp(batch.created_at),
            "lastActionDateTimeUtc": _stamp(max(batch.created_at, changed)),
            "status": status,
            "summary": {
                "total": len(states),
                "failed": states.count(FAILED),
                "success": states.count(SUCCEEDED),
                "inProgress": states.count(RUNNING) + states.count(CANCELLING),
                "notYetStarted": states.count(NOT_STARTED),
                "cancelled": states.count(CANCELLED),
                "totalCharacterCharged": charged,
            },
        }
        if status == VALIDATION_FAILED and batch.refusal is not None:
            message = _REFUSALS[batch.refusal]
            body["error"] = _error_body("InvalidRequest", message, batch.refusal)[
                "error"
            ]
        elif status == FAILED:
            message = "Every document of the batch failed."
            body["error"] = _error_body("InvalidRequest", message, "CorruptedDocument")[
                "error"
            ]
        return body

    def polled(self, payload: dict[str, Any], batch: _Batch, now: float) -> Response:
        """Render a status GET: ``ETag`` always, ``Retry-After`` until the end."""
        states = [d.timeline.state_at(now) for d in batch.documents]
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"ETag": f'"{hashlib.sha256(body).hexdigest()[:32]}"'}
        if _status(batch, states, now) not in _TERMINAL:
            headers["Retry-After"] = str(round(self.time_scale))
        return Response(body, media_type=_JSON, headers=headers)

    # -- reads and cancel -------------------------------------------------------

    async def get_batch(self, request: Request) -> Response:
        _api_of(request)
        batch, now = self.batch_of(request), self.clock()
        return self.polled(self.batch_body(batch, now), batch, now)

    async def cancel(self, request: Request) -> Response:
        api = _api_of(request)
        batch, now = self.batch_of(request), self.clock()
        states = [d.timeline.state_at(now) for d in batch.documents]
        status = _status(batch, states, now)
        if status in _TERMINAL or status == CANCELLING:
            msg = f"The batch is {status} and can no longer be cancelled."
            raise _AzureError(
                api.refusal_status, "InvalidRequest", msg, "BatchNotCancellable"
            )
        done = now + self.rng.uniform(*CANCELLING_FOR) * self.time_scale
        documents = tuple(
            d
            if state in _TERMINAL  # finished documents are kept (and billed)
            else attrs.evolve(d, timeline=_cancelled(d.timeline, now, done))
            for d, state in zip(batch.documents, states, strict=True)
        )
        batch = attrs.evolve(
            batch, timeline=_cancelled(batch.timeline, now, done), documents=documents
        )
        self.batches[batch.id] = batch
        return _json(self.batch_body(batch, now))

    async def list_documents(self, request: Request) -> Response:
        api = _api_of(request)
        batch, now = self.batch_of(request), self.clock()
        listing = _parse_listing(request.query_params, api)

        def row(document: _Document) -> _Row:
            return _Row(
                document.id,
                document.created_at,
                document.timeline.state_at(now),
                lambda: self.document_body(document, now),
            )

        path = f"/batches/{batch.id}/documents"
        rows = [row(d) for d in batch.documents]
        page = _page(rows, listing, api, self.base_url(request), path)
        return self.polled(page, batch, now)

    async def get_document(self, request: Request) -> Response:
        _api_of(request)
        batch, now = self.batch_of(request), self.clock()
        wanted = str(request.path_params["document_id"]).lower()
        document = next((d for d in batch.documents if d.id == wanted), None)
        if document is None:
            msg = f"The document {wanted} was not found in batch {batch.id}."
            raise _AzureError(404, "ResourceNotFound", msg, "DocumentNotFound")
        return self.polled(self.document_body(document, now), batch, now)

    async def list_batches(self, request: Request) -> Response:
        api = _api_of(request)
        listing = _parse_listing(request.query_params, api)
        now = self.clock()

        def row(batch: _Batch) -> _Row:
            body = self.batch_body(batch, now)
            return _Row(batch.id, batch.created_at, body["status"], lambda: body)

        rows = [row(b) for b in self.batches.values()]
        return _json(_page(rows, listing, api, self.base_url(request), "/batches"))

    async def formats(self, request: Request) -> Response:
        _api_of(request)
        kind = request.query_params.get("type")
        if kind not in _FORMATS:
            msg = "type must be document or glossary."
            raise _bad_param(msg, "type")
        return _json({"value": _FORMATS[kind]})
