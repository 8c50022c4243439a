"""The auditable transition log: append-only, hash-chained, redacted records.

Every record names its job, the move, the trigger, the HTTP status, the raw
observed value, the spec's content hash, and the hash of the record before it,
so a removed, reordered or edited record breaks the chain. Two sinks take the
same records: JSON Lines (default; one ``write()`` of a whole line per record,
flushed) and SQLite (WAL, a commit per record). Secrets never reach disk: the
engine passes every entry through a :class:`Redactor` (secrets, the spec's
redact pointers and secret query parameters), and each sink blanks the
secrets it was given once more before hashing.

A job store keeps its own audit table, committed with each step and chained
twice (per writer and per job, see :func:`build_chained_record`); the readers
(:func:`read_records`, :func:`verify_log`, :func:`show_log`,
:func:`log_stats`) take a store's path or ``sqlite:///`` URL as well as a log.

The modules: ``_entry`` (what the engine hands over), ``_records`` (the record
on disk and its hash), ``_redact`` (Redactor), ``_format`` (telling a log
from a store and from other files), ``_sinks`` (JSON Lines and SQLite),
``_read`` (reading a log back), ``_store`` (reading a store's audit table),
``_specs`` (finding a record's spec), ``_problems`` (what verify reports),
``_legality`` (whether each move may follow), ``_verify`` (a log's chain),
``_verify_store`` (a store's chains), ``_describe`` and ``_report`` (show
and stats).
"""

from ._entry import AUDIT_KINDS, AuditEntry, spec_entry
from ._errors import AuditFormatError, AuditWriteError
from ._read import read_records
from ._records import GENESIS, build_chained_record, build_record, record_hash
from ._redact import Redactor
from ._report import LifecycleStats, StateTime, format_stats, log_stats, show_log
from ._sinks import AuditSink, JsonlAuditLog, SqliteAuditLog, open_audit
from ._verify import AuditProblem, VerifyReport, verify_log

__all__ = [
    "AUDIT_KINDS",
    "AuditEntry",
    "AuditFormatError",
    "AuditProblem",
    "AuditSink",
    "AuditWriteError",
    "GENESIS",
    "JsonlAuditLog",
    "LifecycleStats",
    "Redactor",
    "SqliteAuditLog",
    "StateTime",
    "VerifyReport",
    "build_chained_record",
    "build_record",
    "format_stats",
    "log_stats",
    "open_audit",
    "read_records",
    "record_hash",
    "show_log",
    "spec_entry",
    "verify_log",
]
