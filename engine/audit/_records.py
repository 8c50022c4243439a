"""Audit records: the record on disk built from an entry, and its hash.

Building a record is a pure step (entry, seq, previous hash, secrets → record),
so that a database store can write records inside its own transaction, with
the sequence and previous hash it read in that transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._entry import AuditEntry
from ._redact import map_strings, replace_secrets, secret_forms

#: ``prev`` of the first record.
GENESIS: Final = "sha256:" + "0" * 64

#: Containers nested deeper than this (counted from the record) are replaced
#: by a marker: the engine caps bodies at 256 levels, and json's encoder and
#: decoder recurse, so a deeper value could be written but never read back.
MAX_RECORD_DEPTH: Final = 320


def canonical_json(value: Any) -> str:
    """Return the canonical JSON of ``value``: sorted keys, no spaces, UTF-8 text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(text: str) -> str:
    """Return ``sha256:<hex>`` of ``text`` in UTF-8 (records and specs hash alike)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_hash(record: Mapping[str, Any]) -> str:
    """Return the hash of a record: sha256 of its canonical JSON without ``hash``."""
    return content_digest(
        canonical_json({k: v for k, v in record.items() if k != "hash"})
    )


def utc_now() -> str:
    """Return the current UTC time as a record writes it (microseconds, ``Z``)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_record(
    entry: AuditEntry,
    *,
    seq: int,
    prev: str,
    secrets: Iterable[str] = (),
    time: str | None = None,
) -> dict[str, Any]:
    """Return the record for ``entry`` at ``seq``, chained to ``prev``, hash included.

    Every string (keys included) has ``secrets`` blanked and any text that
    is not valid UTF-8 mended, other objects become their ``str()``, and
    values nested deeper than :data:`MAX_RECORD_DEPTH` are cut: so the record
    always serialises, and the hash covers exactly what a reader will parse.
    """
    fields: dict[str, Any] = {
        "kind": entry.kind,
        "service": entry.service,
        "lifecycle": entry.lifecycle,
        "job_id": entry.job_id,
        "item_id": entry.item_id,
        "from": entry.from_state,
        "to": entry.to_state,
        "trigger": entry.trigger,
        "attempt": entry.attempt,
        "http_status": entry.http_status,
        "observed": entry.observed,
        "spec_hash": entry.spec_hash,
        "spec": entry.spec_source,
        "detail": entry.detail,
    }
    known = secret_forms(secrets)

    def clean(text: str) -> str:
        return replace_secrets(_utf8(text), known) if known else _utf8(text)

    # seq, time and prev are the sink's own, never scrubbed: a short secret
    # that happened to occur in a hash would break the chain.
    record: dict[str, Any] = {"seq": seq, "time": utc_now() if time is None else time}
    record.update(map_strings(fields, clean, max_depth=MAX_RECORD_DEPTH))
    record["prev"] = prev
    record["hash"] = record_hash(record)
    return record


def build_chained_record(
    entry: AuditEntry,
    *,
    writer: str,
    wseq: int,
    wprev: str,
    job: str | None,
    jseq: int | None,
    jprev: str | None,
    time: str | None = None,
) -> dict[str, Any]:
    """Return the record for ``entry`` in a database store's audit table, hash included.

    Several drivers write one store at once, so there is no single chain
    without a global lock. Each record is in two chains instead: its
    writer's (``writer``/``wseq``/``wprev``: one process's connection, in
    commit order) and its job's (``job``/``jseq``/``jprev``: a job has one
    owner at a time, so its records are written in order). Removing,
    reordering or editing a record breaks one of them, and the job's head is
    kept in the job's own row. A ``spec`` record belongs to no job.
    """
    links: dict[str, Any] = {
        "writer": writer,
        "wseq": wseq,
        "wprev": wprev,
        "job": job,
        "jseq": jseq,
        "jprev": jprev,
    }
    record = build_record(entry, seq=0, prev="", time=time)
    del record["seq"], record["prev"], record["hash"]
    chained = {**links, **record}
    chained["hash"] = record_hash(chained)
    return chained


def parse_record(raw: str | bytes) -> Any:
    """Return the parsed record, or ``raw`` itself when it does not parse."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


def _utf8(text: str) -> str:
    # A lone surrogate ("\ud800" in a service's JSON) cannot be encoded: the
    # line could not be written, nor its hash computed. "?" stands in for it.
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
