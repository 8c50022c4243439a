"""What a reply means before its body is read: observe it, retry it, or end the job.

The status (and the spec's error rules over headers, body and the service's
own error code) decide the verdict; ``status_error`` builds the classified
error with the service's code and message. Everything a service sends back
that ends up in a message is redacted here, before it reaches an error, an
event or a log.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from engine._core.observe import holds
from engine._core.reply import Reply, where
from engine._errors import RemoteError
from statemachines import MISSING, Errors, ErrorSource, resolve_pointer

__all__ = [
    "Verdict",
    "classify",
    "classify_reply",
    "error_code",
    "error_fields",
    "error_message",
    "status_error",
]

Verdict = Literal["observe", "transient", "fatal"]

#: Service-provided text is cut to this many characters in messages.
_TEXT_CAP = 300
#: Service-provided text is redacted on its first cap + this many characters.
_REDACT_MARGIN = 1024
#: A pattern on an error body's text searches this many bytes of it at most.
_TEXT_SEARCHED = 64 * 1024


def classify(status: int, errors: Errors, *, accepted: bool) -> Verdict:
    """Classify an HTTP status by the spec's error rules.

    Order: ``retry_status``, then ``fatal_status``, then statuses the request
    accepts (observed); any other 5xx is transient and any other status fatal.
    """
    if status in errors.retry_status:
        return "transient"
    if status in errors.fatal_status:
        return "fatal"
    if accepted:
        return "observe"
    return "transient" if status >= 500 else "fatal"


def classify_reply(reply: Reply, errors: Errors, *, accepted: bool) -> Verdict:
    """Classify a response by the spec's error rules, then by its status.

    The first of ``errors.rules`` whose condition holds decides (they may
    test headers, the body and the service's error code); with none,
    :func:`classify` decides by the status alone, as it always has.
    """
    if errors.rules:
        body = _lenient_json(reply)
        code = error_code(reply, errors)
        for rule in errors.rules:
            if holds(rule.when, reply.status, reply.headers, body, code=code):
                return rule.verdict
    return classify(reply.status, errors, accepted=accepted)


def error_code(reply: Reply, errors: Errors) -> str | None:
    """Return the service's error code in ``reply``, or ``None``.

    Read at ``code_pointer``, then by ``code_from`` (a pointer, a header, or
    a pattern on the body's text), the first value found winning. Not
    redacted: for conditions; :func:`status_error` redacts what it shows.
    """
    if not errors.reads_code:
        return None
    return _error_text(reply, errors.code_pointers, errors.code_from)


def error_message(reply: Reply, errors: Errors) -> str | None:
    """Return the service's error message in ``reply``, or ``None`` (not redacted)."""
    if not (errors.message_pointers or errors.message_from):
        return None
    return _error_text(reply, errors.message_pointers, errors.message_from)


def _lenient_json(reply: Reply) -> Any:
    """Return the body as JSON, or ``None`` when it is not (an HTML or XML error page)."""
    try:
        return reply.json()
    except RemoteError:
        return None


def _error_text(
    reply: Reply, pointers: tuple[str, ...], sources: tuple[ErrorSource, ...]
) -> str | None:
    body = _lenient_json(reply) if pointers or sources else None
    found = _first(body, pointers) if body is not None else None
    for source in sources:
        if found is not None:
            break
        found = _from_source(source, reply, body)
    return found


def _from_source(source: ErrorSource, reply: Reply, body: Any) -> str | None:
    if source.header is not None:
        value: str | None = reply.headers.get(source.header.lower())
    elif source.pointer is not None:
        value = _first(body, (source.pointer,)) if body is not None else None
    else:
        # The body's text, searched by the pattern alone (an XML <Code>).
        value = reply.body[:_TEXT_SEARCHED].decode("utf-8", errors="replace")
    if value is None or source.pattern is None:
        return value or None
    match = re.search(source.pattern, value)
    if match is None:
        return None
    return (match.group(1) if match.groups() else match.group(0)) or None


def status_error(
    reply: Reply, errors: Errors, redact: Any, *, retryable: bool
) -> RemoteError:
    """Return the error for a status the spec does not accept.

    ``retryable`` comes from the classification, never from the message.
    The service's own code and message (read where the spec says) are
    redacted by ``redact`` (a ``str -> str``) and cut to a readable length:
    a service may echo the key it received, and a hostile one may send a
    megabyte.
    """
    code = error_code(reply, errors)
    message = error_message(reply, errors)
    if code is not None:
        code = _shown(code, 100, redact)
    if message is not None:
        message = _shown(message, _TEXT_CAP, redact)
    detail = f" {code}" if code else ""
    text = f": {message}" if message else ""
    how = "retryable" if retryable else "fatal"
    msg = f"HTTP {reply.status}{detail} from {where(reply.url)} ({how}){text}"
    return RemoteError(
        msg,
        kind="status",
        status=reply.status,
        code=code,
        remote_message=message,
        retryable=retryable,
    )


def _first(body: Any, pointers: tuple[str, ...]) -> str | None:
    for pointer in pointers:
        found = resolve_pointer(body, pointer)
        if found is not MISSING and found is not None:
            return str(found) if not isinstance(found, str) else found
    return None


def _shown(text: str, cap: int, redact: Any) -> str:
    # Redacted before the cut, or a secret straddling it would be left half
    # visible; on a window, not the whole text, so that a hostile megabyte of
    # "sig=…&" pairs is not scanned in full. Only a secret longer than the
    # margin could still straddle the window's end.
    return _cut(redact(text[: cap + _REDACT_MARGIN]), cap)


def _cut(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[: cap - 3] + "..."


def error_fields(error: RemoteError) -> dict[str, Any]:
    """Return a classified error as the JSON a job snapshot keeps."""
    return {
        "kind": error.kind,
        "status": error.status,
        "code": error.code,
        "message": str(error),
        "remote_message": error.remote_message,
        "retryable": error.retryable,
    }
