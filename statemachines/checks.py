"""Semantic rules the schema cannot state, each reported as a Problem.

Every rule runs on every lifecycle and reports every violation, so one
``statepoll validate`` run lists all the mistakes of a file.

The rules live in private modules by theme: structure and states in
``_checks_states``, requests, bodies and values in ``_checks_requests``,
conditions, maps and errors in ``_checks_replies``, ``service.auth`` in
``_checks_auth``, progress and chains in ``_checks_chains``. This module runs
them: :func:`check_spec` and the ``_CHECKS`` and ``_WARNINGS`` registries.
"""

from __future__ import annotations

from collections.abc import Callable

from ._checks_auth import auth_sound
from ._checks_base import Found, name_hint
from ._checks_chains import chains_sound, check_chain_target, progress_sound
from ._checks_replies import (
    conditions_sound,
    error_codes_observed,
    literal_stars,
    maps_sound,
    replies_sound,
)
from ._checks_requests import (
    bodies_sound,
    client_ref_sound,
    conditional_sound,
    endless_not_modified,
    requests_resolvable,
    values_sound,
    values_used,
)
from ._checks_states import (
    cancel_path_legal,
    has_success,
    one_initial,
    produced,
    reach_terminal,
    reachable_from_initial,
    schedule_sound,
    states_declared,
    terminal_is_final,
)
from .errors import Problem, in_pointer_order, shorten
from .spec import Lifecycle, Spec

__all__ = ["check_chain_target", "check_spec"]


def check_spec(spec: Spec, file: str) -> list[Problem]:
    """Return every semantic problem of ``spec`` (empty when it is sound).

    Errors and warnings together, in pointer order; only errors stop a load.
    """
    names = spec.lifecycle_names
    problems: list[Problem] = []
    for lifecycle in spec.lifecycles:
        for check in _CHECKS:
            problems.extend(
                Problem(file, pointer, message) for pointer, message in check(lifecycle)
            )
        for check in _WARNINGS:
            problems.extend(
                Problem(file, pointer, message, severity="warning")
                for pointer, message in check(lifecycle)
            )
        if lifecycle.items is not None:
            target = lifecycle.items.lifecycle
            at = f"{lifecycle.items.location}/lifecycle"
            if target not in names:
                problems.append(
                    Problem(
                        file,
                        at,
                        f"unknown lifecycle {shorten(target)!r}{name_hint(target, names)}",
                    )
                )
            elif target == lifecycle.name:
                problems.append(
                    Problem(file, at, "a lifecycle cannot be its own items' lifecycle")
                )
    problems.extend(
        Problem(file, pointer, message, severity=severity)
        for pointer, message, severity in auth_sound(spec)
    )
    problems.extend(Problem(file, at, message) for at, message in chains_sound(spec))
    return in_pointer_order(problems)


_CHECKS: tuple[Callable[[Lifecycle], Found], ...] = (
    client_ref_sound,
    one_initial,
    states_declared,
    terminal_is_final,
    reach_terminal,
    reachable_from_initial,
    has_success,
    schedule_sound,
    requests_resolvable,
    cancel_path_legal,
    bodies_sound,
    values_sound,
    conditional_sound,
    conditions_sound,
    maps_sound,
    replies_sound,
    progress_sound,
)
_WARNINGS: tuple[Callable[[Lifecycle], Found], ...] = (
    produced,
    values_used,
    endless_not_modified,
    literal_stars,
    error_codes_observed,
)
