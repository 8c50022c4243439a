"""Chained lifecycles (a success state's ``then``): what the next job is given, and its name.

A job that ends in a success state with ``then`` starts a job of another
lifecycle of the same spec (upload → batch → download). Its inputs come from
the first job's result or final response (JSON pointers), its kept inputs, or
fixed values; the defaults of the next lifecycle fill the rest. A required
input that ends up without a value stops the chain: the first job ends with
an error saying which, rather than a second job that cannot be submitted.

The next job's key derives from the first job's, so that the chain is one
family of keys (``K``, ``K~2``, ``K~3``) and a driver that takes the step
over after a crash names the same job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

import attrs

from engine._core.state import JobState
from statemachines import MISSING, Lifecycle, Then, resolve_pointer

__all__ = [
    "MAX_CHAIN",
    "ChainError",
    "Chained",
    "chain_inputs",
    "chain_key",
    "client_ref_for",
]

#: The most jobs one chain may have: chains through other specs can loop,
#: which no check of one spec can see.
MAX_CHAIN: Final = 16


class ChainError(ValueError):
    """The chained job cannot be given what it needs (a value not found)."""


@attrs.frozen(kw_only=True)
class Chained:
    """The job a step starts: its spec (by name) and lifecycle, key and submit inputs."""

    spec: str
    lifecycle: str
    key: str
    inputs: Mapping[str, Any]


def chain_key(job: JobState) -> str:
    """Return the key of the job ``job`` starts: the chain's first key, ``~``, its place."""
    first = job.chain[0].key if job.chain else job.key
    return f"{first}~{len(job.chain) + 2}"


def client_ref_for(key: str) -> str:
    """Return a chained job's client reference: derived from its key, the same after a crash."""
    return "sp" + hashlib.sha256(key.encode()).hexdigest()[:22]


def chain_inputs(then: Then, target: Lifecycle, job: JobState) -> dict[str, Any]:
    """Return the submit inputs of the job ``then`` starts after ``job``.

    Raises:
        ChainError: a pointer found nothing, an input of ``job`` is not kept,
            or a required input of ``target`` has no value.
    """
    values: dict[str, Any] = {}
    for source in then.inputs:
        if source.has_value:
            value = source.value
        elif source.input is not None:
            value = job.inputs.get(source.input)
            if value is None:
                msg = (
                    f"this job has no input {source.input!r} to give as {source.name!r}"
                )
                raise ChainError(msg)
        else:
            document = job.result if source.source == "result" else job.response
            pointer = source.pointer or ""
            value = resolve_pointer(document, pointer, MISSING)
            if value is MISSING:
                msg = f"no value at {pointer!r} in the {source.source} for {source.name!r}"
                raise ChainError(msg)
        values[source.name] = value
    for spec_input in target.inputs:
        if values.get(spec_input.name) is not None:
            continue
        if spec_input.default is not None:
            values[spec_input.name] = spec_input.default
        elif spec_input.required:
            msg = f"no value for the required input {spec_input.name!r}"
            raise ChainError(msg)
    # A null is no value, as for a caller's inputs.
    return {name: value for name, value in values.items() if value is not None}
