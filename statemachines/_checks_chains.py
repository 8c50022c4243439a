"""Semantic checks of progress and of chained lifecycles (``then``).

A progress block reads either a fraction or two counts; each ``then``
starts, from a success state, a lifecycle that can be submitted with what it
is given, and no chain comes back to where it began.
"""

from __future__ import annotations

from collections import deque

from ._checks_base import Found, name_hint
from .errors import shorten
from .spec import Lifecycle, Outcome, Spec, Then

__all__ = ["chains_sound", "check_chain_target", "progress_sound"]


def progress_sound(lifecycle: Lifecycle) -> Found:
    progress = lifecycle.poll.progress
    if progress is None:
        return
    at = progress.location
    counts = progress.done is not None or progress.total is not None
    if lifecycle.item_only:
        yield (
            at,
            (
                "progress is read on a job's polls; this lifecycle only tracks items "
                "(declare it on the job's lifecycle)"
            ),
        )
    if progress.pointer is not None and counts:
        yield at, "give pointer (a number out of max) or done and total, not both"
    elif progress.pointer is None and progress.max_value is not None:
        yield f"{at}/max", "max is what pointer's number is out of: add pointer"
    if progress.done is not None and progress.total is None:
        yield f"{at}/done", "done needs total beside it (the count in all)"
    if progress.total is not None and progress.done is None:
        yield f"{at}/total", "total needs done beside it (the count done)"
    if progress.done is not None and progress.done == progress.total:
        yield f"{at}/total", "done and total are the same pointer: always complete"
    if progress.pointer is None and not counts and progress.max_value is None:
        yield at, "give pointer (a number out of max, 100 by default) or done and total"


def chains_sound(spec: Spec) -> Found:
    """Each ``then`` starts a lifecycle that can be submitted with what it is given."""
    names = spec.lifecycle_names
    targets: dict[str, set[str]] = {name: set() for name in names}
    for lifecycle in spec.lifecycles:
        for state in lifecycle.states:
            then = state.then
            if then is None:
                continue
            if state.outcome is not Outcome.SUCCESS:
                what = state.outcome.value if state.outcome else "not terminal"
                yield (
                    then.location,
                    (
                        f"only a success state can start another lifecycle ({state.name}: "
                        f"{what})"
                    ),
                )
            yield from _then_inputs_own(lifecycle, then)
            if _elsewhere(spec, then):
                continue  # checked when it is bound: see check_chain_target
            if then.lifecycle not in names:
                yield (
                    f"{then.location}/lifecycle",
                    (
                        f"unknown lifecycle {shorten(then.lifecycle)!r}"
                        f"{name_hint(then.lifecycle, names)}"
                    ),
                )
                continue
            targets[lifecycle.name].add(then.lifecycle)
            yield from _then_target(spec.lifecycle(then.lifecycle), then)
    for lifecycle in spec.lifecycles:
        for state in lifecycle.states:
            then = state.then
            if then is None or then.lifecycle not in names or _elsewhere(spec, then):
                continue
            path = _chain_back(targets, then.lifecycle, lifecycle.name)
            if path is not None:
                loop = " -> ".join((lifecycle.name, *path))
                yield (
                    f"{then.location}/lifecycle",
                    f"the chain comes back ({loop}): a chain must end",
                )


def check_chain_target(then: Then, target: Spec) -> list[tuple[str, str]]:
    """Return what is wrong with ``then`` starting a lifecycle of ``target``, another spec.

    Each problem is ``(pointer, message)``, the pointer into the spec that
    holds ``then``: the lifecycle is unknown, has no submit, or is not given
    its required inputs.
    """
    names = target.lifecycle_names
    if then.lifecycle not in names:
        message = (
            f"unknown lifecycle {shorten(then.lifecycle)!r} of spec {target.name!r}"
            f"{name_hint(then.lifecycle, names)}"
        )
        return [(f"{then.location}/lifecycle", message)]
    return list(_then_target(target.lifecycle(then.lifecycle), then))


def _elsewhere(spec: Spec, then: Then) -> bool:
    return then.spec is not None and then.spec != spec.name


def _then_inputs_own(lifecycle: Lifecycle, then: Then) -> Found:
    own = tuple(i.name for i in lifecycle.inputs)
    for source in then.inputs:
        if source.input is not None and source.input not in own:
            yield (
                f"{source.location}/input",
                (
                    f"unknown input {shorten(source.input)!r} of this lifecycle"
                    f"{name_hint(source.input, own)}"
                ),
            )


def _then_target(target: Lifecycle, then: Then) -> Found:
    at = f"{then.location}/lifecycle"
    if target.item_only or target.submit is None:
        yield (
            at,
            f"lifecycle {target.name!r} has no submit: a chained job is submitted",
        )
        return
    declared = tuple(i.name for i in target.inputs)
    for source in then.inputs:
        if source.name not in declared:
            yield (
                source.location,
                (
                    f"unknown input {shorten(source.name)!r} of lifecycle "
                    f"{target.name!r}{name_hint(source.name, declared)}"
                ),
            )
    given = {source.name for source in then.inputs}
    missing = [
        i.name
        for i in target.inputs
        if i.required and i.default is None and i.name not in given
    ]
    if missing:
        yield (
            then.location,
            (
                f"missing required input(s) of lifecycle {target.name!r}: "
                + ", ".join(missing)
            ),
        )


def _chain_back(
    targets: dict[str, set[str]], start: str, home: str
) -> tuple[str, ...] | None:
    """Return a path of chained lifecycles from ``start`` back to ``home``, if any."""
    paths: deque[tuple[str, ...]] = deque([(start,)])
    seen = {start}
    while paths:
        path = paths.popleft()
        if path[-1] == home:
            return path
        for target in sorted(targets[path[-1]]):
            if target not in seen:
                seen.add(target)
                paths.append((*path, target))
    return None
