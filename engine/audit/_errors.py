"""Errors of the audit package."""

from __future__ import annotations

from statemachines import StatepollError


class AuditWriteError(StatepollError, OSError):
    """A sink could not write a record; nothing of it was written."""


class AuditFormatError(StatepollError, ValueError):
    """A file given as an audit log is not one (a job store, another database, other data)."""
