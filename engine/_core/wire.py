"""What goes on the wire and what comes back, decided without touching it.

URLs (links located in earlier responses, or the spec's path template and
query), request bodies, item pages, and the classification of a status into
observe / transient / fatal with the service's own error code and message.
Everything a service sends back that ends up in a message is redacted here,
before it reaches an error, an event or a log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import parse_qsl, quote, unquote_plus, urlencode, urljoin, urlsplit

from engine._core.observe import holds
from engine._core.reply import Reply, where
from engine._errors import InputError, RemoteError
from statemachines import (
    MISSING,
    Body,
    Errors,
    ErrorSource,
    Lifecycle,
    Locator,
    Paging,
    Request,
    Template,
    TemplateError,
    Value,
    body_strings,
    resolve_pointer,
    whole_variable,
)

__all__ = [
    "Verdict",
    "build_url",
    "classify",
    "classify_reply",
    "encode_body",
    "encode_path_value",
    "error_code",
    "error_fields",
    "error_message",
    "expand",
    "locate",
    "merge_query",
    "next_cursor",
    "next_page",
    "query_params",
    "read_values",
    "render_body",
    "status_error",
    "submit_links",
    "template_fields",
]

Verdict = Literal["observe", "transient", "fatal"]

#: Service-provided text is cut to this many characters in messages.
_TEXT_CAP = 300
#: Service-provided text is redacted on its first cap + this many characters.
_REDACT_MARGIN = 1024
#: A pattern on an error body's text searches this many bytes of it at most.
_TEXT_SEARCHED = 64 * 1024
_NO_HEADERS: Mapping[str, str] = {}


def template_fields(request: Request) -> set[str]:
    """Return the names every template of ``request`` (path, query and body) uses."""
    texts = [request.path or "", *(value for _, value in request.query)]
    if request.body is not None:
        texts.extend(text for _, text in body_strings(request.body.template))
    return {name for text in texts for name in Template.parse(text).variables}


def encode_path_value(value: object) -> str:
    """Percent-encode one path parameter so it cannot change the path.

    ``/`` is encoded, and so are dot segments: a job id ``..`` or ``../admin``
    must stay one literal segment (the rule of ``{name}`` in a template).
    """
    text = quote(str(value), safe="")
    if text in {".", ".."}:
        return text.replace(".", "%2E")
    return text


def expand(
    template: str, values: Mapping[str, Any], *, encode: bool = True, what: str = ""
) -> str:
    """Fill ``template`` (RFC 6570 ``{name}`` / ``{+name}``) from ``values``.

    Path values are encoded by the template's rules (``encode=True``); query
    values are substituted raw, the query being encoded as a whole. ``what``
    names the template's place in messages (``path /x``).

    Raises:
        InputError: a field has no value, or a value the template refuses
            (a reserved expansion that would leave its path).
    """
    parsed = Template.parse(template)
    try:
        return parsed.expand(
            {name: _text(values[name]) for name in parsed.variables if name in values},
            encode=encode,
        )
    except TemplateError as exc:
        if exc.variable is not None and exc.variable not in values:
            msg = f"input {exc.variable!r} is needed by {what or template}"
        else:
            msg = str(exc)
        raise InputError(msg) from None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def merge_query(url: str, params: Mapping[str, str | list[str]]) -> str:
    """Return ``url`` with ``params`` set in its query.

    A parameter the URL already has is replaced; the URL's other pairs are
    kept byte for byte (next links and operation URLs carry opaque tokens
    that must not be re-encoded). A list value is sent as repeated pairs.
    """
    if not params:
        return url
    base, _, fragment = url.partition("#")
    path, sep, query = base.partition("?")
    names = set(params)
    kept = [
        pair
        for pair in (query.split("&") if sep and query else [])
        if pair and _unquoted_name(pair) not in names
    ]
    added = urlencode(
        [
            (name, item)
            for name, value in params.items()
            for item in (value if isinstance(value, list) else [value])
        ]
    )
    merged = "&".join([*kept, added])
    return f"{path}?{merged}" + (f"#{fragment}" if fragment else "")


def _unquoted_name(pair: str) -> str:
    return unquote_plus(pair.split("=", 1)[0])


def query_params(
    request: Request, inputs: Mapping[str, Any], query_inputs: Iterable[Any]
) -> dict[str, str | list[str]]:
    """Return a request's query: its templates filled from ``inputs``, plus query inputs.

    Raises:
        InputError: naming a template field without a value.
    """
    params: dict[str, str | list[str]] = {}
    raw = {k: v for k, v in inputs.items() if isinstance(v, (str, int, float))}
    for name, template in request.query:
        params[name] = expand(
            template, raw, encode=False, what=f"the query parameter {name} ({template})"
        )
    for spec_input in query_inputs:
        if spec_input.name in inputs:
            params[spec_input.wire_name] = str(inputs[spec_input.name])
    return params


def build_url(
    base_url: str,
    request: Request,
    *,
    inputs: Mapping[str, Any],
    job_id: str,
    query_inputs: Iterable[Any],
    links: Mapping[str, str] | None,
    reply: Reply | None = None,
    link: str | None = None,
    extra: Mapping[str, str | list[str]] | None = None,
    client_ref: str | None = None,
) -> str:
    """Return the absolute URL of ``request`` for a job.

    ``link`` (a URL the caller already located) wins; then a link located by
    the request's ``url`` locators (in the submit response, by ``links``, or
    in ``reply``); else the path template is filled with the job's inputs and
    id. The spec's query and ``extra`` are merged in.

    Raises:
        InputError: a template field has no value.
        RemoteError: (protocol) no link and no path to fall back on.
    """
    if link is None and request.url:
        link = locate(request.url, reply, links)
    url = _join(base_url, link) if link else None
    if url is None:
        if request.path is None:
            msg = "no link for this request and no path to fall back on"
            raise RemoteError(msg, kind="protocol", retryable=False)
        values = {**inputs, "job_id": job_id}
        if client_ref is not None:
            values["client_ref"] = client_ref
        url = base_url + expand(request.path, values, what=f"path {request.path}")
    params = query_params(request, inputs, query_inputs)
    if extra:
        params.update(extra)
    return merge_query(url, params)


def _join(base_url: str, link: str) -> str:
    """Return ``link`` (located in a response) resolved against ``base_url``.

    Raises:
        RemoteError: (protocol, not retryable) the link is not a URL.
    """
    try:
        return urljoin(base_url + "/", link)
    except ValueError as exc:  # an unclosed IPv6 bracket: the server's doing
        # The link itself stays out of the message: it may carry a token.
        msg = f"a link located in a response from {where(base_url)} is not a URL"
        raise RemoteError(msg, kind="protocol", retryable=False) from exc


def locate(
    locators: tuple[Locator, ...],
    reply: Reply | None,
    links: Mapping[str, str] | None,
) -> str | None:
    """Return the first value the locators find, or ``None``.

    A locator on the ``submit`` response reads the value kept in ``links``;
    one on the ``last`` response reads ``reply`` (skipped when there is none).
    """
    for locator in locators:
        if locator.response == "submit":
            value: Any = (links or {}).get(locator.location)
        elif reply is None:
            continue
        elif locator.header is not None:
            value = reply.headers.get(locator.header.lower())
        else:
            try:
                body = reply.json()
            except RemoteError:
                # An answer read as "no body" (an accepted cancel's text, say)
                # holds no value; whether it may be unreadable is not for here.
                continue
            value = resolve_pointer(body, locator.pointer or "")
        if value is MISSING or value is None or value == "":
            continue
        text = str(value)
        if locator.pattern is not None:
            match = re.search(locator.pattern, text)
            if match is None:
                continue
            groups = match.groupdict()
            text = groups.get("id") or (
                match.group(1) if match.groups() else match.group(0)
            )
        return text
    return None


def submit_links(lifecycle: Lifecycle, reply: Reply) -> dict[str, str] | None:
    """Return the values later requests locate in the submit response, by locator."""
    links: dict[str, str] = {}
    requests = [lifecycle.poll.request]
    for block in (lifecycle.result, lifecycle.cancel, lifecycle.items):
        if block is not None:
            requests.append(block.request)
    for request in requests:
        for locator in request.url:
            if locator.response != "submit":
                continue
            as_last = Locator(
                pointer=locator.pointer,
                header=locator.header,
                pattern=locator.pattern,
                response="last",
            )
            value = locate((as_last,), reply, None)
            if value:
                links[locator.location] = value
    return links or None


def encode_body(
    lifecycle: Lifecycle, kind: str, values: Mapping[str, Any]
) -> tuple[Any, dict[str, Any] | None, dict[str, Any] | None]:
    """Return ``(json, data, files)`` for the submit request."""
    if kind == "none":
        return None, None, None
    if kind == "json":
        body = {
            i.wire_name: values[i.name]
            for i in lifecycle.inputs
            if i.where == "body" and i.name in values
        }
        return body, None, None
    data: dict[str, Any] = {}
    files: dict[str, Any] = {}
    for spec_input in lifecycle.inputs:
        if spec_input.name not in values:
            continue
        value = values[spec_input.name]
        if spec_input.where in ("form", "body"):
            data[spec_input.wire_name] = _form_value(value)
        elif spec_input.where == "file":
            files[spec_input.wire_name] = _file_part(value)
    if kind == "form":
        return None, data, None
    return None, data, files or None


def render_body(
    body: Body, values: Mapping[str, Any]
) -> tuple[Any, dict[str, Any] | None]:
    """Return ``(json, data)``: the request body ``body`` filled from ``values``.

    A string that is one expression alone (``"{count}"``) becomes the value as
    it is, keeping its JSON type; any other string is filled as text. A
    member, element or form field whose template names a value ``values``
    lacks is left out (an optional input, a first page's absent cursor).
    A form's values are sent as text (booleans as ``true``/``false``), a list
    as the field repeated.

    Raises:
        InputError: a reserved expansion refuses a value.
    """
    if body.kind == "json":
        rendered = _render(body.template, values)
        return (None if rendered is MISSING else rendered), None
    data: dict[str, Any] = {}
    for name, template in body.template.items():
        value = _render(template, values)
        if value is not MISSING:
            data[name] = _form_value(value)
    return None, data


def _render(node: Any, values: Mapping[str, Any]) -> Any:
    """Fill one node of a body template; ``MISSING`` when a value is absent."""
    # Recursion is bounded: spec documents are checked against a maximum depth.
    if isinstance(node, str):
        whole = whole_variable(node)
        if whole is not None:
            return values.get(whole.name, MISSING)
        parsed = Template.parse(node)
        if any(name not in values for name in parsed.variables):
            return MISSING
        try:
            return parsed.expand(
                {name: _text(values[name]) for name in parsed.variables},
                encode=False,
            )
        except TemplateError as exc:
            raise InputError(str(exc)) from None
    if isinstance(node, Mapping):
        members = ((key, _render(item, values)) for key, item in node.items())
        return {key: item for key, item in members if item is not MISSING}
    if isinstance(node, list):
        elements = (_render(item, values) for item in node)
        return [item for item in elements if item is not MISSING]
    return node


def read_values(
    declared: tuple[Value, ...], reply: Reply, kept: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Return ``kept`` updated with the ``declared`` values ``reply`` holds.

    A value read from a JSON body keeps its JSON type (a number stays a
    number); one cut by a pattern, or read from a header, is text. A value
    the reply lacks keeps what an earlier reply gave.
    """
    found = dict(kept or {})
    for value in declared:
        if value.header is not None:
            read: Any = reply.headers.get(value.header.lower(), MISSING)
        else:
            try:
                body = reply.json()
            except RemoteError:
                continue
            read = resolve_pointer(body, value.pointer or "")
        if read is MISSING or read is None or read == "":
            continue
        if value.pattern is not None:
            match = re.search(value.pattern, str(read))
            if match is None:
                continue
            groups = match.groupdict()
            read = groups.get("id") or (
                match.group(1) if match.groups() else match.group(0)
            )
        found[value.name] = read
    return found or None


def _form_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_form_value(v) for v in value]
    return str(value)


def _file_part(value: Any) -> Any:
    if isinstance(value, tuple):
        return value
    if isinstance(value, bytes):
        return ("upload", value, "application/octet-stream")
    path = Path(value)
    return (path.name, path.read_bytes(), "application/octet-stream")


def next_page(
    paging: Paging,
    body: Any,
    *,
    url: str,
    base_url: str,
    listed: int,
    count: int,
    status: int = 200,
    headers: Mapping[str, str] = _NO_HEADERS,
) -> str | None:
    """Return the next page's URL after a page at ``url``, or ``None`` after the last.

    ``listed`` counts the entries read so far in this listing (this page's
    included), ``count`` this page's entries. The page is the last when the
    spec's ``stop_when`` holds for it (``has_more: false``), whatever cursor
    or link it carries; ``max_pages`` is the caller's to apply.

    Raises:
        RemoteError: (protocol, not retried) the page names itself as the
            next one: its cursor is the one just sent, or its next link is
            its own URL. Following it would read the same page until
            ``max_pages``.
    """
    if paging.stop_when is not None and holds(paging.stop_when, status, headers, body):
        return None
    if paging.kind == "next_link":
        return _next_link(paging, body, url=url, base_url=base_url)
    if paging.kind == "skip":
        full = paging.page_size is None or count >= paging.page_size
        if count and full and paging.skip_param:
            return merge_query(url, {paging.skip_param: str(listed)})
        return None
    return _next_cursor(paging, body, url=url)


def _next_link(paging: Paging, body: Any, *, url: str, base_url: str) -> str | None:
    for pointer in paging.next_pointers:
        link = resolve_pointer(body, pointer)
        if isinstance(link, str) and link:
            # The link carries its own query (skip, top, filters).
            following = _join(base_url, link)
            if following == url:
                _repeated("next link", url)
            return following
    return None


def _next_cursor(paging: Paging, body: Any, *, url: str) -> str | None:
    for pointer in paging.next_pointers:
        token = resolve_pointer(body, pointer)
        if isinstance(token, str) and token and paging.cursor_param:
            if token == _sent(url, paging.cursor_param):
                _repeated("cursor", url)
            return merge_query(url, {paging.cursor_param: token})
    return None


def next_cursor(
    paging: Paging,
    body: Any,
    *,
    sent: str | None,
    url: str,
    status: int = 200,
    headers: Mapping[str, str] = _NO_HEADERS,
) -> str | None:
    """Return the cursor a page gives for the next one (sent in a request body), or ``None``.

    ``sent`` is the cursor this page was asked with. As with ``next_page``,
    ``stop_when`` ends the listing whatever cursor the page carries.

    Raises:
        RemoteError: (protocol, not retried) the page gives back the cursor
            it was asked with: following it would read it until ``max_pages``.
    """
    if paging.stop_when is not None and holds(paging.stop_when, status, headers, body):
        return None
    for pointer in paging.next_pointers:
        token = resolve_pointer(body, pointer)
        if isinstance(token, str) and token:
            if token == sent:
                _repeated("cursor", url)
            return token
    return None


def _sent(url: str, param: str) -> str | None:
    """Return the value of query parameter ``param`` in ``url`` (the last one), if any."""
    found = None
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name == param:
            found = value
    return found


def _repeated(what: str, url: str) -> NoReturn:
    # Neither the cursor nor the URL's query goes into the message: both may be tokens.
    msg = (
        f"the page at {where(url)} gives the same {what} as the page before: "
        "the listing would never end"
    )
    raise RemoteError(msg, kind="protocol", retryable=False)


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
