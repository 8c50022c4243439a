"""Spec model, loading, validation and machine building for statepoll.

Pure: no HTTP, no engine, no clock. The engine reads specs only through the
names below. Helpers dropped from this list (``content_hash``,
``join_pointer``, ``trigger_name``, ``IllegalTransitionError``) stay
importable from their modules.
"""

from .diagram import mermaid
from .errors import (
    Problem,
    SpecError,
    StatepollError,
    TemplateError,
    UnknownSpecError,
)
from .load import (
    builtin_names,
    builtin_path,
    load_builtin,
    load_document,
    load_spec,
)
from .machine import LifecycleMachine, build_machine
from .pointer import MISSING, resolve_pointer, split_pointer
from .schema import specs_dir
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
    Transition,
)
from .template import Template

__all__ = [
    "Auth",
    "Backoff",
    "Cancel",
    "ClientRef",
    "Condition",
    "Errors",
    "Filter",
    "Input",
    "Items",
    "Jitter",
    "Lifecycle",
    "LifecycleMachine",
    "Locator",
    "Lookup",
    "MISSING",
    "ObserveRule",
    "Outcome",
    "Paging",
    "Policy",
    "Poll",
    "Problem",
    "Request",
    "Result",
    "RetryAfter",
    "RetryBackoff",
    "Schedule",
    "Service",
    "Spec",
    "SpecError",
    "State",
    "StateSchedule",
    "StatepollError",
    "Submit",
    "Template",
    "TemplateError",
    "Transition",
    "UnknownSpecError",
    "build_machine",
    "builtin_names",
    "builtin_path",
    "load_builtin",
    "load_document",
    "load_spec",
    "mermaid",
    "resolve_pointer",
    "specs_dir",
    "split_pointer",
]
