"""Redaction for the audit log: the core's redactor (``engine._core.redact``), re-exported.

The redactor lives in the pure core because the core redacts service text
too; the audit package and its sinks use it from here.
"""

from engine._core.redact import (
    REDACTED,
    Redactor,
    map_strings,
    pointer_targets,
    replace_secrets,
    secret_forms,
)

__all__ = [
    "REDACTED",
    "Redactor",
    "map_strings",
    "pointer_targets",
    "replace_secrets",
    "secret_forms",
]
