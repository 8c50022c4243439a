"""Semantic checks of a lifecycle's requests: templates, bodies and values.

Every template parses and names only fields its request may use, bodies go
where they can, a lookup has a client reference to look for, each value has
a free name and a response to read, and conditional polling is bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from ._checks_base import Found, name_hint, pattern_ok
from .errors import TemplateError, shorten
from .pointer import escape, join_pointer
from .spec import Lifecycle, Request
from .template import Template, Variable, body_strings

__all__ = [
    "all_requests",
    "bodies_sound",
    "client_ref_sound",
    "conditional_sound",
    "endless_not_modified",
    "requests_resolvable",
    "values_sound",
    "values_used",
]

_BUILTIN_FIELDS = ("job_id", "item_id")
#: Names a lifecycle's ``values`` cannot take: the engine fills them.
_RESERVED_NAMES = ("job_id", "item_id", "client_ref", "cursor")
#: The responses whose values each request may use: those it always follows.
#: A cancel may be sent before the first poll is answered, and a poll's
#: first is sent before any; items listed at the end also have the final one.
_VALUES_FOR: dict[str, tuple[str, ...]] = {
    "submit": (),
    "lookup": (),
    "poll": ("submit",),
    "cancel": ("submit",),
    "items": ("submit", "last"),
    "result": ("submit", "last", "final"),
}


def all_requests(lifecycle: Lifecycle) -> Iterator[Request]:
    if lifecycle.submit is not None:
        yield lifecycle.submit.request
    if lifecycle.lookup is not None:
        yield lifecycle.lookup.request
    yield lifecycle.poll.request
    if lifecycle.result is not None:
        yield lifecycle.result.request
    if lifecycle.cancel is not None:
        yield lifecycle.cancel.request
    if lifecycle.items is not None:
        yield lifecycle.items.request


def _named_requests(lifecycle: Lifecycle) -> Iterator[tuple[str, Request]]:
    """Yield each request of ``lifecycle`` with its kind (``submit``, ``poll``…)."""
    for kind in ("submit", "lookup", "poll", "result", "cancel", "items"):
        block = getattr(lifecycle, kind)
        if block is not None:
            yield kind, block.request


def _values_for(lifecycle: Lifecycle, kind: str) -> tuple[str, ...]:
    """Return the responses whose values a ``kind`` request may use."""
    allowed = _VALUES_FOR[kind]
    items = lifecycle.items
    if kind == "items" and items is not None and items.refresh == "at_end":
        allowed = (*allowed, "final")
    return allowed


def _fields_for(
    lifecycle: Lifecycle, kind: str, base: set[str]
) -> tuple[set[str], dict[str, str]]:
    """Return the template fields a ``kind`` request may use, and why others may not.

    The second item maps each value the request may not use to the message
    that says so.
    """
    allowed = _values_for(lifecycle, kind)
    known = set(base)
    unavailable: dict[str, str] = {}
    for value in lifecycle.values:
        if value.response in allowed:
            known.add(value.name)
        else:
            may = ", ".join(allowed) if allowed else "none (no response precedes it)"
            unavailable[value.name] = (
                f"value {{{value.name}}} is read from the {value.response} response, "
                f"which a {kind} request does not always follow; a {kind} request may "
                f"use values from these responses: {may}"
            )
    return known, unavailable


def requests_resolvable(lifecycle: Lifecycle) -> Found:
    base = {*_BUILTIN_FIELDS, *(i.name for i in lifecycle.inputs)}
    if lifecycle.submit is not None and lifecycle.submit.client_ref is not None:
        base.add("client_ref")
    for kind, request in _named_requests(lifecycle):
        known, unavailable = _fields_for(lifecycle, kind, base)
        if request.path is None and not request.url:
            yield (
                request.location,
                "a request needs a 'path' template, a 'url' locator, or both",
            )
        templates: list[tuple[str, str, Literal["path", "query", "body"]]] = []
        if request.path is not None:
            templates.append((f"{request.location}/path", request.path, "path"))
        templates.extend(
            (f"{request.location}/query/{escape(k)}", v, "query")
            for k, v in request.query
        )
        if request.body is not None:
            at_body = request.body.location
            templates.extend(
                (at_body + join_pointer(path), text, "body")
                for path, text in body_strings(request.body.template)
            )
        # An items page's cursor goes in its body, never in its path or query
        # (those take the cursor as paging.cursor_param).
        in_body = {*known, "cursor"} if kind == "items" else known
        for at, text, where in templates:
            yield from _template_sound(
                text,
                at,
                where,
                in_body if where == "body" else known,
                lifecycle,
                unavailable=unavailable,
            )
        for locator in request.url:
            if locator.pattern is not None:
                yield from pattern_ok(locator.pattern, f"{locator.location}/pattern")
    for block in (lifecycle.submit, lifecycle.lookup):
        for locator in block.job_id if block is not None else ():
            if locator.pattern is not None:
                yield from pattern_ok(locator.pattern, f"{locator.location}/pattern")


def client_ref_sound(lifecycle: Lifecycle) -> Found:
    submit = lifecycle.submit
    ref = submit.client_ref if submit is not None else None
    if ref is not None and ref.input is not None:
        names = tuple(i.name for i in lifecycle.inputs)
        if ref.input not in names:
            yield (
                f"{ref.location}/input",
                f"unknown input {ref.input!r}{name_hint(ref.input, names)}",
            )
    if lifecycle.lookup is not None and ref is None:
        yield (
            lifecycle.lookup.location,
            (
                "a lookup finds a submission by its client reference: "
                "declare submit.client_ref (an input or a header) to send one"
            ),
        )


def _template_sound(
    text: str,
    at: str,
    where: Literal["path", "query", "body"],
    known: set[str],
    lifecycle: Lifecycle,
    *,
    unavailable: dict[str, str],
) -> Found:
    try:
        template = Template.parse(text)
    except TemplateError as exc:
        yield at, f"malformed {exc}"
        return
    if where == "path" and not text.startswith("/"):
        yield (
            at,
            f"a path must start with '/' (it follows the base URL): {shorten(text)!r}",
        )
    if where in {"query", "body"}:
        reserved = {
            p: None for p in template.parts if isinstance(p, Variable) and p.reserved
        }
        why = {
            "query": "a query value (the engine encodes query values whole)",
            "body": "a body (body values go in as they are)",
        }[where]
        for variable in reserved:
            yield (
                at,
                (
                    f"reserved expansion {variable} is not allowed in {why}; "
                    f"write {{{variable.name}}}"
                ),
            )
    for name in template.variables:
        # Item lifecycles also see their parent's inputs, unknown here.
        if name in known or lifecycle.item_only:
            continue
        if name in unavailable:
            yield at, unavailable[name]
        else:
            hint = name_hint(name, tuple(sorted(known)))
            yield at, f"unknown template field {{{name}}}{hint}"


def bodies_sound(lifecycle: Lifecycle) -> Found:
    """Check where bodies go: never on a GET; on submit, instead of the inputs' body."""
    for kind, request in _named_requests(lifecycle):
        body = request.body
        if body is None:
            continue
        if request.method == "GET":
            yield (
                body.location.rsplit("/", 1)[0],
                (
                    "a GET request carries no body; send it with POST, PUT, PATCH "
                    "or DELETE, or remove the body"
                ),
            )
        items = lifecycle.items
        uses_cursor = any(
            "cursor" in _variables(text) for _, text in body_strings(body.template)
        )
        if (
            kind == "items"
            and items is not None
            and uses_cursor
            and items.paging.kind != "cursor"
        ):
            yield (
                f"{items.paging.location}/kind",
                (
                    "the items request's body sends {cursor}, the token of cursor "
                    f"paging, but paging.kind is {items.paging.kind!r}; use 'cursor'"
                ),
            )
    submit = lifecycle.submit
    if submit is None or submit.request.body is None:
        return
    body = submit.request.body
    if submit.body in {"multipart", "none"} or (
        submit.body == "form" and body.kind == "json"
    ):
        yield (
            f"{submit.location}/body",
            (
                f"submit.body is {submit.body!r} but submit.request.body is a {body.kind} "
                f"template, which replaces the body built from inputs; remove "
                f"submit.body or make it {body.kind!r}"
            ),
        )
    for spec_input in lifecycle.inputs:
        if spec_input.where in {"body", "form", "file"}:
            yield (
                f"{spec_input.location}/in",
                (
                    f"input {spec_input.name!r} is sent 'in: {spec_input.where}', but "
                    "submit.request.body is a template that replaces the body built "
                    f"from inputs; write {{{spec_input.name}}} in it and declare the "
                    "input 'in: none'"
                ),
            )


def _variables(text: str) -> tuple[str, ...]:
    """Return the names a template uses; none when it is malformed (reported elsewhere)."""
    try:
        return Template.parse(text).variables
    except TemplateError:
        return ()


def values_sound(lifecycle: Lifecycle) -> Found:
    """Check the lifecycle's values: free names, readable patterns, a submit to read."""
    inputs = {i.name for i in lifecycle.inputs}
    for value in lifecycle.values:
        if value.name in _RESERVED_NAMES:
            yield (
                value.location,
                (
                    f"{value.name!r} is a template field the engine fills; name the "
                    "value otherwise"
                ),
            )
        elif value.name in inputs:
            yield (
                value.location,
                (
                    f"{value.name!r} is also an input's name; one name, one meaning: "
                    "rename one of them"
                ),
            )
        if value.pattern is not None:
            yield from pattern_ok(value.pattern, f"{value.location}/pattern")
        if value.response == "submit" and lifecycle.submit is None:
            yield (
                f"{value.location}/response",
                "the lifecycle has no submit, so there is no submit response to read",
            )


def conditional_sound(lifecycle: Lifecycle) -> Found:
    conditional = lifecycle.poll.conditional
    if conditional is not None and not (conditional.etag or conditional.last_modified):
        yield (
            conditional.location,
            (
                "conditional polling with neither etag nor last_modified sends no "
                "validator; enable one, or remove 'conditional'"
            ),
        )


def values_used(lifecycle: Lifecycle) -> Found:
    """Warn about values no request's template uses (they are never read)."""
    if not lifecycle.values:
        return
    used: set[str] = set()
    for request in all_requests(lifecycle):
        texts = [request.path or "", *(v for _, v in request.query)]
        if request.body is not None:
            texts.extend(text for _, text in body_strings(request.body.template))
        for text in texts:
            used.update(_variables(text))
    for value in lifecycle.values:
        if value.name not in used:
            yield (
                value.location,
                f"no request's template uses value {{{value.name}}}, so it is never read",
            )


def endless_not_modified(lifecycle: Lifecycle) -> Found:
    """Warn when only attempts bound a conditional poll: 304 answers use none."""
    schedule = lifecycle.schedule
    if lifecycle.poll.conditional is None or schedule.deadline is not None:
        return
    bounded = schedule.max_attempts is not None or any(
        o.max_attempts is not None for o in schedule.per_state
    )
    if bounded:
        yield (
            lifecycle.poll.conditional.location,
            (
                "a '304 Not Modified' uses no attempt, so max_attempts cannot end a "
                "job whose service never changes its answer; set schedule.deadline"
            ),
        )
