"""What goes on the wire and what comes back, decided without touching it.

URLs (links located in earlier responses, or the spec's path template and
query), request bodies, and values read from replies for later requests.
Item pages are ``paging``'s; what a reply's status and error mean,
``verdict``'s.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode, urljoin

from engine._core.reply import Reply, where
from engine._errors import InputError, RemoteError
from statemachines import (
    MISSING,
    Body,
    Lifecycle,
    Locator,
    Request,
    Template,
    TemplateError,
    Value,
    body_strings,
    resolve_pointer,
    whole_variable,
)

__all__ = [
    "build_url",
    "encode_body",
    "encode_path_value",
    "expand",
    "locate",
    "merge_query",
    "query_params",
    "read_values",
    "render_body",
    "submit_links",
    "template_fields",
]


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
