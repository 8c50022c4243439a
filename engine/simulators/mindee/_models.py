"""Mindee simulator: constants, error objects, the fault profile and the job records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import attrs
from starlette.responses import JSONResponse

from engine.simulators._base import UUID_PATTERN, FaultProfile, Timeline

#: Product families served under ``/v2/products/{product}/``.
PRODUCTS: Final = ("extraction", "classification", "crop", "ocr", "split")

PROCESSING: Final = "Processing"
PROCESSED: Final = "Processed"
FAILED: Final = "Failed"

#: Share of jobs without a trigger that fail.
FAILURE_RATE: Final = 0.15
#: Seconds a job bound to succeed stays ``Processing`` (before ``time_scale``).
PROCESSED_AFTER: Final = (2.0, 6.0)
#: Seconds a job bound to fail stays ``Processing`` (before ``time_scale``).
FAILED_AFTER: Final = (1.0, 3.0)

# The SDK parses with datetime.fromisoformat, which on Python 3.10 only accepts
# 3- or 6-digit fractions; %f always gives 6, isoformat() drops them at .000000.
_TIMESTAMP: Final = "%Y-%m-%dT%H:%M:%S.%f"
_FLAGS: Final = ("rag", "raw_text", "polygon", "confidence")
_SOURCES: Final = ("file", "url", "file_base64")
_MAX_URL: Final = 2048
_MIN_BASE64: Final = 15
# Starlette caps text fields at 1 MiB by default; a base64 document is a text
# field, and a 1 MiB cap would refuse any file over ~750 KiB.
_MAX_FIELD_BYTES: Final = 64 * 1024 * 1024
_CONFIDENCES: Final = ("Certain", "High", "Medium", "Low")

# The failed-job error of PROTOCOLS 1.4, verbatim from the fixture.
_INVALID_FIELDS: Final[dict[str, Any]] = {
    "status": 422,
    "title": "Invalid fields in form",
    "code": "422-001",
    "detail": "One or more fields failed validation.",
    "errors": [{"pointer": "#/model_id", "detail": "model_id must be a valid UUID"}],
}
_INFERENCE_FAILED: Final[dict[str, Any]] = {
    "status": 500,
    "title": "Inference failed",
    "code": "500-012",
    "detail": "The inference could not be completed.",
    "errors": [],
}
_FAILURES: Final = {"422-001": _INVALID_FIELDS, "500-012": _INFERENCE_FAILED}


def _problem(
    status: int,
    title: str,
    code: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Return an RFC 9457-style error object in Mindee's shape."""
    return {
        "status": status,
        "title": title,
        "code": code,
        "detail": detail,
        "errors": errors or [],
    }


def _fault_error_body(status: int, reason: str) -> dict[str, Any]:
    return _problem(status, reason, f"{status}-000", reason)


#: What the fault injector needs to know about Mindee.
PROFILE: Final = FaultProfile(
    status_pointer="/job/status",
    unknown_value="Exploding",
    error_body=_fault_error_body,
    earlier={PROCESSED: PROCESSING, FAILED: PROCESSING},
)


def _error(
    status: int,
    title: str,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = _problem(status, title, code, detail, errors)
    return JSONResponse(body, status_code=status, headers=headers)


def _not_found(detail: str) -> JSONResponse:
    return _error(404, "Not Found", "404-001", detail)


def _bad_path_id(name: str) -> JSONResponse:
    item = {"pointer": f"#/{name}", "detail": f"{name} must be a valid UUID"}
    return _error(
        422,
        "Invalid path parameter",
        "422-001",
        f"{name} is not a UUID.",
        errors=[item],
    )


def _is_uuid(text: str) -> bool:
    return UUID_PATTERN.fullmatch(text) is not None


@attrs.frozen(kw_only=True)
class _Options:
    """Inference options sent with the enqueue form."""

    rag: bool = False
    raw_text: bool = False
    polygon: bool = False
    confidence: bool = False
    text_context: str | None = None
    data_schema: str | None = None


@attrs.frozen(kw_only=True)
class _Submission:
    """A valid enqueue form."""

    model_id: str
    filename: str | None
    mime_type: str
    url: str | None
    alias: str | None
    webhook_ids: tuple[str, ...]
    options: _Options

    def triggered(self) -> str | None:
        """Return the failure code or outcome the client asked for, if any."""
        texts = " ".join(t for t in (self.filename, self.url, self.alias) if t)
        texts = texts.casefold()
        if "sim-failed-invalid" in texts:
            return "422-001"
        if "sim-failed" in texts:
            return "500-012"
        if "sim-processed" in texts:
            return PROCESSED
        return None


@attrs.frozen(kw_only=True)
class _Job:
    """One enqueued document and its planned life."""

    id: str
    inference_id: str
    product: str
    legacy: bool
    submission: _Submission
    page_count: int
    #: Wall-clock time of the enqueue (UTC); later timestamps add clock time.
    created_at: dt.datetime
    timeline: Timeline
    #: ``code`` of the error object a failed job carries (a key of ``_FAILURES``).
    failure: str | None
