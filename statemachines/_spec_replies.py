"""The spec model's reading of replies: conditions, observe rules, progress, errors."""

from __future__ import annotations

from typing import Literal

import attrs

from ._spec_base import loc as _loc

__all__ = [
    "Condition",
    "ErrorRule",
    "ErrorSource",
    "Errors",
    "ObserveRule",
    "Progress",
    "RetryBackoff",
    "Scalar",
]

Scalar = str | int | float | bool | None


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
