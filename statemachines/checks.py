"""Semantic rules the schema cannot state, each reported as a Problem.

Every rule runs on every lifecycle and reports every violation, so one
``statepoll validate`` run lists all the mistakes of a file.
"""

from __future__ import annotations

import difflib
import re
from collections import deque
from collections.abc import Callable, Iterator
from typing import Literal
from urllib.parse import urlsplit

from .errors import Problem, TemplateError, in_pointer_order, shorten
from .pointer import WILDCARD, escape, has_wildcard, join_pointer
from .spec import (
    AwsSigV4,
    Condition,
    Lifecycle,
    OAuth2ClientCredentials,
    Outcome,
    Request,
    Spec,
    Then,
)
from .template import Template, Variable, body_strings

__all__ = ["check_chain_target", "check_spec"]

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


def check_spec(spec: Spec, file: str) -> list[Problem]:
    """Return every semantic problem of ``spec`` (empty when it is sound).

    Errors and warnings together, in pointer order; only errors stop a load.
    """
    names = spec.lifecycle_names
    problems: list[Problem] = []
    for lifecycle in spec.lifecycles:
        for check in _CHECKS:
            problems.extend(
                Problem(file, pointer, message) for pointer, message in check(lifecycle)
            )
        for check in _WARNINGS:
            problems.extend(
                Problem(file, pointer, message, severity="warning")
                for pointer, message in check(lifecycle)
            )
        if lifecycle.items is not None:
            target = lifecycle.items.lifecycle
            at = f"{lifecycle.items.location}/lifecycle"
            if target not in names:
                problems.append(
                    Problem(
                        file,
                        at,
                        f"unknown lifecycle {shorten(target)!r}{_hint(target, names)}",
                    )
                )
            elif target == lifecycle.name:
                problems.append(
                    Problem(file, at, "a lifecycle cannot be its own items' lifecycle")
                )
    problems.extend(
        Problem(file, pointer, message, severity=severity)
        for pointer, message, severity in _auth_sound(spec)
    )
    problems.extend(Problem(file, at, message) for at, message in _chains_sound(spec))
    return in_pointer_order(problems)


Found = Iterator[tuple[str, str]]


def _hint(name: str, declared: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, declared, n=1)
    did_you_mean = f"; did you mean {close[0]!r}?" if close else ""
    return f"{did_you_mean or ';'} Declared: {', '.join(declared)}"


def _num(value: float) -> str:
    # Ints print as they are: ":g" converts to float, and 10**400 overflows.
    return str(value) if isinstance(value, int) else f"{value:g}"


def _unknown_state(name: str, lifecycle: Lifecycle) -> str:
    return f"unknown state {shorten(name)!r}{_hint(name, lifecycle.state_names)}"


def _one_initial(lifecycle: Lifecycle) -> Found:
    initial = [s for s in lifecycle.states if s.initial]
    if not initial:
        yield (
            f"{lifecycle.location}/states",
            'no initial state; mark exactly one state with "initial": true',
        )
    for extra in initial[1:]:
        others = ", ".join(s.name for s in initial)
        yield (
            f"{extra.location}/initial",
            f"more than one initial state ({others}); keep exactly one",
        )


def _states_declared(lifecycle: Lifecycle) -> Found:
    declared = set(lifecycle.state_names)
    named: list[tuple[str, str]] = []
    for t in lifecycle.transitions:
        # A transition's location points at its "to"; its "from" is a sibling.
        named.append((t.location, t.dest))
        named.append((t.source_location, t.source))
    for rule in lifecycle.poll.observe:
        if rule.state is not None:
            named.append((f"{rule.location}/state", rule.state))
        named.extend(
            (f"{rule.location}/map/{escape(value)}", state)
            for value, state in rule.mapping
        )
    named.extend((o.location, o.state) for o in lifecycle.schedule.per_state)
    if lifecycle.cancel is not None:
        at = lifecycle.cancel.location
        named.extend(
            (f"{at}/from/{i}", s) for i, s in enumerate(lifecycle.cancel.from_states)
        )
        named.extend(
            (f"{at}/leads_to/{i}", s) for i, s in enumerate(lifecycle.cancel.leads_to)
        )
    seen: set[tuple[str, str]] = set()
    for at, name in named:
        if name not in declared and (at, name) not in seen:
            seen.add((at, name))
            yield at, _unknown_state(name, lifecycle)


def _terminal_is_final(lifecycle: Lifecycle) -> Found:
    terminal = lifecycle.terminal_states
    for t in lifecycle.transitions:
        if t.source in terminal:
            at = t.source_location
            outcome = lifecycle.state(t.source).outcome
            yield (
                at,
                f"terminal state {t.source!r} (outcome {outcome}) cannot have outgoing transitions",
            )


def _reached(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    """Return every state reachable from ``start`` along ``edges`` (itself included)."""
    seen = set(start)
    queue = deque(start)
    while queue:
        for nxt in edges[queue.popleft()] - seen:
            seen.add(nxt)
            queue.append(nxt)
    return seen


def _edges(lifecycle: Lifecycle, *, backwards: bool = False) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in lifecycle.state_names}
    for t in lifecycle.transitions:
        if t.source in edges and t.dest in edges:
            source, dest = (t.dest, t.source) if backwards else (t.source, t.dest)
            edges[source].add(dest)
    return edges


def _reach_terminal(lifecycle: Lifecycle) -> Found:
    # One search backwards from the terminal states, not one per state: a
    # hostile file may declare 100,000 states.
    leads_out = _reached(
        set(lifecycle.terminal_states), _edges(lifecycle, backwards=True)
    )
    for state in lifecycle.states:
        if state.name not in leads_out:
            yield (
                state.location,
                (
                    f"state {shorten(state.name)!r} cannot reach any terminal state"
                    " (a job there would be polled forever)"
                ),
            )


def _reachable_from_initial(lifecycle: Lifecycle) -> Found:
    initial = [s.name for s in lifecycle.states if s.initial]
    if len(initial) != 1:
        return  # _one_initial reports it; any choice here would be a guess
    reached = _reached(set(initial), _edges(lifecycle))
    for state in lifecycle.states:
        if state.name not in reached:
            yield (
                state.location,
                (
                    f"state {shorten(state.name)!r} cannot be reached from the "
                    f"initial state {shorten(initial[0])!r}; add a transition into it "
                    "or remove it"
                ),
            )


def _has_success(lifecycle: Lifecycle) -> Found:
    if not any(s.outcome is Outcome.SUCCESS for s in lifecycle.states):
        yield (
            f"{lifecycle.location}/states",
            "no state has outcome 'success'; a job could never succeed",
        )


def _schedule_sound(lifecycle: Lifecycle) -> Found:
    schedule = lifecycle.schedule
    cap = schedule.backoff.max_interval
    if cap is not None and cap < schedule.interval:
        yield (
            f"{schedule.backoff.location}/max_interval",
            f"max_interval ({_num(cap)}) must be >= interval ({_num(schedule.interval)})",
        )
    if schedule.deadline is not None and schedule.deadline < schedule.initial_delay:
        yield (
            schedule.where("deadline"),
            (
                f"deadline ({_num(schedule.deadline)}) must be >= "
                f"initial_delay ({_num(schedule.initial_delay)})"
            ),
        )
    for override in schedule.per_state:
        if override.backoff is not None and override.backoff.max_interval is not None:
            interval = override.interval or schedule.interval
            if override.backoff.max_interval < interval:
                yield (
                    f"{override.backoff.location}/max_interval",
                    (
                        f"max_interval ({_num(override.backoff.max_interval)}) "
                        f"must be >= interval ({_num(interval)})"
                    ),
                )


def _requests(lifecycle: Lifecycle) -> Iterator[Request]:
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


def _requests_resolvable(lifecycle: Lifecycle) -> Found:
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
                yield from _pattern_ok(locator.pattern, f"{locator.location}/pattern")
    for block in (lifecycle.submit, lifecycle.lookup):
        for locator in block.job_id if block is not None else ():
            if locator.pattern is not None:
                yield from _pattern_ok(locator.pattern, f"{locator.location}/pattern")


def _client_ref_sound(lifecycle: Lifecycle) -> Found:
    submit = lifecycle.submit
    ref = submit.client_ref if submit is not None else None
    if ref is not None and ref.input is not None:
        names = tuple(i.name for i in lifecycle.inputs)
        if ref.input not in names:
            yield (
                f"{ref.location}/input",
                f"unknown input {ref.input!r}{_hint(ref.input, names)}",
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
            hint = _hint(name, tuple(sorted(known)))
            yield at, f"unknown template field {{{name}}}{hint}"


def _pattern_ok(pattern: str, at: str) -> Found:
    try:
        re.compile(pattern)
    except re.error as exc:
        yield at, f"invalid regular expression: {exc}"


def _cancel_path_legal(lifecycle: Lifecycle) -> Found:
    cancel = lifecycle.cancel
    if cancel is None:
        return
    legal = {(t.source, t.dest) for t in lifecycle.transitions}
    first = cancel.leads_to[0]
    for i, source in enumerate(cancel.from_states):
        if (source, first) not in legal:
            yield (
                f"{cancel.location}/from/{i}",
                f"no transition from {source!r} to {first!r}, where a cancel leads",
            )
    for i, (a, b) in enumerate(zip(cancel.leads_to, cancel.leads_to[1:], strict=False)):
        if (a, b) not in legal:
            yield (
                f"{cancel.location}/leads_to/{i + 1}",
                f"no transition from {a!r} to {b!r}",
            )


def _produced(lifecycle: Lifecycle) -> Found:
    """Warn about states no response or cancel can put a job in."""
    produced = {s.name for s in lifecycle.states if s.initial}
    for rule in lifecycle.poll.observe:
        if rule.state is not None:
            produced.add(rule.state)
        produced.update(state for _, state in rule.mapping)
    if lifecycle.cancel is not None:
        produced.update(lifecycle.cancel.leads_to)
    for state in lifecycle.states:
        if state.name in produced:
            continue
        if state.terminal:
            fate = "so no job can ever end in it"
        else:
            fate = "so a job only passes through it when a later state is observed"
        yield (
            state.location,
            (
                f"no observe rule and no cancel leads to state {shorten(state.name)!r}, "
                f"{fate}"
            ),
        )


def _bodies_sound(lifecycle: Lifecycle) -> Found:
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


#: Where a condition is used decides what it may test.
Use = Literal["observe", "errors", "paging", "hint"]
_VALUE_TESTS = frozenset({"equals", "in", "exists", "lt", "le", "gt", "ge"})
_HEADER_ONLY = (
    "a wait hint's condition reads headers only: test a header's presence or value"
)


def _conditions(lifecycle: Lifecycle) -> Iterator[tuple[Condition, Use]]:
    """Yield every condition of ``lifecycle``, nested ones included, with its use."""
    found: list[tuple[Condition, Use]] = [
        (rule.when, "observe") for rule in lifecycle.poll.observe if rule.when
    ]
    found.extend((rule.when, "errors") for rule in lifecycle.errors.rules)
    if lifecycle.items is not None and lifecycle.items.paging.stop_when is not None:
        found.append((lifecycle.items.paging.stop_when, "paging"))
    found.extend(
        (hint.when, "hint")
        for hint in lifecycle.schedule.retry_after.hints
        if hint.when is not None
    )
    while found:
        condition, use = found.pop()
        yield condition, use
        found.extend((child, use) for child in condition.children)


def _conditions_sound(lifecycle: Lifecycle) -> Found:
    for condition, use in _conditions(lifecycle):
        at = condition.location
        kind = condition.kind
        if (
            use == "hint"
            and condition.header is None
            and kind not in {"header", "all", "any", "not"}
        ):
            yield at, _HEADER_ONLY
        elif kind == "error":
            yield from _error_condition_sound(condition, use, lifecycle)
        elif kind in _VALUE_TESTS and condition.header is not None:
            yield from _header_values_text(condition)
        elif condition.match is not None and not has_wildcard(condition.pointer):
            yield (
                f"{at}/match",
                (
                    f"'match' needs a '{WILDCARD}' token in the pointer to stand for "
                    f"every element (e.g. /items/{WILDCARD}/status): "
                    f"{shorten(condition.pointer)!r} names one value"
                ),
            )


def _error_condition_sound(
    condition: Condition, use: Use, lifecycle: Lifecycle
) -> Found:
    at = f"{condition.location}/error"
    if use == "paging":
        yield (
            at,
            "a page's error code is not read: test the page's status or body instead",
        )
    elif condition.values and not lifecycle.errors.reads_code:
        yield (
            at,
            (
                "the service's error code is never read: say where it is with "
                "errors.code_pointer or errors.code_from"
            ),
        )


def _header_values_text(condition: Condition) -> Found:
    if condition.kind not in {"equals", "in"}:
        return
    for i, value in enumerate(condition.values):
        if not isinstance(value, str):
            at = condition.location + (
                "/equals" if condition.kind == "equals" else f"/in/{i}"
            )
            yield (
                at,
                (
                    f"a header's value is text: compare with a string such as "
                    f"'{value}', or use lt, le, gt or ge for numbers"
                ),
            )


def _literal_stars(lifecycle: Lifecycle) -> Found:
    """Warn about a '*' token that is read as a member name (no 'match')."""
    for condition, _use in _conditions(lifecycle):
        if (
            condition.kind in _VALUE_TESTS
            and condition.header is None
            and condition.match is None
            and has_wildcard(condition.pointer)
        ):
            yield (
                f"{condition.location}/pointer",
                (
                    f"'{WILDCARD}' is read as a member named '{WILDCARD}' here; add "
                    '"match": "all" or "any" to test every element'
                ),
            )


def _variables(text: str) -> tuple[str, ...]:
    """Return the names a template uses; none when it is malformed (reported elsewhere)."""
    try:
        return Template.parse(text).variables
    except TemplateError:
        return ()


def _values_sound(lifecycle: Lifecycle) -> Found:
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
            yield from _pattern_ok(value.pattern, f"{value.location}/pattern")
        if value.response == "submit" and lifecycle.submit is None:
            yield (
                f"{value.location}/response",
                "the lifecycle has no submit, so there is no submit response to read",
            )


def _conditional_sound(lifecycle: Lifecycle) -> Found:
    conditional = lifecycle.poll.conditional
    if conditional is not None and not (conditional.etag or conditional.last_modified):
        yield (
            conditional.location,
            (
                "conditional polling with neither etag nor last_modified sends no "
                "validator; enable one, or remove 'conditional'"
            ),
        )


def _values_used(lifecycle: Lifecycle) -> Found:
    """Warn about values no request's template uses (they are never read)."""
    if not lifecycle.values:
        return
    used: set[str] = set()
    for request in _requests(lifecycle):
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


def _endless_not_modified(lifecycle: Lifecycle) -> Found:
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


def _error_codes_observed(lifecycle: Lifecycle) -> Found:
    """Warn about an observe rule testing an error code no error reply reaches."""
    errors = lifecycle.errors
    observed = any(rule.verdict == "observe" for rule in errors.rules) or any(
        status >= 400 and status not in errors.fatal_status + errors.retry_status
        for status in lifecycle.poll.request.expect_status
    )
    if observed:
        return
    for rule in lifecycle.poll.observe:
        tests = [rule.when] if rule.when is not None else []
        while tests:
            condition = tests.pop()
            tests.extend(condition.children)
            if condition.kind == "error" and condition.exists:
                yield f"{condition.location}/error", _unobserved(condition)


def _unobserved(condition: Condition) -> str:
    # The advice names this rule's own code: a rule observing every error
    # would stop 5xx and 429 from being retried.
    narrow = (
        f'{{"error": "{condition.values[0]}"}}'
        if condition.values
        else '{"status": 404}'
    )
    return (
        "an error reply is never observed here: add an errors rule such as "
        f'{{"when": {narrow}, "as": "observe"}} so that this rule sees it'
    )


def _maps_sound(lifecycle: Lifecycle) -> Found:
    for rule in lifecycle.poll.observe:
        if not rule.ignore_case:
            continue
        if not rule.mapping:
            yield (
                f"{rule.location}/ignore_case",
                "ignore_case applies to a value map, and this rule has none",
            )
        first: dict[str, tuple[str, str]] = {}
        for value, state in rule.mapping:
            seen = first.setdefault(value.casefold(), (value, state))
            if seen[1] != state:
                yield (
                    f"{rule.location}/map/{escape(value)}",
                    (
                        f"{shorten(value)!r} and {shorten(seen[0])!r} are the same "
                        f"ignoring case but lead to different states "
                        f"({shorten(state)}, {shorten(seen[1])})"
                    ),
                )


def _replies_sound(lifecycle: Lifecycle) -> Found:
    """Jitter's minimum and the error sources' patterns."""
    jitter = lifecycle.schedule.jitter
    if jitter.min and jitter.kind != "full":
        yield (
            f"{lifecycle.schedule.where('jitter')}/min",
            (
                f"min applies to full jitter (drawn from [min, delay]), not to "
                f"{jitter.kind!r}: set kind to 'full' or remove min"
            ),
        )
    errors = lifecycle.errors
    for source in (*errors.code_from, *errors.message_from):
        if source.pattern is not None:
            yield from _pattern_ok(source.pattern, f"{source.location}/pattern")


# -- service.auth ------------------------------------------------------------------------

#: Form fields of a token request the spec's own fields set.
_TOKEN_FORM_FIELDS = {
    "grant_type": "the grant is always client_credentials",
    "client_id": "the client id comes from client_id_env",
    "client_secret": "the client secret comes from client_secret_env",
    "scope": "use the 'scope' field",
}
#: Headers each auth kind sets on every request to the service's host.
_AUTH_HEADERS = {
    "oauth2_client_credentials": ("authorization",),
    "aws_sigv4": (
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    ),
}
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
Severity = Literal["error", "warning"]


def _auth_sound(spec: Spec) -> Iterator[tuple[str, str, Severity]]:
    """Check ``service.auth`` beyond its schema: where secrets may go, what is missing."""
    auth = spec.service.auth
    if isinstance(auth, OAuth2ClientCredentials):
        yield from _token_url_sound(auth)
        if auth.client_id_env == auth.client_secret_env:
            yield (
                f"{auth.location}/client_secret_env",
                (
                    f"client_id_env and client_secret_env both name "
                    f"{auth.client_id_env}; the id and the secret are two variables"
                ),
                "error",
            )
        for name, _value in auth.params:
            reason = _TOKEN_FORM_FIELDS.get(name)
            if reason is not None:
                yield (
                    f"{auth.location}/params/{escape(name)}",
                    f"the token request's {name!r} is not a parameter: {reason}",
                    "error",
                )
    elif isinstance(auth, AwsSigV4) and auth.region is None and auth.region_env is None:
        yield (
            auth.location,
            "name the region to sign for: 'region', 'region_env', or both",
            "error",
        )
    if auth is None or auth.kind not in _AUTH_HEADERS:
        return
    taken = _AUTH_HEADERS[auth.kind]
    places = [("/service/headers", spec.service.headers)]
    for lifecycle in spec.lifecycles:
        places.extend(
            (f"{request.location}/headers", request.headers)
            for request in _requests(lifecycle)
        )
    for at, headers in places:
        for name, _value in headers:
            if name.lower() in taken:
                yield (
                    f"{at}/{escape(name)}",
                    (
                        f"header {shorten(name)!r} is set by auth kind {auth.kind!r} "
                        "on every request; remove it here"
                    ),
                    "error",
                )


def _token_url_sound(
    auth: OAuth2ClientCredentials,
) -> Iterator[tuple[str, str, Severity]]:
    at = f"{auth.location}/token_url"
    url = auth.token_url
    if url.startswith("//"):
        # urljoin would read "//host/path" as another host, not as a path.
        yield (
            at,
            "a path starts with one '/'; for another host write https://HOST/PATH",
            "error",
        )
        return
    if url.startswith("/"):
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        yield at, "not a valid URL: bad port or host", "error"
        return
    if parts.username is not None or parts.password is not None:
        yield (
            at,
            (
                "a token URL carries no user or password: the client id and "
                "secret come from client_id_env and client_secret_env"
            ),
            "error",
        )
    elif not parts.hostname:
        yield at, "a token URL needs a host", "error"
    elif parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        yield (
            at,
            (
                "plain http: the client secret and the token would cross the "
                "network unencrypted; use https"
            ),
            "warning",
        )


def _progress_sound(lifecycle: Lifecycle) -> Found:
    progress = lifecycle.poll.progress
    if progress is None:
        return
    at = progress.location
    counts = progress.done is not None or progress.total is not None
    if lifecycle.item_only:
        yield (
            at,
            (
                "progress is read on a job's polls; this lifecycle only tracks items "
                "(declare it on the job's lifecycle)"
            ),
        )
    if progress.pointer is not None and counts:
        yield at, "give pointer (a number out of max) or done and total, not both"
    elif progress.pointer is None and progress.max_value is not None:
        yield f"{at}/max", "max is what pointer's number is out of: add pointer"
    if progress.done is not None and progress.total is None:
        yield f"{at}/done", "done needs total beside it (the count in all)"
    if progress.total is not None and progress.done is None:
        yield f"{at}/total", "total needs done beside it (the count done)"
    if progress.done is not None and progress.done == progress.total:
        yield f"{at}/total", "done and total are the same pointer: always complete"
    if progress.pointer is None and not counts and progress.max_value is None:
        yield at, "give pointer (a number out of max, 100 by default) or done and total"


def _chains_sound(spec: Spec) -> Found:
    """Each ``then`` starts a lifecycle that can be submitted with what it is given."""
    names = spec.lifecycle_names
    targets: dict[str, set[str]] = {name: set() for name in names}
    for lifecycle in spec.lifecycles:
        for state in lifecycle.states:
            then = state.then
            if then is None:
                continue
            if state.outcome is not Outcome.SUCCESS:
                what = state.outcome.value if state.outcome else "not terminal"
                yield (
                    then.location,
                    (
                        f"only a success state can start another lifecycle ({state.name}: "
                        f"{what})"
                    ),
                )
            yield from _then_inputs_own(lifecycle, then)
            if _elsewhere(spec, then):
                continue  # checked when it is bound: see check_chain_target
            if then.lifecycle not in names:
                yield (
                    f"{then.location}/lifecycle",
                    (
                        f"unknown lifecycle {shorten(then.lifecycle)!r}"
                        f"{_hint(then.lifecycle, names)}"
                    ),
                )
                continue
            targets[lifecycle.name].add(then.lifecycle)
            yield from _then_target(spec.lifecycle(then.lifecycle), then)
    for lifecycle in spec.lifecycles:
        for state in lifecycle.states:
            then = state.then
            if then is None or then.lifecycle not in names or _elsewhere(spec, then):
                continue
            path = _chain_back(targets, then.lifecycle, lifecycle.name)
            if path is not None:
                loop = " -> ".join((lifecycle.name, *path))
                yield (
                    f"{then.location}/lifecycle",
                    f"the chain comes back ({loop}): a chain must end",
                )


def check_chain_target(then: Then, target: Spec) -> list[tuple[str, str]]:
    """Return what is wrong with ``then`` starting a lifecycle of ``target``, another spec.

    Each problem is ``(pointer, message)``, the pointer into the spec that
    holds ``then``: the lifecycle is unknown, has no submit, or is not given
    its required inputs.
    """
    names = target.lifecycle_names
    if then.lifecycle not in names:
        message = (
            f"unknown lifecycle {shorten(then.lifecycle)!r} of spec {target.name!r}"
            f"{_hint(then.lifecycle, names)}"
        )
        return [(f"{then.location}/lifecycle", message)]
    return list(_then_target(target.lifecycle(then.lifecycle), then))


def _elsewhere(spec: Spec, then: Then) -> bool:
    return then.spec is not None and then.spec != spec.name


def _then_inputs_own(lifecycle: Lifecycle, then: Then) -> Found:
    own = tuple(i.name for i in lifecycle.inputs)
    for source in then.inputs:
        if source.input is not None and source.input not in own:
            yield (
                f"{source.location}/input",
                (
                    f"unknown input {shorten(source.input)!r} of this lifecycle"
                    f"{_hint(source.input, own)}"
                ),
            )


def _then_target(target: Lifecycle, then: Then) -> Found:
    at = f"{then.location}/lifecycle"
    if target.item_only or target.submit is None:
        yield (
            at,
            f"lifecycle {target.name!r} has no submit: a chained job is submitted",
        )
        return
    declared = tuple(i.name for i in target.inputs)
    for source in then.inputs:
        if source.name not in declared:
            yield (
                source.location,
                (
                    f"unknown input {shorten(source.name)!r} of lifecycle "
                    f"{target.name!r}{_hint(source.name, declared)}"
                ),
            )
    given = {source.name for source in then.inputs}
    missing = [
        i.name
        for i in target.inputs
        if i.required and i.default is None and i.name not in given
    ]
    if missing:
        yield (
            then.location,
            (
                f"missing required input(s) of lifecycle {target.name!r}: "
                + ", ".join(missing)
            ),
        )


def _chain_back(
    targets: dict[str, set[str]], start: str, home: str
) -> tuple[str, ...] | None:
    """Return a path of chained lifecycles from ``start`` back to ``home``, if any."""
    paths: deque[tuple[str, ...]] = deque([(start,)])
    seen = {start}
    while paths:
        path = paths.popleft()
        if path[-1] == home:
            return path
        for target in sorted(targets[path[-1]]):
            if target not in seen:
                seen.add(target)
                paths.append((*path, target))
    return None


_CHECKS: tuple[Callable[[Lifecycle], Found], ...] = (
    _client_ref_sound,
    _one_initial,
    _states_declared,
    _terminal_is_final,
    _reach_terminal,
    _reachable_from_initial,
    _has_success,
    _schedule_sound,
    _requests_resolvable,
    _cancel_path_legal,
    _bodies_sound,
    _values_sound,
    _conditional_sound,
    _conditions_sound,
    _maps_sound,
    _replies_sound,
    _progress_sound,
)
_WARNINGS: tuple[Callable[[Lifecycle], Found], ...] = (
    _produced,
    _values_used,
    _endless_not_modified,
    _literal_stars,
    _error_codes_observed,
)
