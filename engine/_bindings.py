"""Specs and their bindings, as a driver finds them: by name, by path, or from a stored job.

Shared by ``AsyncEngine`` and ``Worker``: a lifecycle is bound once per
(spec, lifecycle, base URL), with the credential read from the environment
the spec names (and added to the live set of secrets every redactor blanks).
A job taken from a store names its spec by source (``builtin:NAME`` or an
absolute path) and content hash: the binding is made only when a spec with
that very hash is found (given to the driver, built in, or at the source).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from engine._auth import Credential, credential_for
from engine._core.binding import Binding, bind
from engine._core.state import JobState
from engine._errors import CredentialError, InputError
from statemachines import Auth, Spec, StatepollError, check_chain_target, load_spec

__all__ = ["Bindings", "SpecChangedError", "check_filters", "check_inputs"]


_EMPTY: Final[Mapping[str, Any]] = {}


class SpecChangedError(StatepollError, LookupError):
    """A stored job's spec cannot be found with the content hash the job was stored with."""


class Bindings:
    """Loads specs and binds lifecycles, each once."""

    def __init__(
        self,
        specs: Iterable[Spec | str],
        *,
        base_urls: Mapping[str, str],
        env: Mapping[str, str],
        time_scale: float | Mapping[str, float],
        secrets: set[str],
        on_service: Callable[[Spec], None],
    ) -> None:
        """Preload ``specs``; ``on_service`` is told of each service when first bound."""
        self.base_urls = dict(base_urls)
        self._env = env
        self._scale = time_scale
        self._secrets = secrets
        self._on_service = on_service
        self._specs: dict[str, Spec] = {}
        self._by_hash: dict[str, Spec] = {}
        self._bindings: dict[tuple[str, str, str], Binding] = {}
        # One per spec and base URL: every lifecycle of a service shares its token.
        self._credentials: dict[tuple[str, str], Credential] = {}
        self._bound: dict[tuple[object, str], Binding] = {}
        for spec in specs:
            self.spec(spec)

    def spec(self, spec: Spec | str) -> Spec:
        """Return the spec an object, a built-in name or a path names (loaded once)."""
        if isinstance(spec, Spec):
            self._specs.setdefault(spec.name, spec)
            self._by_hash.setdefault(spec.content_hash, spec)
            return spec
        cached = self._specs.get(spec)
        if cached is None:
            cached = load_spec(spec)
            self._specs[spec] = cached
            self._specs.setdefault(cached.name, cached)
            self._by_hash.setdefault(cached.content_hash, cached)
        return cached

    def binding(self, spec: Spec | str, lifecycle: str) -> Binding:
        """Return ``lifecycle`` of ``spec`` bound to its base URL and credential.

        Raises:
            InputError: the spec has no such lifecycle.
            CredentialError: the spec's credential variable is unset.
        """
        # Registering many jobs looks the same binding up again and again:
        # by the caller's own spec object or name first, then by content.
        quick = (spec if isinstance(spec, str) else id(spec), lifecycle)
        found = self._bound.get(quick)
        if found is None:
            found = self._bound[quick] = self._binding_of(self.spec(spec), lifecycle)
        return found

    def for_stored(self, job: JobState) -> Binding:
        """Return the binding of a job taken from a store.

        The spec must have the hash the job was stored with: one given to the
        driver or built in, else the one at the job's recorded source. The
        job's base URL is used unless the driver was given one for the service.

        Raises:
            SpecChangedError: no spec with that hash is at hand.
            StatepollError: the spec at the source does not load.
        """
        spec = self._by_hash.get(job.spec_hash)
        if spec is None and job.spec_source:
            spec = self.spec(job.spec_source.removeprefix("builtin:"))
        if spec is None or spec.content_hash != job.spec_hash:
            msg = (
                f"{job.service}/{job.lifecycle} job {job.job_id or job.key}: no spec with "
                f"hash {job.spec_hash[:19]} (its file {job.spec_source or '?'} changed "
                "or is gone; give the driver that spec)"
            )
            raise SpecChangedError(msg)
        if job.base_url:
            self.base_urls.setdefault(spec.name, job.base_url)
        return self.binding(spec, job.lifecycle)

    def chained(self, b: Binding, spec: str, lifecycle: str) -> Binding:
        """Return the binding of the next job of a chain that ``b``'s job starts.

        A lifecycle of ``b``'s own spec is bound like ``b`` (its base URL);
        one of another spec (``spec`` names it) as that spec's jobs are.

        Raises:
            CredentialError: the spec's credential variable is unset.
        """
        if spec != b.spec.name:
            return self.binding(b.chained[spec], lifecycle)
        key = (b.spec.content_hash or b.spec.name, lifecycle, b.base_url)
        found = self._bindings.get(key)
        if found is None:
            found = self._bindings[key] = self._bind(b.spec, lifecycle, b.base_url)
        return found

    def _binding_of(self, loaded: Spec, lifecycle: str) -> Binding:
        service = loaded.service
        base = self.base_urls.get(service.name)
        if base is None and service.base_url_env:
            base = self._env.get(service.base_url_env) or None
        base = base or service.base_url
        key = (loaded.content_hash or loaded.name, lifecycle, base)
        found = self._bindings.get(key)
        if found is None:
            found = self._bindings[key] = self._bind(loaded, lifecycle, base)
        return found

    def _bind(self, spec: Spec, lifecycle: str, base_url: str) -> Binding:
        service = spec.service
        scale = self._scale
        if not isinstance(scale, (int, float)):
            scale = scale.get(service.name, 1.0)
        auth: tuple[str, str] | None = None
        credential: Credential | None = None
        if isinstance(service.auth, Auth):
            value = self._env.get(service.auth.env)
            if value:
                scheme = service.auth.scheme
                auth = (service.auth.header, f"{scheme} {value}" if scheme else value)
                self._secrets.add(value)
                self._secrets.add(auth[1])
            elif service.auth.required:
                raise CredentialError(service.name, service.auth.env)
        elif service.auth is not None:
            key = (spec.content_hash or spec.name, base_url)
            credential = self._credentials.get(key)
            if credential is None:
                credential = self._credentials[key] = credential_for(
                    service.name,
                    service.auth,
                    base_url=base_url,
                    env=self._env,
                    secrets=self._secrets,
                    scale=float(scale),
                )
        self._on_service(spec)
        return bind(
            spec,
            lifecycle,
            base_url=base_url,
            scale=float(scale),
            auth=auth,
            secrets=self._secrets,
            credential=credential,
            chained=self._chained_specs(spec, lifecycle),
        )

    def _chained_specs(self, spec: Spec, lifecycle: str) -> dict[str, Spec]:
        """Load and check the other specs ``lifecycle``'s ``then`` blocks start lifecycles of.

        Raises:
            InputError: a spec that cannot be found, or a ``then`` it cannot
                honour (no such lifecycle, no submit, required inputs not given).
        """
        found: dict[str, Spec] = {}
        for state in spec.lifecycle(lifecycle).states:
            then = state.then
            if then is None or then.spec is None or then.spec == spec.name:
                continue
            try:
                target = self.spec(then.spec)
            except StatepollError as exc:
                msg = f"{spec.name}: {then.location}/spec: cannot find spec {then.spec!r}: {exc}"
                raise InputError(msg) from None
            problems = check_chain_target(then, target)
            if problems:
                msg = f"{spec.name}: " + "; ".join(f"{at}: {m}" for at, m in problems)
                raise InputError(msg)
            found[then.spec] = target
        return found


def check_inputs(
    b: Binding, given: Mapping[str, Any], *, for_submit: bool
) -> dict[str, Any]:
    """Check the caller's inputs against the lifecycle's and fill in defaults.

    Every problem is reported at once: unknown names (with a did-you-mean)
    and every missing required input.

    Raises:
        InputError: naming what is wrong.
    """
    declared = b.declared
    if not given and not (for_submit and b.required):
        # The common case of adopting many jobs: every job shares one
        # read-only defaults dict instead of building its own.
        return b.defaults
    problems = []
    names = ", ".join(declared) or "none"
    for name in given:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown input {name!r}{hint}")
    missing = [
        name
        for name in b.required
        if for_submit and given.get(name) is None and declared[name].default is None
    ]
    if missing:
        problems.append("missing required input(s): " + ", ".join(missing))
    if problems:
        msg = f"{b.name}: " + "; ".join(problems) + f". Declared: {names}"
        raise InputError(msg)
    values: dict[str, Any] = {}
    for name, spec_input in declared.items():
        if given.get(name) is not None:
            values[name] = given[name]
        elif spec_input.default is not None:
            values[name] = spec_input.default
    return values or dict(_EMPTY)


def check_filters(b: Binding, filters: Mapping[str, Any] | None) -> None:
    """Refuse unknown item filters before anything is sent (a typo must not widen a listing)."""
    if not filters:
        return
    items = b.lifecycle.items
    if items is None:
        msg = f"{b.name} has no items to filter"
        raise InputError(msg)
    declared = [f.name for f in items.filters]
    for name in filters:
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ";"
            names = ", ".join(declared)
            msg = f"unknown item filter {name!r} for {b.name}{hint} Declared: {names}"
            raise InputError(msg)
