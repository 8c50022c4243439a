"""The frozen model of a spec: what a loaded JSON spec means, with no I/O.

Every block remembers where it sits in its file (``location``, a JSON pointer;
not part of equality) so that semantic checks can point at the bad field.
Collections are tuples so that instances hash and cannot change behind the
engine's back. Build specs with :func:`statemachines.load_spec`.

The blocks live in private modules by area, re-exported here: states and
chains in ``_spec_states``, requests in ``_spec_requests``, replies and errors
in ``_spec_replies``, timing in ``_spec_schedule``, credentials in
``_spec_auth``. This module holds what ties them together: the lifecycle, the
service and the spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._document import FrozenDict
from ._spec_auth import Auth, AwsSigV4, OAuth2ClientCredentials
from ._spec_base import loc as _loc
from ._spec_replies import (
    Condition,
    ErrorRule,
    Errors,
    ErrorSource,
    ObserveRule,
    Progress,
    RetryBackoff,
    Scalar,  # noqa: F401 - not in __all__, yet importable from here as before
)
from ._spec_requests import (
    Body,
    Cancel,
    ClientRef,
    Conditional,
    Filter,
    Input,
    Items,
    Locator,
    Lookup,
    Paging,
    Poll,
    Request,
    Result,
    Submit,
    Value,
)
from ._spec_schedule import (
    Backoff,
    Jitter,
    RetryAfter,
    Schedule,
    StateSchedule,
    WaitHint,
)
from ._spec_states import Outcome, State, Then, ThenInput, Transition
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


@attrs.frozen(kw_only=True)
class Policy:
    """What to do with observations the lifecycle does not allow."""

    illegal_transition: Literal["reject", "fail"] = "reject"
    unknown_state: Literal["reject", "fail"] = "reject"
    foreign_links: Literal["refuse", "anonymous"] = "refuse"
    skipped_states: Literal["infer", "illegal"] = "infer"


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
    # Frozen, so one shared default is safe; ruff sees that only in its own module.
    schedule: Schedule = Schedule()  # noqa: RUF009
    result: Result | None = None
    cancel: Cancel | None = None
    errors: Errors = Errors()  # noqa: RUF009 - frozen, as schedule's
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
