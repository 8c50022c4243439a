"""The spec model's requests: the blocks that send one, and what they send.

Submit, lookup, poll, result, cancel and items each hold a :class:`Request`;
inputs and values fill its templates.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs

from ._spec_base import loc as _loc
from ._spec_replies import Condition, ObserveRule, Progress
from ._spec_states import Outcome

__all__ = [
    "Body",
    "Cancel",
    "ClientRef",
    "Conditional",
    "Filter",
    "Input",
    "Items",
    "Locator",
    "Lookup",
    "Paging",
    "Poll",
    "Request",
    "Result",
    "Submit",
    "Value",
]


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
