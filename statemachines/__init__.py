"""Spec model, loading, validation and machine building for statepoll.

Pure: no HTTP, no engine, no clock. The engine reads specs only through the
names below.
"""

from .diagram import mermaid
from .errors import (
    IllegalTransitionError,
    Problem,
    SpecError,
    StatepollError,
    UnknownSpecError,
)
from .load import (
    builtin_names,
    builtin_path,
    content_hash,
    load_builtin,
    load_document,
    load_spec,
)
from .machine import LifecycleMachine, build_machine, trigger_name
from .pointer import MISSING, join_pointer, resolve_pointer, split_pointer
from .schema import specs_dir
from .spec import (
    Cancel,
    Condition,
    Errors,
    Input,
    Items,
    Lifecycle,
    Locator,
    ObserveRule,
    Outcome,
    Paging,
    Policy,
    Poll,
    Request,
    Result,
    Schedule,
    Service,
    Spec,
    State,
    StateSchedule,
    Submit,
    Transition,
)

__all__ = [
    "Cancel",
    "Condition",
    "Errors",
    "IllegalTransitionError",
    "Input",
    "Items",
    "Lifecycle",
    "LifecycleMachine",
    "Locator",
    "MISSING",
    "ObserveRule",
    "Outcome",
    "Paging",
    "Policy",
    "Poll",
    "Problem",
    "Request",
    "Result",
    "Schedule",
    "Service",
    "Spec",
    "SpecError",
    "State",
    "StateSchedule",
    "StatepollError",
    "Submit",
    "Transition",
    "UnknownSpecError",
    "build_machine",
    "builtin_names",
    "builtin_path",
    "content_hash",
    "join_pointer",
    "load_builtin",
    "load_document",
    "load_spec",
    "mermaid",
    "resolve_pointer",
    "specs_dir",
    "split_pointer",
    "trigger_name",
]
