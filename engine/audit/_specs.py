"""Finding the spec a record names, by its content hash, wherever it can be found.

In order: the specs the caller passed (``--spec``), the specs recorded in the
log itself (``spec`` records, indexed by content hash), the built-in specs,
and the record's ``spec`` source, as written and relative to the log's
directory. Whatever is found is used only if its content hash is the one the
record names, so a guess can never make a wrong spec pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from statemachines import (
    Lifecycle,
    LifecycleMachine,
    Spec,
    SpecError,
    StatepollError,
    build_machine,
    builtin_names,
    load_builtin,
    load_document,
    load_spec,
)

from ._records import canonical_json, content_digest
from ._redact import REDACTED

_BUILTIN: Final = "builtin:"

#: What is wrong with a ``spec`` record, and how wrong.
Verdict = tuple[Literal["tampered", "unchecked"], str]


class SpecFinder:
    """Find specs by content hash; remember what was found and why something was not."""

    def __init__(self, specs: Sequence[Spec], log_dir: Path) -> None:
        """Index ``specs``; relative spec sources are also looked for in ``log_dir``."""
        self._index: dict[str, Spec] = {spec.content_hash: spec for spec in specs}
        self._log_dir = log_dir
        self._builtins_loaded = False
        self._tried: dict[str, Spec | None] = {}  # candidate path -> what it held
        self._why_not: dict[str, str] = {}  # spec hash -> why it cannot be used
        self._machines: dict[tuple[str, str], LifecycleMachine] = {}

    def add_recorded(self, record: Mapping[str, Any]) -> Verdict | None:
        """Index the spec a ``spec`` record holds; return (problem kind, message) if unusable.

        The document must hash to the record's ``spec_hash`` (else "tampered",
        or "unchecked" when redaction visibly changed it), and must still
        load (else its records cannot be checked; that is said at them).
        """
        detail = record.get("detail")
        document = detail.get("document") if isinstance(detail, Mapping) else None
        named = str(record.get("spec_hash"))
        source = str(detail.get("source") or "") if isinstance(detail, Mapping) else ""
        if not isinstance(document, Mapping):
            return "tampered", "spec record without a spec document"
        try:
            spec = load_document(document, source=source or "<recorded>")
        except (StatepollError, ValueError, TypeError, RecursionError) as exc:
            # Whatever the reason, a document that does not load cannot be used.
            return self._unloadable(named, document, exc)
        if spec.content_hash != named:
            return self._mismatch(named, document)
        self._index.setdefault(named, spec)
        return None

    def _unloadable(
        self, named: str, document: Mapping[str, Any], exc: Exception
    ) -> Verdict | None:
        if _hash_of(document) != named:
            return self._mismatch(named, document)
        first = str(exc.problems[0]) if isinstance(exc, SpecError) else str(exc)
        self._why_not.setdefault(
            named, f"the spec recorded in the log no longer loads: {first}"
        )
        return None

    def _mismatch(self, named: str, document: Mapping[str, Any]) -> Verdict:
        if REDACTED in canonical_json(document):
            msg = f"recorded spec was redacted (a secret occurs in it); it cannot stand for {named}"
            self._why_not.setdefault(named, msg)
            return "unchecked", msg
        return "tampered", f"recorded spec does not hash to its spec_hash {named}"

    def find(self, spec_hash: str, source: str) -> Spec | None:
        """Return the spec whose content hash is ``spec_hash``, or ``None``."""
        spec = self._index.get(spec_hash)
        if spec is not None:
            return spec
        if not self._builtins_loaded:
            self._builtins_loaded = True
            for name in builtin_names():
                builtin = load_builtin(name)
                self._index.setdefault(builtin.content_hash, builtin)
            spec = self._index.get(spec_hash)
            if spec is not None:
                return spec
        for candidate in self._candidates(source):
            loaded = self._load(candidate)
            if loaded is not None and loaded.content_hash == spec_hash:
                self._index[spec_hash] = loaded
                return loaded
        return None

    def why_not(self, spec_hash: str, source: str) -> str:
        """Say why no spec with ``spec_hash`` could be used."""
        reason = self._why_not.get(spec_hash)
        if reason is not None:
            return f"no usable spec with hash {spec_hash}: {reason}"
        where = f" (recorded as {source!r}, not found or changed)" if source else ""
        return f"no spec with hash {spec_hash}{where}; pass it with --spec"

    def machine(self, spec: Spec, lifecycle: Lifecycle) -> LifecycleMachine:
        """Return the machine of ``lifecycle`` (built once per spec and lifecycle)."""
        key = (spec.content_hash, lifecycle.name)
        machine = self._machines.get(key)
        if machine is None:
            machine = self._machines[key] = build_machine(lifecycle)
        return machine

    def _candidates(self, source: str) -> list[str]:
        if not source:
            return []
        if source.startswith(_BUILTIN):
            return [source.removeprefix(_BUILTIN)]
        path = Path(source)
        found = [source]
        if not path.is_absolute():
            # Written relative to wherever the engine ran: the log usually
            # sits in that directory, or the spec was moved next to the log.
            found += [str(self._log_dir / path), str(self._log_dir / path.name)]
        return list(dict.fromkeys(found))

    def _load(self, candidate: str) -> Spec | None:
        if candidate not in self._tried:
            try:
                self._tried[candidate] = load_spec(candidate)
            except (StatepollError, OSError, RecursionError):
                self._tried[candidate] = None
        return self._tried[candidate]


def _hash_of(document: Mapping[str, Any]) -> str:
    return content_digest(canonical_json(document))
