"""Azure translator simulator: validation of a batch request (the POST body)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs

from ._models import _DIGITS, MAX_DOCS, _bad_body, _without_query

# -- the batch request ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Input:
    """One validated ``inputs[]`` entry and the outcome its source URL asks for."""

    source_url: str
    prefix: str
    suffix: str
    single_file: bool
    #: ``(targetUrl, language)`` per target.
    targets: tuple[tuple[str, str], ...]
    #: ``docs=N``; None: a seeded count.
    count: int | None
    #: ``faildocs=K``; None: a seeded mix.
    failing: int | None
    all_fail: bool
    #: innerError code of a batch refused up front, if this input asks for it.
    refusal: str | None

    def names(self, count: int) -> list[str]:
        """Return the names of this input's ``count`` documents, relative to it."""
        if self.single_file:
            return [urlsplit(self.source_url).path.rsplit("/", 1)[-1]]
        ending = self.suffix or ".docx"
        return [f"{self.prefix}doc-{n:03d}{ending}" for n in range(count)]

    def source_path(self, name: str) -> str:
        """Return the source document called ``name``."""
        if self.single_file:
            return _without_query(self.source_url)
        return f"{_without_query(self.source_url).rstrip('/')}/{name}"

    def target_path(self, target_url: str, name: str) -> str:
        """Return where the translation of the document ``name`` is written."""
        if self.single_file:
            return _without_query(target_url)
        return f"{_without_query(target_url).rstrip('/')}/{name}"


def _https(value: object, where: str) -> str:
    if not isinstance(value, str):
        msg = f"{where} is required and must be a string."
        raise _bad_body(msg)
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        msg = f"{where} must be an absolute https URL."
        raise _bad_body(msg)
    return value


def _optional(mapping: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = mapping.get(key)
    if value is not None and not isinstance(value, kind):
        msg = f"{where}.{key} must be a {kind.__name__}."
        raise _bad_body(msg)
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        msg = f"{where} is required and must be an object."
        raise _bad_body(msg)
    return value


def _parse_inputs(body: object) -> tuple[_Input, ...]:
    """Validate a POST body (PROTOCOLS 3.2) and return its inputs."""
    document = _object(body, "The request body")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        msg = "inputs is required and must be a non-empty array."
        raise _bad_body(msg)
    _optional(document, "options", dict, "body")
    return tuple(_parse_input(item, f"inputs[{i}]") for i, item in enumerate(inputs))


def _parse_input(item: object, where: str) -> _Input:
    entry = _object(item, where)
    source = _object(entry.get("source"), f"{where}.source")
    source_url = _https(source.get("sourceUrl"), f"{where}.source.sourceUrl")
    found = _optional(source, "filter", dict, f"{where}.source") or {}
    prefix = _optional(found, "prefix", str, f"{where}.source.filter") or ""
    suffix = _optional(found, "suffix", str, f"{where}.source.filter") or ""
    _optional(source, "language", str, f"{where}.source")
    if source.get("storageSource", "AzureBlob") != "AzureBlob":
        msg = f"{where}.source.storageSource must be AzureBlob."
        raise _bad_body(msg)
    storage_type = entry.get("storageType", "Folder")
    if storage_type not in ("Folder", "File"):
        msg = f"{where}.storageType must be Folder or File."
        raise _bad_body(msg)
    targets = entry.get("targets")
    if not isinstance(targets, list) or not targets:
        msg = f"{where}.targets is required and must be a non-empty array."
        raise _bad_body(msg)
    parsed = tuple(
        _parse_target(target, f"{where}.targets[{i}]")
        for i, target in enumerate(targets)
    )
    count, failing = _trigger_numbers(source_url, where)
    lowered = source_url.casefold()
    refusal = None
    if "sim-validation" in lowered:
        refusal = "InvalidDocumentAccessLevel"
    elif count == 0:
        refusal = "NoTranslatableText"
    single = storage_type == "File"
    return _Input(
        source_url=source_url,
        prefix=prefix,
        suffix=suffix,
        single_file=single,
        targets=parsed,
        count=count,
        failing=failing,
        all_fail="sim-failed" in lowered,
        refusal=refusal,
    )


def _parse_target(item: object, where: str) -> tuple[str, str]:
    target = _object(item, where)
    url = _https(target.get("targetUrl"), f"{where}.targetUrl")
    language = target.get("language")
    if not isinstance(language, str) or not language:
        msg = f"{where}.language is required and must be a language code."
        raise _bad_body(msg)
    _optional(target, "category", str, where)
    glossaries = _optional(target, "glossaries", list, where) or []
    for i, glossary in enumerate(glossaries):
        entry = _object(glossary, f"{where}.glossaries[{i}]")
        _https(entry.get("glossaryUrl"), f"{where}.glossaries[{i}].glossaryUrl")
        if not isinstance(entry.get("format"), str):
            msg = f"{where}.glossaries[{i}].format is required."
            raise _bad_body(msg)
    return url, language


def _trigger_numbers(source_url: str, where: str) -> tuple[int | None, int | None]:
    """Return ``docs=`` and ``faildocs=`` from the source URL's query."""
    query = parse_qs(urlsplit(source_url).query)
    numbers: list[int | None] = []
    for name in ("docs", "faildocs"):
        values = query.get(name)
        if values is None:
            numbers.append(None)
            continue
        if (
            len(values) != 1
            or not _DIGITS.fullmatch(values[0])
            or int(values[0]) > MAX_DOCS
        ):
            msg = f"{where}.source.sourceUrl: {name} must be an integer 0..{MAX_DOCS}."
            raise _bad_body(msg)
        numbers.append(int(values[0]))
    return numbers[0], numbers[1]
