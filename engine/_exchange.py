"""Send one request of a job: redirects followed hop by hop, credentials only to the spec's host.

Shared by every driver. The decisions (is this URL the spec's own? may a
credential go there? where does a redirect lead, with which method?) are
plain checks on the binding; the sending is ``engine._remote``'s.
"""

from __future__ import annotations

import asyncio
from typing import Final
from urllib.parse import urljoin

from engine._core.binding import Binding
from engine._core.reply import Reply, where
from engine._core.state import JobState, Phase
from engine._core.step import Outgoing
from engine._errors import RemoteError
from engine._remote import Remote

__all__ = ["MAX_REDIRECTS", "exchange", "send"]

MAX_REDIRECTS = 5
#: A request of a job whose deadline has passed gets this long (at most, times the
#: service's time scale) to finish: the last look at the deadline needs an answer.
GRACE: Final = 5.0


async def send(
    remote: Remote, b: Binding, out: Outgoing, job: JobState, *, now: float
) -> Reply | RemoteError:
    """Send one of ``job``'s requests; return the reply, or the error that replaced it.

    The request is bounded by the spec's timeout and, while the job has one,
    by its deadline: a stalled server gets until then, plus a grace for the
    last look (scaled like the spec's durations, but never under a second).
    A submit is not bounded by the deadline: its job has not started yet.
    """
    timeout = b.lifecycle.errors.timeout
    if job.deadline is not None and job.phase is not Phase.SUBMIT:
        left = max(0.0, job.deadline - now)
        grace = min(timeout, max(GRACE * b.scale, 1.0))
        timeout = min(timeout, left + grace)
    try:
        return await exchange(remote, b, out, timeout=max(timeout, 0.001), now=now)
    except RemoteError as exc:
        return exc


async def exchange(
    remote: Remote, b: Binding, out: Outgoing, *, timeout: float, now: float
) -> Reply:
    """Send ``out`` (following redirects when its request says so) and return the reply.

    ``timeout`` bounds the whole exchange (every hop's connect, headers and
    body), whatever the transport does with its own per-read timeouts: a
    server that drips a byte a second cannot hold a job past it. Each hop
    gets what is left of it (``Remote.send`` bounds a hop as a whole), a
    token fetched for it included. A hop to the spec's own host carries the
    credential: the static header from ``headers_for``, or the binding's
    per-request credential (a bearer token, a signature), which is given
    ``now`` (the engine's clock) to judge a token's expiry.

    Raises:
        RemoteError: transport faults and the timeout (retryable), a link to a
            foreign host the spec refuses, too many redirects (not retryable).
    """
    loop = asyncio.get_running_loop()
    ends = loop.time() + timeout
    request = out.request
    method, url = request.method, out.url
    json_body, data, files = out.json_body, out.data, out.files
    extra = out.headers
    for _hop in range(MAX_REDIRECTS + 1):
        own = b.is_own(url)
        if not own and b.lifecycle.policy.foreign_links == "refuse":
            host = b.origin[1]
            msg = (
                f"refused a link to a foreign host ({where(url)}); the spec's is {host}"
            )
            raise RemoteError(msg, kind="protocol", retryable=False)
        left = ends - loop.time()
        if left <= 0:
            msg = f"no complete answer from {where(out.url)} within {timeout:.3g} s"
            raise RemoteError(msg, kind="transport")
        # else: anonymous; credentials only ever go to the spec's own host.
        headers = (
            b.headers_for(request, own=own) + extra
            if extra
            else b.headers_for(request, own=own)
        )
        if own and b.credential is not None:
            reply = await b.credential.send(
                remote,
                method,
                url,
                headers=headers,
                json_body=json_body,
                data=data,
                files=files,
                timeout=left,
                now=now,
            )
        else:
            reply = await remote.send(
                method,
                url,
                headers=headers,
                json_body=json_body,
                data=data,
                files=files,
                timeout=left,
            )
        location = reply.headers.get("location")
        # 304 Not Modified is in the 3xx range but is no redirect: an answer.
        redirect = 300 <= reply.status < 400 and reply.status != 304
        if not (request.follow_redirects and redirect and location):
            return reply
        url = urljoin(reply.url, location)
        if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
            method, json_body, data, files, extra = "GET", None, None, None, ()
    msg = f"too many redirects from {where(url)}"
    raise RemoteError(msg, kind="protocol", retryable=False)
