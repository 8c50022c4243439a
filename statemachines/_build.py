"""Turn a schema-valid spec document into the frozen model (pure, no I/O).

The spec, its service and auth, and each lifecycle with its states, chains,
schedule and errors are built here; the requests in ``_build_requests``, the
conditions and the other blocks that read replies in ``_build_replies``.
"""

from __future__ import annotations

from typing import Any

import attrs

from ._build_base import Doc, as_list
from ._build_replies import condition, error_sources, observe_rule, progress
from ._build_requests import (
    cancel,
    conditional,
    items,
    lookup,
    request,
    result,
    submit,
    values,
)
from .pointer import join_pointer
from .spec import (
    Auth,
    AwsSigV4,
    Backoff,
    ErrorRule,
    Errors,
    Input,
    Jitter,
    Lifecycle,
    OAuth2ClientCredentials,
    Outcome,
    Policy,
    Poll,
    RetryAfter,
    RetryBackoff,
    Schedule,
    Service,
    Spec,
    State,
    StateSchedule,
    Then,
    ThenInput,
    Transition,
    WaitHint,
)

_MERGED = ("schedule", "errors", "policy")


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
    lifecycles = tuple(
        _with_errors(lc, defaults, raw)
        for lc, raw in zip(lifecycles, document["lifecycles"].values(), strict=True)
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
        auth=_auth(auth) if auth else None,
        headers=tuple(raw.get("headers", {}).items()),
        max_in_flight=raw.get("max_in_flight", 16),
        redact_pointers=tuple(redact.get("pointers", ())),
        redact_query_params=tuple(redact.get("query_params", ())),
        docs=raw.get("docs", ""),
    )


def _auth(raw: Doc) -> Auth | OAuth2ClientCredentials | AwsSigV4:
    at = "/service/auth"
    kind = raw.get("kind", "header")
    if kind == "oauth2_client_credentials":
        return OAuth2ClientCredentials(
            token_url=raw["token_url"],
            token_url_env=raw.get("token_url_env"),
            client_id_env=raw["client_id_env"],
            client_secret_env=raw["client_secret_env"],
            scope=raw.get("scope"),
            params=tuple(raw.get("params", {}).items()),
            client_auth=raw.get("client_auth", "basic"),
            refresh_margin=raw.get("refresh_margin", 60.0),
            location=at,
        )
    if kind == "aws_sigv4":
        return AwsSigV4(
            service=raw["service"],
            region=raw.get("region"),
            region_env=raw.get("region_env"),
            location=at,
        )
    return Auth(
        header=raw["header"],
        env=raw["env"],
        scheme=raw.get("scheme"),
        required=raw.get("required", True),
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
        submit=submit(raw["submit"], f"{at}/submit") if "submit" in raw else None,
        lookup=lookup(raw["lookup"], f"{at}/lookup") if "lookup" in raw else None,
        poll=Poll(
            request=request(raw["poll"]["request"], f"{at}/poll/request"),
            observe=tuple(
                observe_rule(r, f"{at}/poll/observe/{i}")
                for i, r in enumerate(raw["poll"]["observe"])
            ),
            progress=progress(raw["poll"]["progress"], f"{at}/poll/progress")
            if "progress" in raw["poll"]
            else None,
            location=f"{at}/poll",
            conditional=conditional(raw["poll"], f"{at}/poll/conditional"),
        ),
        schedule=_schedule(raw.get("schedule", {}), f"{at}/schedule", origins),
        result=result(raw["result"], f"{at}/result") if "result" in raw else None,
        cancel=cancel(raw["cancel"], f"{at}/cancel") if "cancel" in raw else None,
        errors=_errors(raw.get("errors", {})),
        policy=Policy(**raw.get("policy", {})),
        items=items(raw["items"], f"{at}/items") if "items" in raw else None,
        item_only=raw.get("item_only", False),
        location=at,
        values=values(raw.get("values", {}), f"{at}/values"),
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
        jitter=Jitter(
            kind=jitter["kind"],
            ratio=jitter.get("ratio", 0.1),
            min=jitter.get("min", 0.0),
        ),
        max_attempts=raw.get("max_attempts"),
        deadline=raw.get("deadline"),
        retry_after=RetryAfter(
            honour=retry_after.get("honour", True),
            min=retry_after.get("min", 0.0),
            max=retry_after.get("max", 300.0),
            hints=_wait_hints(
                retry_after.get("hints", ()), f"{block('retry_after')}/retry_after"
            ),
        ),
        per_state=per_state,
        location=at,
        key_locations=tuple((key, f"{block(key)}/{key}") for key in raw),
    )


def _wait_hints(raw: Any, at: str) -> tuple[WaitHint, ...]:
    return tuple(
        WaitHint(
            header=h["header"],
            kind=h["kind"],
            when=condition(h["when"], f"{at}/hints/{i}/when") if "when" in h else None,
            description=h.get("description", ""),
            location=f"{at}/hints/{i}",
        )
        for i, h in enumerate(raw)
    )


def _with_errors(lifecycle: Lifecycle, defaults: Doc, raw: Doc) -> Lifecycle:
    """Add the error rules and error sources, each pointing where it is written.

    Built apart from :func:`_errors` because a key of ``errors`` may come
    from ``defaults``: its pointer is then in ``/defaults/errors``.
    """
    merged = merged_lifecycle(defaults, raw).get("errors", {})
    own = raw.get("errors", {})

    def at(key: str) -> str:
        block = f"{lifecycle.location}/errors" if key in own else "/defaults/errors"
        return f"{block}/{key}"

    if not any(key in merged for key in ("rules", "code_from", "message_from")):
        return lifecycle
    rules = tuple(
        ErrorRule(
            when=condition(r["when"], f"{at('rules')}/{i}/when"),
            verdict=r["as"],
            description=r.get("description", ""),
            location=f"{at('rules')}/{i}",
        )
        for i, r in enumerate(merged.get("rules", ()))
    )
    errors = attrs.evolve(
        lifecycle.errors,
        rules=rules,
        code_from=error_sources(merged.get("code_from", ()), at("code_from")),
        message_from=error_sources(merged.get("message_from", ()), at("message_from")),
    )
    return attrs.evolve(lifecycle, errors=errors)


def _errors(raw: Doc) -> Errors:
    defaults = Errors()
    backoff = raw.get("retry_backoff", {})
    return Errors(
        retry_status=tuple(raw.get("retry_status", defaults.retry_status)),
        fatal_status=tuple(raw.get("fatal_status", defaults.fatal_status)),
        code_pointers=tuple(as_list(raw["code_pointer"]))
        if "code_pointer" in raw
        else (),
        message_pointers=tuple(as_list(raw["message_pointer"]))
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
