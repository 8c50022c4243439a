"""The frozen model of a spec: what a loaded JSON spec means, with no I/O.

Every block remembers where it sits in its file (``location``, a JSON pointer;
not part of equality) so that semantic checks can point at the bad field.
Collections are tuples so that instances hash and cannot change behind the
engine's back. Build specs with :func:`statemachines.load_spec`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._document import FrozenDict
from .errors import Problem

__all__ = [
    "Auth",
    "AwsSigV4",
    "Backoff",
    "Body",
    "Cancel",
    "ClientRef",
    "Condition",
    "Conditional",
    "ErrorRule",
    "ErrorSource",
    "Errors",
    "Filter",
    "Input",
    "Items",
    "Jitter",
    "Lifecycle",
    "Locator",
    "Lookup",
    "OAuth2ClientCredentials",
    "ObserveRule",
    "Outcome",
    "Paging",
    "Policy",
    "Poll",
    "Progress",
    "Request",
    "Result",
    "RetryAfter",
    "RetryBackoff",
    "Schedule",
    "Service",
    "Spec",
    "State",
    "StateSchedule",
    "Submit",
    "Then",
    "ThenInput",
    "Transition",
    "Value",
    "WaitHint",
]

Scalar = str | int | float | bool | None


def _loc() -> Any:
    # Where the block sits in its file; not part of equality, so two specs that
    # differ only in layout still compare equal.
    return attrs.field(default="", eq=False, repr=False)


class Outcome(enum.StrEnum):
    """How a terminal state ends a job."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    PARTIAL = "partial"


@attrs.frozen(kw_only=True)
class State:
    """A state of a lifecycle; terminal when it has an outcome."""

    name: str
    initial: bool = False
    outcome: Outcome | None = None
    provisional: bool = False
    description: str = ""
    then: Then | None = None
    location: str = _loc()

    @property
    def terminal(self) -> bool:
        """Whether the job ends here."""
        return self.outcome is not None


@attrs.frozen(kw_only=True)
class ThenInput:
    """Where one input of a chained job comes from: exactly one of the three.

    ``pointer`` reads this job's result (``source="response"``: its final
    poll response), ``input`` names one of this job's own inputs, ``value``
    is fixed (``has_value`` tells a fixed ``null`` from none).
    """

    name: str
    pointer: str | None = None
    source: Literal["result", "response"] = "result"
    input: str | None = None
    # JSON values (lists, objects) do not hash; equality still compares them.
    value: Any = attrs.field(default=None, hash=False)
    has_value: bool = False
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Then:
    """A chained lifecycle, started when a job ends in a success state.

    ``spec`` names another spec (by service name) whose lifecycle it is;
    ``None``: this spec's.
    """

    lifecycle: str
    spec: str | None = None
    inputs: tuple[ThenInput, ...] = ()
    description: str = ""
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Transition:
    """One legal move, ``source`` → ``dest``."""

    source: str
    dest: str
    description: str = ""
    #: Where the destination is named (``…/to`` or ``…/to/1``).
    location: str = _loc()
    #: Where the source is named (``…/from`` or ``…/from/0``).
    source_location: str = _loc()


@attrs.frozen(kw_only=True)
class Locator:
    """Where a value is in a response: a body pointer or a header (+ pattern)."""

    pointer: str | None = None
    header: str | None = None
    pattern: str | None = None
    response: Literal["last", "submit"] = "last"
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Body:
    """A request's body: a JSON value or form fields whose strings are templates.

    ``template`` is read-only JSON (a form's is an object of fields). A string
    that is one expression alone (``"{count}"``) is replaced by its value as
    it is, keeping its JSON type; any other string is a text template.
    """

    kind: Literal["json", "form"]
    # JSON values (objects, arrays) do not hash; equality still compares them.
    template: Any = attrs.field(hash=False)
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Request:
    """An HTTP request: a path template, a link from a response, or both."""

    method: str = "GET"
    path: str | None = None
    url: tuple[Locator, ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    follow_redirects: bool = False
    expect_status: tuple[int, ...] = ()
    location: str = _loc()
    body: Body | None = None

    def accepts(self, status: int) -> bool:
        """Whether ``status`` counts as success for this request."""
        if self.expect_status:
            return status in self.expect_status
        return 200 <= status < 300 or (
            not self.follow_redirects and 300 <= status < 400
        )


@attrs.frozen(kw_only=True)
class Condition:
    """A test on a response (``kind`` says which fields apply).

    ``header`` is a presence test (kind ``header``) or, for the value tests
    (``equals``, ``in``, ``exists``, ``lt``, ``le``, ``gt``, ``ge``), where the
    value is read instead of ``pointer``. ``match`` (``all``/``any``) makes
    ``*`` tokens of ``pointer`` stand for every element. Kind ``not`` negates
    its one child; kind ``error`` tests the service's error code: one of
    ``values``, or, with no values, whether the response is an error
    (``exists``).
    """

    kind: Literal[
        "status",
        "header",
        "equals",
        "in",
        "exists",
        "all",
        "any",
        "not",
        "lt",
        "le",
        "gt",
        "ge",
        "error",
    ]
    status: tuple[int, ...] = ()
    header: str | None = None
    pointer: str = ""
    values: tuple[Scalar, ...] = ()
    exists: bool = True
    children: tuple[Condition, ...] = ()
    match: Literal["all", "any"] | None = None
    location: str = _loc()


@attrs.frozen(kw_only=True)
class ObserveRule:
    """Maps a response to a state: fixed ``state`` when ``when`` holds, or a value map."""

    when: Condition | None = None
    state: str | None = None
    pointer: str | None = None
    mapping: tuple[tuple[str, str], ...] = ()
    on_unknown: Literal["reject", "fail", "skip"] | None = None
    description: str = ""
    #: Compare the value with the map's keys ignoring case (azure-core's rule).
    ignore_case: bool = False
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Backoff:
    """How the polling interval grows."""

    kind: Literal["fixed", "exponential"] = "fixed"
    factor: float = 2.0
    max_interval: float | None = None
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Jitter:
    """Randomness added to delays."""

    kind: Literal["none", "full", "proportional"] = "none"
    ratio: float = 0.1
    #: Full jitter draws from ``[min, delay]`` (Smithy's ``minDelay``), not ``[0, delay]``.
    min: float = 0.0


@attrs.frozen(kw_only=True)
class WaitHint:
    """A header other than ``Retry-After`` that says how long to wait (a rate-limit reset)."""

    header: str
    #: ``delta`` seconds, ``delta_ms`` milliseconds, ``epoch`` Unix seconds,
    #: ``retry_after`` seconds or an HTTP-date.
    kind: Literal["delta", "delta_ms", "epoch", "retry_after"]
    #: Only read when this holds (a reset matters when nothing is left).
    when: Condition | None = None
    description: str = ""
    location: str = _loc()


@attrs.frozen(kw_only=True)
class RetryAfter:
    """How ``Retry-After`` and the spec's other wait hints are honoured and clamped."""

    honour: bool = True
    min: float = 0.0
    max: float = 300.0
    hints: tuple[WaitHint, ...] = ()


@attrs.frozen(kw_only=True)
class StateSchedule:
    """Schedule overrides while a job is in one state."""

    state: str
    interval: float | None = None
    deadline: float | None = None
    max_attempts: int | None = None
    backoff: Backoff | None = None
    description: str = ""
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Schedule:
    """When to poll and when to give up."""

    initial_delay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    interval: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    backoff: Backoff = Backoff()
    jitter: Jitter = Jitter()
    max_attempts: int | None = None
    deadline: float | None = None
    retry_after: RetryAfter = RetryAfter()
    per_state: tuple[StateSchedule, ...] = ()
    location: str = _loc()
    #: Pointer of each key as written (a key may come from ``defaults``).
    key_locations: tuple[tuple[str, str], ...] = attrs.field(
        default=(), eq=False, repr=False
    )

    def where(self, key: str) -> str:
        """Return the pointer of ``key`` in its file (defaults included)."""
        return dict(self.key_locations).get(key, f"{self.location}/{key}")

    def for_state(self, state: str) -> StateSchedule | None:
        """Return the overrides for ``state``, if any."""
        for override in self.per_state:
            if override.state == state:
                return override
        return None


@attrs.frozen(kw_only=True)
class RetryBackoff:
    """Delays between transient retries."""

    initial: float = 1.0
    factor: float = 2.0
    max: float = 60.0


@attrs.frozen(kw_only=True)
class ErrorRule:
    """Classifies a response by a condition, before the status lists are consulted."""

    when: Condition
    #: ``observe``: read as an answer (a poll's by its observe rules).
    verdict: Literal["transient", "fatal", "observe"]
    description: str = ""
    location: str = _loc()


@attrs.frozen(kw_only=True)
class ErrorSource:
    """Where an error's code or message is: a body pointer, a header, or the body text.

    ``pattern`` cuts the value (its first group, else the whole match); alone,
    it searches the body's text (an XML ``<Code>``).
    """

    pointer: str | None = None
    header: str | None = None
    pattern: str | None = None
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Errors:
    """How failed requests are classified and retried."""

    retry_status: tuple[int, ...] = (429, 500, 502, 503, 504)
    fatal_status: tuple[int, ...] = (400, 401, 403, 404)
    code_pointers: tuple[str, ...] = ()
    message_pointers: tuple[str, ...] = ()
    retry_budget: int = 8
    retry_backoff: RetryBackoff = RetryBackoff()
    timeout: float = 30.0
    #: Tried in order before ``retry_status`` and ``fatal_status``.
    rules: tuple[ErrorRule, ...] = ()
    #: Tried after ``code_pointers`` (and ``message_pointers``).
    code_from: tuple[ErrorSource, ...] = ()
    message_from: tuple[ErrorSource, ...] = ()

    @property
    def reads_code(self) -> bool:
        """Whether the spec says where the service's error code is."""
        return bool(self.code_pointers or self.code_from)


@attrs.frozen(kw_only=True)
class Policy:
    """What to do with observations the lifecycle does not allow."""

    illegal_transition: Literal["reject", "fail"] = "reject"
    unknown_state: Literal["reject", "fail"] = "reject"
    foreign_links: Literal["refuse", "anonymous"] = "refuse"
    skipped_states: Literal["infer", "illegal"] = "infer"


@attrs.frozen(kw_only=True)
class Input:
    """A value the user supplies when submitting or adopting a job."""

    name: str
    where: Literal["path", "query", "header", "body", "form", "file", "none"]
    wire_name: str
    type: str = "string"
    required: bool = False
    # JSON values (lists, objects) do not hash; equality still compares them.
    default: Any = attrs.field(default=None, hash=False)
    description: str = ""
    location: str = _loc()


@attrs.frozen(kw_only=True)
class ClientRef:
    """Where the caller's reference for a submission goes: a named input, or a header."""

    input: str | None = None
    header: str | None = None
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Submit:
    """How a job is created."""

    request: Request
    body: Literal["json", "multipart", "form", "none"] = "json"
    job_id: tuple[Locator, ...]
    observe: bool = False
    retry_status: tuple[int, ...] = ()
    client_ref: ClientRef | None = None
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Lookup:
    """How a submission is found again by its client reference after a crash."""

    request: Request
    job_id: tuple[Locator, ...]
    not_found_status: tuple[int, ...] = (404,)
    observe: bool = True
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Conditional:
    """Conditional polling: which validators of the last answer are sent back.

    ``etag`` sends its ``ETag`` as ``If-None-Match``, ``last_modified`` its
    ``Last-Modified`` as ``If-Modified-Since``; a ``304 Not Modified`` then
    means "unchanged".
    """

    etag: bool = True
    last_modified: bool = True
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Poll:
    """How a job's state is read."""

    request: Request
    observe: tuple[ObserveRule, ...]
    progress: Progress | None = None
    location: str = _loc()
    conditional: Conditional | None = None


@attrs.frozen(kw_only=True)
class Progress:
    """How far along a job is, read from every poll response.

    Either ``pointer`` (a number out of ``max_value``, 100 when ``None``: a
    percent) or ``done`` and ``total`` (counts); the checks refuse any other
    combination.
    """

    pointer: str | None = None
    max_value: float | None = None
    done: str | None = None
    total: str | None = None
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Result:
    """How a finished job's result is fetched."""

    request: Request
    on: tuple[Outcome, ...] = (Outcome.SUCCESS,)
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Cancel:
    """How a job is cancelled, and the states that follows."""

    request: Request
    from_states: tuple[str, ...]
    leads_to: tuple[str, ...]
    observe: bool = True
    refused_status: tuple[int, ...] = ()
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Paging:
    """How the next page of an item collection is found."""

    kind: Literal["next_link", "cursor", "skip"]
    next_pointers: tuple[str, ...] = ()
    cursor_param: str | None = None
    page_size_param: str | None = None
    page_size: int | None = None
    skip_param: str | None = None
    top_param: str | None = None
    max_pages: int = 1000
    #: The page just read is the last when this holds (``has_more: false``).
    stop_when: Condition | None = None
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Filter:
    """A filter the user may apply to an item listing."""

    name: str
    param: str
    format: Literal["csv", "repeat", "single"] = "single"
    description: str = ""


@attrs.frozen(kw_only=True)
class Items:
    """A paginated sub-resource whose entries follow their own lifecycle."""

    lifecycle: str
    request: Request
    items_pointer: str
    id_pointer: str
    paging: Paging
    filters: tuple[Filter, ...] = ()
    refresh: Literal["each_poll", "at_end"] = "each_poll"
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Value:
    """A named value read from an earlier response, for later requests' templates.

    ``response`` says which: the ``submit`` response, the ``last`` one the
    observe rules read (a poll's, or a submit's, lookup's or cancel's that
    they read), or the ``final`` one (the answer that put the job in a
    terminal state). Read like a :class:`Locator`: a body pointer or a
    header, optionally cut by a pattern.
    """

    name: str
    pointer: str | None = None
    header: str | None = None
    pattern: str | None = None
    response: Literal["submit", "last", "final"] = "last"
    description: str = ""
    location: str = _loc()


@attrs.frozen(kw_only=True)
class Lifecycle:
    """One kind of job of a service: its states, moves, and how to drive it."""

    name: str
    description: str = ""
    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    inputs: tuple[Input, ...] = ()
    submit: Submit | None = None
    lookup: Lookup | None = None
    poll: Poll
    schedule: Schedule = Schedule()
    result: Result | None = None
    cancel: Cancel | None = None
    errors: Errors = Errors()
    policy: Policy = Policy()
    items: Items | None = None
    item_only: bool = False
    location: str = _loc()
    values: tuple[Value, ...] = ()

    def state(self, name: str) -> State:
        """Return the state called ``name``.

        Raises:
            KeyError: naming the declared states.
        """
        for state in self.states:
            if state.name == name:
                return state
        msg = f"lifecycle {self.name!r} has no state {name!r}; declared: " + ", ".join(
            s.name for s in self.states
        )
        raise KeyError(msg)

    @property
    def state_names(self) -> tuple[str, ...]:
        """Declared state names, in file order."""
        return tuple(s.name for s in self.states)

    @property
    def initial(self) -> str:
        """Name of the initial state (the first one marked initial)."""
        return next(s.name for s in self.states if s.initial)

    @property
    def terminal_states(self) -> frozenset[str]:
        """Names of the states that carry an outcome."""
        return frozenset(s.name for s in self.states if s.terminal)

    def input(self, name: str) -> Input | None:
        """Return the input called ``name``, if declared."""
        for item in self.inputs:
            if item.name == name:
                return item
        return None


@attrs.frozen(kw_only=True)
class Auth:
    """Credentials: an environment variable's value sent in one header."""

    header: str
    env: str
    scheme: str | None = None
    required: bool = True

    @property
    def kind(self) -> Literal["header"]:
        """The spec's ``auth.kind`` for this shape."""
        return "header"


@attrs.frozen(kw_only=True)
class OAuth2ClientCredentials:
    """Credentials: a bearer token from an OAuth2 token endpoint (RFC 6749 §4.4).

    The client id and secret are read from the environment variables named
    here, never from the spec. ``token_url`` is absolute, or a path on the
    service's own host (``/oauth/token``).
    """

    token_url: str
    client_id_env: str
    client_secret_env: str
    token_url_env: str | None = None
    scope: str | None = None
    #: Further form parameters of the token request (``audience``, ``resource``).
    params: tuple[tuple[str, str], ...] = ()
    client_auth: Literal["basic", "form"] = "basic"
    refresh_margin: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    location: str = _loc()

    @property
    def kind(self) -> Literal["oauth2_client_credentials"]:
        """The spec's ``auth.kind`` for this shape."""
        return "oauth2_client_credentials"


@attrs.frozen(kw_only=True)
class AwsSigV4:
    """Credentials: every request signed with AWS Signature Version 4.

    The keys come from ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
    ``AWS_SESSION_TOKEN``; the region from ``region_env`` when it is set,
    else ``region``.
    """

    #: The service's signing name (``execute-api``, ``batch``).
    service: str
    region: str | None = None
    region_env: str | None = None
    location: str = _loc()

    @property
    def kind(self) -> Literal["aws_sigv4"]:
        """The spec's ``auth.kind`` for this shape."""
        return "aws_sigv4"


@attrs.frozen(kw_only=True)
class Service:
    """The remote service a spec describes."""

    name: str
    title: str = ""
    description: str = ""
    base_url: str
    base_url_env: str | None = None
    auth: Auth | OAuth2ClientCredentials | AwsSigV4 | None = None
    headers: tuple[tuple[str, str], ...] = ()
    max_in_flight: int = 16
    redact_pointers: tuple[str, ...] = ()
    redact_query_params: tuple[str, ...] = ()
    docs: str = ""


@attrs.frozen(kw_only=True)
class Spec:
    """A loaded, checked spec: one service and its lifecycles."""

    service: Service
    spec_version: str
    lifecycles: tuple[Lifecycle, ...]
    #: Where it came from: a file path or ``builtin:NAME``.
    source: str = attrs.field(default="", eq=False)
    #: ``sha256:<hex>`` of the file's canonical JSON; recorded in every audit record.
    content_hash: str = ""
    #: The parsed JSON document the spec was built from, read-only; its
    #: canonical JSON hashes to ``content_hash``. Empty for a spec built in Python.
    document: Mapping[str, Any] = attrs.field(factory=FrozenDict, eq=False, repr=False)
    #: Problems that did not stop the spec from loading (severity "warning").
    warnings: tuple[Problem, ...] = attrs.field(default=(), eq=False, repr=False)

    @property
    def name(self) -> str:
        """The service name (``mindee``)."""
        return self.service.name

    @property
    def lifecycle_names(self) -> tuple[str, ...]:
        """Lifecycle names, in file order."""
        return tuple(lc.name for lc in self.lifecycles)

    def lifecycle(self, name: str) -> Lifecycle:
        """Return the lifecycle called ``name``.

        Raises:
            KeyError: naming the lifecycles the spec has.
        """
        for lifecycle in self.lifecycles:
            if lifecycle.name == name:
                return lifecycle
        msg = f"spec {self.name!r} has no lifecycle {name!r}; it has: " + ", ".join(
            self.lifecycle_names
        )
        raise KeyError(msg)

    def as_mapping(self) -> Mapping[str, Lifecycle]:
        """Return lifecycles by name (a fresh dict)."""
        return {lc.name: lc for lc in self.lifecycles}
