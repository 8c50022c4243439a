"""Build the requests: the blocks that send one, their locators, bodies and values.

Submit, lookup, result, cancel and items each hold a request; ``_build``
assembles them into the lifecycle.
"""

from __future__ import annotations

from typing import Any

from ._build_base import Doc, as_list
from ._build_replies import condition
from ._document import freeze
from .spec import (
    Body,
    Cancel,
    ClientRef,
    Conditional,
    Filter,
    Items,
    Locator,
    Lookup,
    Outcome,
    Paging,
    Request,
    Result,
    Submit,
    Value,
)

__all__ = [
    "cancel",
    "conditional",
    "items",
    "locators",
    "lookup",
    "request",
    "result",
    "submit",
    "values",
]


def locators(raw: Any, at: str) -> tuple[Locator, ...]:
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


def request(raw: Doc, at: str) -> Request:
    return Request(
        method=raw.get("method", "GET"),
        path=raw.get("path"),
        url=locators(raw["url"], f"{at}/url") if "url" in raw else (),
        query=tuple(raw.get("query", {}).items()),
        headers=tuple(raw.get("headers", {}).items()),
        follow_redirects=raw.get("follow_redirects", False),
        expect_status=tuple(raw.get("expect_status", ())),
        location=at,
        body=_body(raw["body"], f"{at}/body") if "body" in raw else None,
    )


def _body(raw: Doc, at: str) -> Body:
    if "json" in raw:
        return Body(kind="json", template=freeze(raw["json"]), location=f"{at}/json")
    return Body(kind="form", template=freeze(raw["form"]), location=f"{at}/form")


def conditional(raw: Doc, at: str) -> Conditional | None:
    given = raw.get("conditional", False)
    if given is False:
        return None
    if given is True:
        return Conditional(location=at)
    return Conditional(
        etag=given.get("etag", True),
        last_modified=given.get("last_modified", True),
        location=at,
    )


def values(raw: Doc, at: str) -> tuple[Value, ...]:
    return tuple(
        Value(
            name=name,
            pointer=v.get("pointer"),
            header=v.get("header"),
            pattern=v.get("pattern"),
            response=v.get("response", "last"),
            description=v.get("description", ""),
            location=f"{at}/{name}",
        )
        for name, v in raw.items()
    )


def submit(raw: Doc, at: str) -> Submit:
    ref = raw.get("client_ref")
    return Submit(
        request=request(raw["request"], f"{at}/request"),
        body=raw.get("body", "json"),
        job_id=locators(raw["job_id"], f"{at}/job_id"),
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


def lookup(raw: Doc, at: str) -> Lookup:
    return Lookup(
        request=request(raw["request"], f"{at}/request"),
        job_id=locators(raw["job_id"], f"{at}/job_id"),
        not_found_status=tuple(raw.get("not_found_status", (404,))),
        observe=raw.get("observe", True),
        location=at,
    )


def result(raw: Doc, at: str) -> Result:
    on = tuple(Outcome(o) for o in raw.get("on", ["success"]))
    return Result(request=request(raw["request"], f"{at}/request"), on=on, location=at)


def cancel(raw: Doc, at: str) -> Cancel:
    return Cancel(
        request=request(raw["request"], f"{at}/request"),
        from_states=tuple(raw["from"]),
        leads_to=tuple(raw["leads_to"]),
        observe=raw.get("observe", True),
        refused_status=tuple(raw.get("refused_status", ())),
        location=at,
    )


def items(raw: Doc, at: str) -> Items:
    paging = raw["paging"]
    return Items(
        lifecycle=raw["lifecycle"],
        request=request(raw["request"], f"{at}/request"),
        items_pointer=raw["items_pointer"],
        id_pointer=raw["id_pointer"],
        paging=Paging(
            kind=paging["kind"],
            next_pointers=tuple(as_list(paging["next_pointer"]))
            if "next_pointer" in paging
            else (),
            cursor_param=paging.get("cursor_param"),
            page_size_param=paging.get("page_size_param"),
            page_size=paging.get("page_size"),
            skip_param=paging.get("skip_param"),
            top_param=paging.get("top_param"),
            max_pages=paging.get("max_pages", 1000),
            stop_when=condition(paging["stop_when"], f"{at}/paging/stop_when")
            if "stop_when" in paging
            else None,
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
