"""Turn a schema-valid spec document into the frozen model (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .pointer import join_pointer
from .spec import (
    Auth,
    Backoff,
    Cancel,
    ClientRef,
    Condition,
    Errors,
    Filter,
    Input,
    Items,
    Jitter,
    Lifecycle,
    Locator,
    Lookup,
    ObserveRule,
    Outcome,
    Paging,
    Policy,
    Poll,
    Progress,
    Request,
    Result,
    RetryAfter,
    RetryBackoff,
    Schedule,
    Service,
    Spec,
    State,
    StateSchedule,
    Submit,
    Then,
    ThenInput,
    Transition,
)

Doc = Mapping[str, Any]
_MERGED = ("schedule", "errors", "policy")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _indexed(value: Any, at: str) -> list[tuple[str, str]]:
    """Pair each name of a string-or-list field with its own pointer."""
    if isinstance(value, list):
        return [(v, f"{at}/{i}") for i, v in enumerate(value)]
    return [(value, at)]


def _ptr(*tokens: str | int) -> str:
    return join_pointer(tokens)


def merged_lifecycle(defaults: Doc, lifecycle: Doc) -> dict[str, Any]:
    """Return ``lifecycle`` with the service defaults merged in, one level deep."""
    out = dict(lifecycle)
    for block in _MERGED:
        if block in defaults:
            out[block] = {**defaults[block], **lifecycle.get(block, {})}
    return out


def build_spec(document: Doc, *, source: str, content_hash: str, frozen: Doc) -> Spec:
    """Build a :class:`Spec` from a document the schema accepted.

    ``frozen`` is the read-only copy of ``document`` the spec keeps.
    """
    defaults = document.get("defaults", {})
    lifecycles = tuple(
        _lifecycle(
            name,
            merged_lifecycle(defaults, raw),
            _ptr("lifecycles", name),
            _schedule_origins(defaults, raw, name),
        )
        for name, raw in document["lifecycles"].items()
    )
    return Spec(
        service=_service(document["service"]),
        spec_version=document["spec_version"],
        lifecycles=lifecycles,
        source=source,
        content_hash=content_hash,
        document=frozen,
    )


def _schedule_origins(defaults: Doc, lifecycle: Doc, name: str) -> dict[str, str]:
    """Map each schedule key to the pointer of the block it came from."""
    origins = dict.fromkeys(defaults.get("schedule", {}), "/defaults/schedule")
    origins.update(
        {
            key: f"{_ptr('lifecycles', name)}/schedule"
            for key in lifecycle.get("schedule", {})
        }
    )
    return origins


def _service(raw: Doc) -> Service:
    auth = raw.get("auth")
    redact = raw.get("redact", {})
    return Service(
        name=raw["name"],
        title=raw.get("title", ""),
        description=raw.get("description", ""),
        base_url=raw["base_url"],
        base_url_env=raw.get("base_url_env"),
        auth=Auth(
            header=auth["header"],
            env=auth["env"],
            scheme=auth.get("scheme"),
            required=auth.get("required", True),
        )
        if auth
        else None,
        headers=tuple(raw.get("headers", {}).items()),
        max_in_flight=raw.get("max_in_flight", 16),
        redact_pointers=tuple(redact.get("pointers", ())),
        redact_query_params=tuple(redact.get("query_params", ())),
        docs=raw.get("docs", ""),
    )


def _lifecycle(name: str, raw: Doc, at: str, origins: dict[str, str]) -> Lifecycle:
    states = tuple(
        State(
            name=state_name,
            initial=s.get("initial", False),
            outcome=Outcome(s["outcome"]) if "outcome" in s else None,
            provisional=s.get("provisional", False),
            description=s.get("description", ""),
            then=_then(s["then"], f"{at}/states/{state_name}/then")
            if "then" in s
            else None,
            location=f"{at}/states/{state_name}",
        )
        for state_name, s in raw["states"].items()
    )
    transitions: list[Transition] = []
    for i, t in enumerate(raw["transitions"]):
        at_t = f"{at}/transitions/{i}"
        sources = _indexed(t["from"], f"{at_t}/from")
        for dest, to_at in _indexed(t["to"], f"{at_t}/to"):
            transitions.extend(
                Transition(
                    source=src,
                    dest=dest,
                    description=t.get("description", ""),
                    location=to_at,
                    source_location=from_at,
                )
                for src, from_at in sources
            )
    inputs = tuple(
        Input(
            name=input_name,
            where=i["in"],
            wire_name=i.get("name", input_name),
            type=i.get("type", "string"),
            required=i.get("required", False),
            default=i.get("default"),
            description=i.get("description", ""),
            location=f"{at}/inputs/{input_name}",
        )
        for input_name, i in raw.get("inputs", {}).items()
    )
    return Lifecycle(
        name=name,
        description=raw.get("description", ""),
        states=states,
        transitions=tuple(transitions),
        inputs=inputs,
        submit=_submit(raw["submit"], f"{at}/submit") if "submit" in raw else None,
        lookup=_lookup(raw["lookup"], f"{at}/lookup") if "lookup" in raw else None,
        poll=Poll(
            request=_request(raw["poll"]["request"], f"{at}/poll/request"),
            observe=tuple(
                _rule(r, f"{at}/poll/observe/{i}")
                for i, r in enumerate(raw["poll"]["observe"])
            ),
            progress=_progress(raw["poll"]["progress"], f"{at}/poll/progress")
            if "progress" in raw["poll"]
            else None,
            location=f"{at}/poll",
        ),
        schedule=_schedule(raw.get("schedule", {}), f"{at}/schedule", origins),
        result=_result(raw["result"], f"{at}/result") if "result" in raw else None,
        cancel=_cancel(raw["cancel"], f"{at}/cancel") if "cancel" in raw else None,
        errors=_errors(raw.get("errors", {})),
        policy=Policy(**raw.get("policy", {})),
        items=_items(raw["items"], f"{at}/items") if "items" in raw else None,
        item_only=raw.get("item_only", False),
        location=at,
    )


def _locators(raw: Any, at: str) -> tuple[Locator, ...]:
    if isinstance(raw, dict):
        return (_locator(raw, at),)
    return tuple(_locator(r, f"{at}/{i}") for i, r in enumerate(raw))


def _locator(raw: Doc, at: str) -> Locator:
    return Locator(
        pointer=raw.get("pointer"),
        header=raw.get("header"),
        pattern=raw.get("pattern"),
        response=raw.get("response", "last"),
        location=at,
    )


def _request(raw: Doc, at: str) -> Request:
    return Request(
        method=raw.get("method", "GET"),
        path=raw.get("path"),
        url=_locators(raw["url"], f"{at}/url") if "url" in raw else (),
        query=tuple(raw.get("query", {}).items()),
        headers=tuple(raw.get("headers", {}).items()),
        follow_redirects=raw.get("follow_redirects", False),
        expect_status=tuple(raw.get("expect_status", ())),
        location=at,
    )


def _condition(raw: Doc, at: str) -> Condition:
    if "status" in raw:
        return Condition(
            kind="status", status=tuple(_as_list(raw["status"])), location=at
        )
    if "header" in raw:
        return Condition(kind="header", header=raw["header"], location=at)
    for kind in ("all", "any"):
        if kind in raw:
            children = tuple(
                _condition(c, f"{at}/{kind}/{i}") for i, c in enumerate(raw[kind])
            )
            return Condition(kind=kind, children=children, location=at)
    pointer = raw["pointer"]
    if "equals" in raw:
        return Condition(
            kind="equals", pointer=pointer, values=(raw["equals"],), location=at
        )
    if "in" in raw:
        return Condition(
            kind="in", pointer=pointer, values=tuple(raw["in"]), location=at
        )
    return Condition(kind="exists", pointer=pointer, exists=raw["exists"], location=at)


def _rule(raw: Doc, at: str) -> ObserveRule:
    return ObserveRule(
        when=_condition(raw["when"], f"{at}/when") if "when" in raw else None,
        state=raw.get("state"),
        pointer=raw.get("pointer"),
        mapping=tuple(raw.get("map", {}).items()),
        on_unknown=raw.get("on_unknown"),
        description=raw.get("description", ""),
        location=at,
    )


def _backoff(raw: Doc, at: str) -> Backoff:
    return Backoff(
        kind=raw["kind"],
        factor=raw.get("factor", 2.0),
        max_interval=raw.get("max_interval"),
        location=at,
    )


def _schedule(raw: Doc, at: str, origins: dict[str, str]) -> Schedule:
    def block(key: str) -> str:
        # A key merged in from defaults points into /defaults, where it is written.
        return origins.get(key, at)

    per_state_at = f"{block('per_state')}/per_state"
    per_state = tuple(
        StateSchedule(
            state=state,
            interval=s.get("interval"),
            deadline=s.get("deadline"),
            max_attempts=s.get("max_attempts"),
            backoff=_backoff(s["backoff"], f"{per_state_at}/{state}/backoff")
            if "backoff" in s
            else None,
            description=s.get("description", ""),
            location=f"{per_state_at}/{state}",
        )
        for state, s in raw.get("per_state", {}).items()
    )
    jitter = raw.get("jitter", {"kind": "none"})
    retry_after = raw.get("retry_after", {})
    return Schedule(
        initial_delay=raw.get("initial_delay", 0.0),
        interval=raw.get("interval", 5.0),
        backoff=_backoff(raw["backoff"], f"{block('backoff')}/backoff")
        if "backoff" in raw
        else Backoff(),
        jitter=Jitter(kind=jitter["kind"], ratio=jitter.get("ratio", 0.1)),
        max_attempts=raw.get("max_attempts"),
        deadline=raw.get("deadline"),
        retry_after=RetryAfter(
            honour=retry_after.get("honour", True),
            min=retry_after.get("min", 0.0),
            max=retry_after.get("max", 300.0),
        ),
        per_state=per_state,
        location=at,
        key_locations=tuple((key, f"{block(key)}/{key}") for key in raw),
    )


def _errors(raw: Doc) -> Errors:
    defaults = Errors()
    backoff = raw.get("retry_backoff", {})
    return Errors(
        retry_status=tuple(raw.get("retry_status", defaults.retry_status)),
        fatal_status=tuple(raw.get("fatal_status", defaults.fatal_status)),
        code_pointers=tuple(_as_list(raw["code_pointer"]))
        if "code_pointer" in raw
        else (),
        message_pointers=tuple(_as_list(raw["message_pointer"]))
        if "message_pointer" in raw
        else (),
        retry_budget=raw.get("retry_budget", defaults.retry_budget),
        retry_backoff=RetryBackoff(
            initial=backoff.get("initial", 1.0),
            factor=backoff.get("factor", 2.0),
            max=backoff.get("max", 60.0),
        ),
        timeout=raw.get("timeout", defaults.timeout),
    )


def _submit(raw: Doc, at: str) -> Submit:
    ref = raw.get("client_ref")
    return Submit(
        request=_request(raw["request"], f"{at}/request"),
        body=raw.get("body", "json"),
        job_id=_locators(raw["job_id"], f"{at}/job_id"),
        observe=raw.get("observe", False),
        retry_status=tuple(raw.get("retry_status", ())),
        client_ref=ClientRef(
            input=ref.get("input"),
            header=ref.get("header"),
            location=f"{at}/client_ref",
        )
        if ref is not None
        else None,
        location=at,
    )


def _lookup(raw: Doc, at: str) -> Lookup:
    return Lookup(
        request=_request(raw["request"], f"{at}/request"),
        job_id=_locators(raw["job_id"], f"{at}/job_id"),
        not_found_status=tuple(raw.get("not_found_status", (404,))),
        observe=raw.get("observe", True),
        location=at,
    )


def _then(raw: Doc, at: str) -> Then:
    return Then(
        lifecycle=raw["lifecycle"],
        spec=raw.get("spec"),
        inputs=tuple(
            ThenInput(
                name=name,
                pointer=source.get("pointer"),
                source=source.get("from", "result"),
                input=source.get("input"),
                value=source.get("value"),
                has_value="value" in source,
                location=f"{at}/inputs/{name}",
            )
            for name, source in raw.get("inputs", {}).items()
        ),
        description=raw.get("description", ""),
        location=at,
    )


def _progress(raw: Doc, at: str) -> Progress:
    return Progress(
        pointer=raw.get("pointer"),
        max_value=raw.get("max"),
        done=raw.get("done"),
        total=raw.get("total"),
        location=at,
    )


def _result(raw: Doc, at: str) -> Result:
    on = tuple(Outcome(o) for o in raw.get("on", ["success"]))
    return Result(request=_request(raw["request"], f"{at}/request"), on=on, location=at)


def _cancel(raw: Doc, at: str) -> Cancel:
    return Cancel(
        request=_request(raw["request"], f"{at}/request"),
        from_states=tuple(raw["from"]),
        leads_to=tuple(raw["leads_to"]),
        observe=raw.get("observe", True),
        refused_status=tuple(raw.get("refused_status", ())),
        location=at,
    )


def _items(raw: Doc, at: str) -> Items:
    paging = raw["paging"]
    return Items(
        lifecycle=raw["lifecycle"],
        request=_request(raw["request"], f"{at}/request"),
        items_pointer=raw["items_pointer"],
        id_pointer=raw["id_pointer"],
        paging=Paging(
            kind=paging["kind"],
            next_pointers=tuple(_as_list(paging["next_pointer"]))
            if "next_pointer" in paging
            else (),
            cursor_param=paging.get("cursor_param"),
            page_size_param=paging.get("page_size_param"),
            page_size=paging.get("page_size"),
            skip_param=paging.get("skip_param"),
            top_param=paging.get("top_param"),
            max_pages=paging.get("max_pages", 1000),
            location=f"{at}/paging",
        ),
        filters=tuple(
            Filter(
                name=n,
                param=f["param"],
                format=f.get("format", "single"),
                description=f.get("description", ""),
            )
            for n, f in raw.get("filters", {}).items()
        ),
        refresh=raw.get("refresh", "each_poll"),
        location=at,
    )
