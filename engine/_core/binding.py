"""What the jobs of one (spec, lifecycle) share: derived once, read on every request.

A :class:`Binding` ties a lifecycle to where and how it talks: the base URL,
the credential (the only secret the core sees; never in a repr, a record or a
snapshot), the time scale, the redactor that knows the live secrets, and
everything the hot path must not recompute per job (header sets, the inputs a
job keeps after its submit, parsed templates).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from engine._core.redact import Redactor
from engine._core.wire import template_fields
from engine._errors import InputError
from statemachines import (
    Input,
    Lifecycle,
    LifecycleMachine,
    Request,
    Spec,
    Value,
    build_machine,
)

if TYPE_CHECKING:
    from engine._auth import Credential

__all__ = ["Binding", "bind"]


@attrs.define(eq=False, kw_only=True)
class Binding:
    """A lifecycle bound to a base URL, a credential and a time scale."""

    spec: Spec
    lifecycle: Lifecycle
    machine: LifecycleMachine
    #: Without a trailing slash.
    base_url: str
    #: Multiplies every duration the spec gives (pairs with simulators' time scale).
    scale: float
    #: ``(header, value)`` sent to the spec's own host only.
    auth: tuple[str, str] | None = attrs.field(repr=False)
    redactor: Redactor = attrs.field(repr=False)
    #: The binding of the items' lifecycle, when the lifecycle has items.
    item: Binding | None = None
    #: A credential placed per request by the driver (a fetched token, a
    #: signature), on requests to the spec's own host only; shared by every
    #: binding of the service. ``None`` for a static header (``auth``) or none.
    credential: Credential | None = attrs.field(default=None, repr=False)
    #: Other specs the lifecycle's ``then`` blocks start lifecycles of, by name.
    chained: Mapping[str, Spec] = attrs.field(factory=dict, repr=False)
    #: "scheme://netloc/" of the base URL: a URL starting with it is the spec's own.
    prefix: str = attrs.field(init=False, repr=False)
    #: ``(scheme, host, port)`` of the base URL.
    origin: tuple[str, str, int | None] = attrs.field(init=False, repr=False)
    #: The lifecycle's initial state and its terminal ones (read on every step).
    initial: str = attrs.field(init=False, repr=False)
    terminal: frozenset[str] = attrs.field(init=False, repr=False)
    declared: dict[str, Input] = attrs.field(init=False, repr=False)
    defaults: dict[str, Any] = attrs.field(init=False, repr=False)
    required: tuple[str, ...] = attrs.field(init=False, repr=False)
    #: Inputs sent in the query of every request (``"in": "query"``).
    query_inputs: tuple[Input, ...] = attrs.field(init=False, repr=False)
    #: Inputs sent as a header of every request (``"in": "header"``).
    header_inputs: tuple[Input, ...] = attrs.field(init=False, repr=False)
    #: Inputs a job keeps after its submit: those a later request can use.
    kept: frozenset[str] = attrs.field(init=False, repr=False)
    #: The defaults a job keeps (shared by every job adopted without inputs).
    kept_defaults: dict[str, Any] = attrs.field(init=False, repr=False)
    #: Where the spec can be loaded again: ``builtin:NAME`` or an absolute path.
    spec_source: str = attrs.field(init=False, repr=False)
    #: The lifecycle's ``values`` a later request uses, by the response they
    #: are read from (``submit``, ``last``, ``final``): only those are kept.
    values_from: dict[str, tuple[Value, ...]] = attrs.field(init=False, repr=False)
    #: Whether the items request sends its cursor in its body (``{cursor}``).
    body_cursor: bool = attrs.field(init=False, repr=False)
    _headers: dict[tuple[int, bool], tuple[tuple[str, str], ...]] = attrs.field(
        init=False, factory=dict, repr=False
    )

    def __attrs_post_init__(self) -> None:
        """Derive what every job of the binding reads."""
        parts = urlsplit(self.base_url)
        self.prefix = f"{parts.scheme}://{parts.netloc}/"
        self.origin = origin_of(self.base_url) or ("", "", None)
        self.initial = self.lifecycle.initial
        self.terminal = self.lifecycle.terminal_states
        inputs = self.lifecycle.inputs
        self.declared = {i.name: i for i in inputs}
        self.defaults = {i.name: i.default for i in inputs if i.default is not None}
        self.required = tuple(i.name for i in inputs if i.required)
        self.query_inputs = tuple(i for i in inputs if i.where == "query")
        self.header_inputs = tuple(i for i in inputs if i.where == "header")
        later = [self.lifecycle.poll.request]
        for block in (
            self.lifecycle.result,
            self.lifecycle.cancel,
            self.lifecycle.items,
            self.lifecycle.lookup,
        ):
            if block is not None:
                later.append(block.request)
        used = {name for request in later for name in template_fields(request)}
        self.values_from = {
            response: tuple(
                v
                for v in self.lifecycle.values
                if v.response == response and v.name in used
            )
            for response in ("submit", "last", "final")
        }
        items = self.lifecycle.items
        self.body_cursor = items is not None and "cursor" in template_fields(
            items.request
        )
        # A chained job may take an input of this one ({"input": NAME} in a
        # success state's then): kept until the job ends, as a template's are.
        passed_on = {
            source.input
            for state in self.lifecycle.states
            if state.then is not None
            for source in state.then.inputs
            if source.input is not None
        }
        self.kept = frozenset(
            i.name
            for i in inputs
            if i.where in ("path", "query", "header")
            or i.name in used
            or i.name in passed_on
        )
        self.kept_defaults = {k: v for k, v in self.defaults.items() if k in self.kept}
        source = self.spec.source
        if source and not source.startswith(("builtin:", "<")):
            # A file: absolute, so that a restart from another directory finds
            # it ("<document>" and other labels of unsaved specs stay as they are).
            source = os.path.abspath(source)  # noqa: PTH100 - a string in, a string out
        self.spec_source = source

    def keep(self, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return the inputs a job keeps after its submit (shared when they are the defaults)."""
        if inputs is self.defaults:
            return self.kept_defaults
        return {k: v for k, v in inputs.items() if k in self.kept}

    @property
    def name(self) -> str:
        """``service/lifecycle``, for messages."""
        return f"{self.spec.name}/{self.lifecycle.name}"

    def headers_for(
        self, request: Request, *, own: bool
    ) -> tuple[tuple[str, str], ...]:
        """Return the headers of ``request``: the credential only when ``own``.

        Built once per request block (blocks live as long as the spec this
        binding holds) and kind of destination.
        """
        key = (id(request), own)
        headers = self._headers.get(key)
        if headers is None:
            merged = {**dict(self.spec.service.headers), **dict(request.headers)}
            if own and self.auth is not None:
                merged[self.auth[0]] = self.auth[1]
            headers = self._headers[key] = tuple(merged.items())
        return headers

    def is_own(self, url: str) -> bool:
        """Whether ``url`` is on the spec's own origin (where the credential may go)."""
        # The prefix settles the common case without parsing: whatever follows
        # "scheme://host:port/" cannot change the origin.
        return url.startswith(self.prefix) or origin_of(url) == self.origin


def origin_of(url: str) -> tuple[str, str, int | None] | None:
    """Return ``(scheme, host, port)`` with default ports explicit, or ``None`` if invalid."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port out of range, an unclosed IPv6 bracket
        return None
    scheme = parts.scheme.lower()
    port = port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def bind(
    spec: Spec,
    lifecycle: str,
    *,
    base_url: str,
    scale: float,
    auth: tuple[str, str] | None,
    secrets: set[str],
    credential: Credential | None = None,
    chained: Mapping[str, Spec] | None = None,
) -> Binding:
    """Bind ``spec``'s ``lifecycle`` (and its items' lifecycle) to a base URL and credential.

    ``secrets`` is the engine's live set of secret values, shared by every
    redactor so that a credential read later is blanked everywhere.
    ``credential`` places a per-request credential (see :class:`Binding`);
    ``chained`` holds the other specs the lifecycle's ``then`` blocks name.

    Raises:
        InputError: if the spec has no such lifecycle.
    """
    try:
        found = spec.lifecycle(lifecycle)
    except KeyError as exc:
        raise InputError(str(exc.args[0])) from None
    item = None
    if found.items is not None:
        item = bind(
            spec,
            found.items.lifecycle,
            base_url=base_url,
            scale=scale,
            auth=auth,
            secrets=secrets,
            credential=credential,
        )
    return Binding(
        spec=spec,
        lifecycle=found,
        machine=build_machine(found),
        base_url=base_url.rstrip("/"),
        scale=scale,
        auth=auth,
        redactor=Redactor.for_spec(spec, secrets),
        item=item,
        credential=credential,
        chained=dict(chained or {}),
    )
