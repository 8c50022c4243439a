"""What a job sends next: the request of its phase, built from the spec and its state.

A poll's URL (a link located in an earlier response, or the spec's path and
query filled from the job), a conditional poll's validators, a submission's
body, and the items, result, cancel and lookup requests, each as an
:class:`Outgoing`: the spec's request block with the URL and body to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from engine._core.binding import Binding
from engine._core.reply import Reply
from engine._core.state import JobState, Phase
from engine._core.wire import build_url, encode_body, render_body
from engine._errors import InputError, RemoteError
from statemachines import Conditional, Request

__all__ = [
    "Outgoing",
    "input_headers",
    "poll_request",
    "poll_url",
    "request_for",
    "request_url",
    "submit_request",
    "validators",
]


@attrs.frozen(kw_only=True)
class Outgoing:
    """A request to send: the spec's block (method, headers, redirects) and a URL."""

    request: Request
    url: str
    json_body: Any = None
    data: Mapping[str, Any] | None = None
    files: Mapping[str, Any] | None = None
    #: Headers of this request only (a submission's Idempotency-Key).
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def method(self) -> str:
        """The HTTP method."""
        return self.request.method


def submit_request(b: Binding, job: JobState, values: Mapping[str, Any]) -> Outgoing:
    """Return the submit request, its body built from the caller's ``values``."""
    submit = b.lifecycle.submit
    if submit is None:
        msg = f"{b.name} has no submit; use track() with an existing id"
        raise InputError(msg)
    ref = submit.client_ref
    headers = input_headers(b, values)
    if ref is not None and job.client_ref is not None:
        if ref.input is not None:
            values = {**values, ref.input: job.client_ref}
        else:
            headers += ((ref.header or "Idempotency-Key", job.client_ref),)
    url = build_url(
        b.base_url,
        submit.request,
        inputs=values,
        job_id=job.job_id,
        query_inputs=b.query_inputs,
        links=None,
    )
    if submit.request.body is not None:
        # The spec's template replaces the body built from inputs.
        known = dict(values)
        if job.client_ref is not None:
            known["client_ref"] = job.client_ref
        json_body, data = render_body(submit.request.body, known)
        files = None
    else:
        json_body, data, files = encode_body(b.lifecycle, submit.body, values)
    return Outgoing(
        request=submit.request,
        url=url,
        json_body=json_body,
        data=data,
        files=files,
        headers=headers,
    )


def poll_url(b: Binding, job: JobState) -> str:
    """Return the URL of the job's next poll.

    Drivers may keep it while ``job.poll_link`` is unchanged: it is built from
    the job's id, inputs and submit links, which do not change otherwise.

    Raises:
        RemoteError: (protocol, not retryable) the path cannot be built: the
            service's id is refused by a ``{+name}`` in it, say.
    """
    try:
        return build_url(
            b.base_url,
            b.lifecycle.poll.request,
            inputs=_known(job),
            job_id=job.job_id,
            query_inputs=b.query_inputs,
            links=job.links,
            link=job.poll_link,
        )
    except InputError as exc:
        msg = f"{b.name} job {job.job_id}: {exc}"
        raise RemoteError(msg, kind="protocol", retryable=False) from None


def poll_request(b: Binding, job: JobState, url: str) -> Outgoing:
    """Return the job's next poll, sent to ``url`` (:func:`poll_url`, which drivers may keep).

    A conditional poll sends the last answer's validators back.

    Raises:
        RemoteError: (protocol) the body cannot be built.
    """
    out = _outgoing(b, job, b.lifecycle.poll.request, url)
    if job.validators:
        return attrs.evolve(out, headers=out.headers + tuple(job.validators.items()))
    return out


def request_for(b: Binding, job: JobState) -> Outgoing:
    """Return the job's next request (for phases poll, items, result, cancel and lookup).

    Raises:
        RemoteError: (protocol) the request cannot be built.
    """
    lifecycle = b.lifecycle
    phase = job.phase
    if phase is Phase.POLL:
        return poll_request(b, job, poll_url(b, job))
    if phase is Phase.SUBMIT and job.pending is not None:
        # A chained job: its driver sends the submit (after its intent).
        try:
            return submit_request(b, job, job.pending)
        except InputError as exc:
            msg = f"{b.name}: {exc}"
            raise RemoteError(msg, kind="protocol", retryable=False) from None
    if phase is Phase.ITEMS and lifecycle.items is not None and job.page:
        cursor = {"cursor": job.page_cursor} if job.page_cursor is not None else None
        return _outgoing(b, job, lifecycle.items.request, job.page, extra=cursor)
    if phase is Phase.RESULT and lifecycle.result is not None and job.result_link:
        return _outgoing(b, job, lifecycle.result.request, job.result_link)
    if phase is Phase.CANCEL and lifecycle.cancel is not None:
        request = lifecycle.cancel.request
        return _outgoing(b, job, request, request_url(b, job, request))
    if phase is Phase.LOOKUP and lifecycle.lookup is not None:
        request = lifecycle.lookup.request
        return _outgoing(b, job, request, request_url(b, job, request))
    msg = f"{b.name} job {job.job_id}: nothing to send in phase {phase.value}"
    raise RemoteError(msg, kind="protocol", retryable=False)


def _known(job: JobState) -> Mapping[str, Any]:
    """Return the job's inputs and the values it read from responses, for templates."""
    if not job.values:
        return job.inputs
    return {**job.inputs, **job.values}


def _outgoing(
    b: Binding,
    job: JobState,
    request: Request,
    url: str,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Outgoing:
    """Return ``request`` to ``url``, with its body (when it has one) filled for ``job``."""
    headers = input_headers(b, job.inputs) if b.header_inputs else ()
    if request.body is None:
        return Outgoing(request=request, url=url, headers=headers)
    known = {**_known(job), "job_id": job.job_id, **(extra or {})}
    if job.client_ref is not None:
        known["client_ref"] = job.client_ref
    try:
        json_body, data = render_body(request.body, known)
    except InputError as exc:
        msg = f"{b.name} job {job.job_id}: {exc}"
        raise RemoteError(msg, kind="protocol", retryable=False) from None
    return Outgoing(
        request=request, url=url, json_body=json_body, data=data, headers=headers
    )


def input_headers(b: Binding, values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Return the job's header inputs (``"in": "header"``) as headers of a request.

    Sent on every request of the job, as query inputs are; one without a
    value is left out. A value that is not a valid header is refused where
    every header is checked, before anything is sent.
    """
    return tuple(
        (i.wire_name, _header_text(values[i.name]))
        for i in b.header_inputs
        if values.get(i.name) is not None
    )


def _header_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def request_url(
    b: Binding,
    job: JobState,
    request: Request,
    *,
    reply: Reply | None = None,
    extra: Mapping[str, str | list[str]] | None = None,
) -> str:
    try:
        return build_url(
            b.base_url,
            request,
            inputs=_known(job),
            job_id=job.job_id,
            query_inputs=b.query_inputs,
            links=job.links,
            reply=reply,
            extra=extra,
            client_ref=job.client_ref,
        )
    except InputError as exc:
        msg = f"{b.name} job {job.job_id}: {exc}"
        raise RemoteError(msg, kind="protocol", retryable=False) from None


def validators(
    conditional: Conditional, headers: Mapping[str, str]
) -> dict[str, str] | None:
    """Return the headers a conditional poll sends back, from an answer's ``headers``.

    ``ETag`` goes back as ``If-None-Match`` and ``Last-Modified`` as
    ``If-Modified-Since``, each when the spec's ``conditional`` asks for it;
    ``None`` when the answer has neither.
    """
    found: dict[str, str] = {}
    etag = headers.get("etag")
    if conditional.etag and etag:
        found["If-None-Match"] = etag
    modified = headers.get("last-modified")
    if conditional.last_modified and modified:
        found["If-Modified-Since"] = modified
    return found or None
