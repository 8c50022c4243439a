"""Mindee simulator: validation of the enqueue form and of query booleans."""

from __future__ import annotations

import json
import mimetypes
from urllib.parse import unquote, urlsplit

from starlette.datastructures import FormData, UploadFile

from ._models import (
    _FLAGS,
    _MAX_URL,
    _MIN_BASE64,
    _SOURCES,
    _is_uuid,
    _Options,
    _Submission,
)


class _FormErrors:
    """Collects ``errors[]`` items so that one 422 names every bad field."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, name: str, detail: str) -> None:
        self.items.append({"pointer": f"#/{name}", "detail": detail})

    def text(self, form: FormData, name: str) -> str | None:
        """Return the single text value of ``name``, or None (and an error)."""
        values = form.getlist(name)
        if not values:
            return None
        if len(values) > 1:
            self.add(name, f"{name} must be given once, not {len(values)} times")
            return None
        value = values[0]
        if not isinstance(value, str):
            self.add(name, f"{name} must be a text field, not a file")
            return None
        return value

    def flag(self, form: FormData, name: str) -> bool:
        value = self.text(form, name)
        if value is None or value == "false":
            return False
        if value == "true":
            return True
        self.add(name, f'{name} must be "true" or "false", not {value!r}')
        return False


def _parse_form(form: FormData, errors: _FormErrors) -> _Submission | None:
    model_id = errors.text(form, "model_id")
    if model_id is None:
        if "model_id" not in form:
            errors.add("model_id", "model_id is required")
    elif not _is_uuid(model_id):
        errors.add("model_id", "model_id must be a valid UUID")
    source = _parse_source(form, errors)
    webhook_ids = _parse_webhook_ids(form, errors)
    options = _parse_options(form, errors)
    alias = errors.text(form, "alias")
    if errors.items or model_id is None or source is None:
        return None
    filename, mime_type, url = source
    return _Submission(
        model_id=model_id,
        filename=filename,
        mime_type=mime_type,
        url=url,
        alias=alias,
        webhook_ids=webhook_ids,
        options=options,
    )


def _parse_source(
    form: FormData, errors: _FormErrors
) -> tuple[str | None, str, str | None] | None:
    """Return ``(filename, mime_type, url)`` of the one document source."""
    given = [name for name in _SOURCES if name in form]
    if len(given) != 1:
        got = f"; got {', '.join(given)}" if given else ""
        errors.add("file", f"exactly one of file, url or file_base64 is required{got}")
        return None
    if given[0] == "file":
        return _parse_file(form, errors)
    if given[0] == "url":
        return _parse_url(form, errors)
    encoded = errors.text(form, "file_base64")
    if encoded is None:
        return None
    if len(encoded) < _MIN_BASE64:
        errors.add(
            "file_base64", f"file_base64 must be at least {_MIN_BASE64} characters"
        )
        return None
    return None, "application/pdf", None


def _parse_file(
    form: FormData, errors: _FormErrors
) -> tuple[str | None, str, str | None] | None:
    parts = form.getlist("file")
    upload = parts[0]
    if len(parts) > 1 or not isinstance(upload, UploadFile):
        errors.add("file", "file must be one binary part")
        return None
    if not upload.size:
        errors.add("file", "file is empty")
        return None
    mime_type = upload.content_type
    if not mime_type or mime_type == "application/octet-stream":
        mime_type = mimetypes.guess_type(upload.filename or "")[0] or "application/pdf"
    return upload.filename, mime_type, None


def _parse_url(
    form: FormData, errors: _FormErrors
) -> tuple[str | None, str, str | None] | None:
    url = errors.text(form, "url")
    if url is None:
        return None
    parts = urlsplit(url)
    if len(url) > _MAX_URL:
        errors.add("url", f"url must be at most {_MAX_URL} characters")
        return None
    if parts.scheme != "https" or not parts.hostname:
        errors.add("url", "url must be an https URL")
        return None
    filename = unquote(parts.path.rsplit("/", 1)[-1]) or parts.hostname
    mime_type = mimetypes.guess_type(filename)[0] or "application/pdf"
    return filename, mime_type, url


def _parse_webhook_ids(form: FormData, errors: _FormErrors) -> tuple[str, ...]:
    ids: list[str] = []
    for value in form.getlist("webhook_ids"):
        if isinstance(value, str) and _is_uuid(value):
            ids.append(value)
        else:
            errors.add("webhook_ids", "each webhook_ids value must be a valid UUID")
    return tuple(ids)


def _parse_options(form: FormData, errors: _FormErrors) -> _Options:
    flags = {name: errors.flag(form, name) for name in _FLAGS}
    text_context = errors.text(form, "text_context")
    data_schema = errors.text(form, "data_schema")
    if data_schema is not None:
        try:
            schema = json.loads(data_schema)
        except ValueError:
            schema = None
        if not isinstance(schema, dict):
            errors.add("data_schema", "data_schema must be a JSON object")
    return _Options(text_context=text_context, data_schema=data_schema, **flags)


def _parse_bool(text: str) -> bool | None:
    """Parse a query boolean the way FastAPI does; None if it is not one."""
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    return None
