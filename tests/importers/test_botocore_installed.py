"""The installed botocore's waiters: the share that converts, and every written spec loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.importers._botocore import Report, import_botocore, waiter_services
from statemachines import load_spec

#: The issue's target share of waiters that convert to specs that validate.
TARGET = 0.95


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Every service with waiters, converted once for the module."""
    return import_botocore(waiter_services(), tmp_path_factory.mktemp("botocore"))


def test_at_least_95_percent_of_the_waiters_convert(report: Report) -> None:
    """At least 95 % of the installed botocore's waiters are lifecycles of specs that load."""
    assert report.total > 0
    assert report.converted / report.total >= TARGET
    kinds = report.by_kind()
    assert kinds["runs"] + kinds["xml"] + kinds["host"] == report.converted


def test_each_written_spec_loads_with_one_lifecycle_per_converted_waiter(
    report: Report,
) -> None:
    """Counted by loading: every file loads, without warnings, with the converted waiters."""
    loaded = 0
    for service in report.services:
        converted = {w.lifecycle for w in service.waiters if w.kind != "not_converted"}
        if service.path is None:
            assert not converted
            continue
        spec = load_spec(service.path)
        assert spec.warnings == ()
        assert set(spec.lifecycle_names) == converted
        loaded += len(converted)
    assert loaded == report.converted


def test_services_without_waiters_are_not_listed() -> None:
    """Services with empty waiter models (botocore ships many) waiter models  are left out."""
    services = waiter_services()
    assert "dynamodb" in services
    assert "account" not in services


def test_not_converted_waiters_all_say_why(report: Report) -> None:
    """Every waiter left out carries a reason, and the reasons group them."""
    reasons = report.reasons()
    assert sum(reasons.values()) == report.total - report.converted
    assert "?" not in reasons
    assert all(
        Path(s.path).name.startswith("botocore-") for s in report.services if s.path
    )
