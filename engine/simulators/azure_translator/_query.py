"""Azure translator simulator: the API flavour of a request, and listing (paging, filters)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

import attrs
from starlette.datastructures import QueryParams
from starlette.requests import Request

from engine.simulators._base import UUID_PATTERN

from ._models import (
    _DIGITS,
    _FILTERS,
    _INT32,
    _NEW_PREFIX,
    _ORDER,
    _PAGING,
    _V1_PREFIXES,
    API_VERSIONS,
    MAX_PAGE_SIZE,
    PAGE_SIZE,
    STATUSES,
    _AzureError,
    _bad_param,
)


@attrs.frozen(kw_only=True)
class _Api:
    """The API flavour a request used."""

    version: str

    @property
    def legacy(self) -> bool:
        """Whether this is v1.0/v1.1 (``$`` names, ``@nextLink``)."""
        return self.version in _V1_PREFIXES

    @property
    def prefix(self) -> str:
        """Path prefix of this flavour."""
        return _V1_PREFIXES.get(self.version, _NEW_PREFIX)

    @property
    def next_field(self) -> str:
        """Name of the next-page field."""
        return "@nextLink" if self.legacy else "nextLink"

    @property
    def refusal_status(self) -> int:
        """Status of a DELETE on a batch that can no longer be cancelled."""
        return 409 if self.version == "2026-03-01" else 400

    def url(self, base: str, path: str, query: Sequence[tuple[str, str]] = ()) -> str:
        """Return the absolute URL of ``path`` under this flavour."""
        pairs = list(query)
        if not self.legacy:
            pairs.append(("api-version", self.version))
        text = urlencode(pairs, safe="$,:", quote_via=quote)
        return f"{base}{self.prefix}{path}" + (f"?{text}" if text else "")


def _api_of(request: Request) -> _Api:
    path: str = request.scope["path"]
    for version, prefix in _V1_PREFIXES.items():
        if path.startswith(prefix + "/"):
            return _Api(version=version)
    version = request.query_params.get("api-version", "")
    if version not in API_VERSIONS:
        msg = (
            f"The api-version {version!r} is not supported; "
            f"use one of {', '.join(API_VERSIONS)}."
        )
        raise _AzureError(400, "InvalidRequest", msg, "InvalidApiVersion")
    return _Api(version=version)


# -- listing --------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Listing:
    """Paging, ordering and filters of one list request."""

    top: int | None
    skip: int
    page_size: int | None
    descending: bool
    statuses: frozenset[str] | None
    ids: frozenset[str] | None
    start: dt.datetime | None
    end: dt.datetime | None
    #: Whether next links use ``$top``... rather than ``top``...
    dollar: bool
    #: The client's ordering and filter parameters, verbatim, for next links.
    carried: tuple[tuple[str, str], ...]

    def admits(self, row: _Row) -> bool:
        """Whether ``row`` passes every filter."""
        return (
            (self.statuses is None or row.status in self.statuses)
            and (self.ids is None or row.id in self.ids)
            and (self.start is None or row.created_at >= self.start)
            and (self.end is None or row.created_at <= self.end)
        )


@attrs.frozen
class _Row:
    """A listed item: what filtering and ordering need, and how to render it."""

    id: str
    created_at: dt.datetime
    status: str
    render: Callable[[], dict[str, Any]]


def _paging_keys(params: QueryParams) -> dict[str, str]:
    """Map each paging name used (``top``...) to the key the client spelt."""
    used: dict[str, str] = {}
    for key in params:
        name = key.removeprefix("$").lower()
        if name not in _PAGING:
            continue
        if name in used or len(params.getlist(key)) > 1:
            msg = f"{key} is given more than once."
            raise _bad_param(msg, key)
        used[name] = key
    return used


def _integer(params: QueryParams, key: str | None, low: int, high: int) -> int | None:
    if key is None:
        return None
    text = params[key]
    if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
        msg = f"{key} must be an integer from {low} to {high}, not {text!r}."
        raise _bad_param(msg, key)
    return int(text)


def _csv(params: QueryParams, *keys: str) -> tuple[str, list[str]] | None:
    present = [key for key in keys if key in params]
    if not present:
        return None
    values = [
        v.strip() for key in present for t in params.getlist(key) for v in t.split(",")
    ]
    return present[0], [v for v in values if v]


def _date(params: QueryParams, key: str) -> dt.datetime | None:
    text = params.get(key)
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        msg = f"{key} must be an ISO-8601 date-time, not {text!r}."
        raise _bad_param(msg, key) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _parse_listing(params: QueryParams, api: _Api) -> _Listing:
    keys = _paging_keys(params)
    top = _integer(params, keys.get("top"), 0, _INT32)
    skip = _integer(params, keys.get("skip"), 0, _INT32) or 0
    page_size = _integer(params, keys.get("maxpagesize"), 1, MAX_PAGE_SIZE)
    descending = True
    order_key = keys.get("orderby")
    if order_key is not None:
        match = _ORDER.fullmatch(params[order_key])
        if match is None:
            msg = "only createdDateTimeUtc asc or createdDateTimeUtc desc is supported."
            raise _bad_param(msg, order_key)
        descending = (match.group(1) or "asc").lower() == "desc"
    statuses = _csv(params, "statuses", "status")
    canonical = {status.lower(): status for status in STATUSES}
    if statuses is not None and any(s.lower() not in canonical for s in statuses[1]):
        msg = f"statuses must be among {', '.join(STATUSES)}."
        raise _bad_param(msg, statuses[0])
    ids = _csv(params, "ids")
    if ids is not None and not all(UUID_PATTERN.fullmatch(i) for i in ids[1]):
        msg = "every id must be a UUID."
        raise _bad_param(msg, "ids")
    carried = tuple(
        (key, value)
        for key, value in params.multi_items()
        if key in _FILTERS or key == order_key
    )
    return _Listing(
        top=top,
        skip=skip,
        page_size=page_size,
        descending=descending,
        statuses=None
        if statuses is None
        else frozenset(canonical[s.lower()] for s in statuses[1]),
        ids=None if ids is None else frozenset(i.lower() for i in ids[1]),
        start=_date(params, "createdDateTimeUtcStart"),
        end=_date(params, "createdDateTimeUtcEnd"),
        dollar=any(k.startswith("$") for k in keys.values()) if keys else api.legacy,
        carried=carried,
    )


def _page(
    rows: Iterable[_Row], listing: _Listing, api: _Api, base: str, path: str
) -> dict[str, Any]:
    """Filter, order, skip, take ``top``, cut one page, and link the next one."""
    kept = sorted(
        (row for row in rows if listing.admits(row)),
        key=lambda row: (row.created_at, row.id),
        reverse=listing.descending,
    )
    wanted = kept[listing.skip :]
    if listing.top is not None:
        wanted = wanted[: listing.top]
    # The server page size is a ceiling: maxpagesize only ever makes it smaller.
    page = wanted[: min(listing.page_size or PAGE_SIZE, PAGE_SIZE)]
    body: dict[str, Any] = {"value": [row.render() for row in page]}
    left = len(wanted) - len(page)
    if left > 0:
        p = "$" if listing.dollar else ""
        query = [(f"{p}skip", str(listing.skip + len(page))), (f"{p}top", str(left))]
        if listing.page_size is not None:
            query.append((f"{p}maxpagesize", str(listing.page_size)))
        query.extend(listing.carried)
        body[api.next_field] = api.url(base, path, query)
    return body
