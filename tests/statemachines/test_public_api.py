"""The package's public surface: ``__all__`` and the error types callers catch."""

from __future__ import annotations

import importlib
import types

import pytest

import statemachines
from statemachines import (
    Problem,
    SpecError,
    StatepollError,
    UnknownSpecError,
    builtin_names,
    load_spec,
)
from statemachines.errors import IllegalTransitionError

#: What users need: loading, the model classes they reach as attributes, the
#: machine, pointers, templates and the errors (issue 10).
PUBLIC = [
    "Auth",
    "AwsSigV4",
    "Backoff",
    "Body",
    "Cancel",
    "ClientRef",
    "Condition",
    "Conditional",
    "ErrorRule",
    "ErrorSource",
    "Errors",
    "Filter",
    "Input",
    "Items",
    "Jitter",
    "Lifecycle",
    "LifecycleMachine",
    "Locator",
    "Lookup",
    "MISSING",
    "OAuth2ClientCredentials",
    "ObserveRule",
    "Outcome",
    "Paging",
    "Policy",
    "Poll",
    "Problem",
    "Progress",
    "Request",
    "Result",
    "RetryAfter",
    "RetryBackoff",
    "Schedule",
    "Service",
    "Spec",
    "SpecError",
    "State",
    "StateSchedule",
    "StatepollError",
    "Submit",
    "Template",
    "TemplateError",
    "Then",
    "ThenInput",
    "Transition",
    "UnknownSpecError",
    "Value",
    "WaitHint",
    "body_strings",
    "build_machine",
    "builtin_names",
    "builtin_path",
    "check_chain_target",
    "load_builtin",
    "load_document",
    "load_spec",
    "mermaid",
    "resolve_all",
    "resolve_pointer",
    "specs_dir",
    "split_pointer",
    "whole_variable",
]


class TestAll:
    """``statemachines.__all__`` is the public API (STYLE 3.2)."""

    def test_all_names_every_public_object(self) -> None:
        """__all__ is sorted and lists every public, non-module attribute."""
        public = {
            name
            for name, value in vars(statemachines).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        }

        names = statemachines.__all__

        assert names == sorted(public)

    def test_all_is_exactly_the_public_list(self) -> None:
        """__all__ is the trimmed list: helpers such as content_hash are not in it."""
        names = statemachines.__all__

        assert names == PUBLIC

    @pytest.mark.parametrize(
        ("module", "name"),
        [
            ("statemachines.load", "content_hash"),
            ("statemachines.pointer", "join_pointer"),
            ("statemachines.machine", "trigger_name"),
            ("statemachines.errors", "IllegalTransitionError"),
        ],
    )
    def test_dropped_names_stay_importable_from_their_modules(
        self, module: str, name: str
    ) -> None:
        """Names dropped from __all__ are still where they were defined."""
        found = getattr(importlib.import_module(module), name, None)

        assert found is not None
        assert not hasattr(statemachines, name)

    def test_names_the_engine_relies_on_are_exported(self) -> None:
        """DESIGN's names (load_spec, build_machine, the model classes) are public."""
        relied_on = {
            "Lifecycle",
            "Outcome",
            "Problem",
            "Spec",
            "SpecError",
            "State",
            "StatepollError",
            "Transition",
            "build_machine",
            "builtin_names",
            "load_builtin",
            "load_spec",
            "resolve_pointer",
        }

        exported = set(statemachines.__all__)

        assert relied_on <= exported


#: Every name ``statemachines.spec`` exported before its blocks moved into
#: private modules by area (issue 10's split).
SPEC_MODULE = [
    "Auth",
    "AwsSigV4",
    "Backoff",
    "Body",
    "Cancel",
    "ClientRef",
    "Condition",
    "Conditional",
    "ErrorRule",
    "ErrorSource",
    "Errors",
    "Filter",
    "Input",
    "Items",
    "Jitter",
    "Lifecycle",
    "Locator",
    "Lookup",
    "OAuth2ClientCredentials",
    "ObserveRule",
    "Outcome",
    "Paging",
    "Policy",
    "Poll",
    "Progress",
    "Request",
    "Result",
    "RetryAfter",
    "RetryBackoff",
    "Schedule",
    "Service",
    "Spec",
    "State",
    "StateSchedule",
    "Submit",
    "Then",
    "ThenInput",
    "Transition",
    "Value",
    "WaitHint",
]


class TestModulePaths:
    """The modules split by area still export what they did (issue 10)."""

    def test_spec_module_exports_every_model_class(self) -> None:
        """statemachines.spec.__all__ is unchanged and each name is the package's."""
        spec = importlib.import_module("statemachines.spec")

        names = spec.__all__

        assert names == SPEC_MODULE
        assert all(getattr(spec, n) is getattr(statemachines, n) for n in names)

    def test_checks_module_exports_its_two_functions(self) -> None:
        """check_spec and check_chain_target still import from statemachines.checks."""
        checks = importlib.import_module("statemachines.checks")

        names = checks.__all__

        assert names == ["check_chain_target", "check_spec"]
        assert checks.check_chain_target is statemachines.check_chain_target
        assert callable(checks.check_spec)


class TestProblem:
    """A Problem prints as DESIGN's ``FILE: /json/pointer: message``."""

    def test_str_is_file_pointer_message(self) -> None:
        """str(problem) joins file, pointer and message with ': '."""
        problem = Problem("specs/x.json", "/lifecycles/a/states", "no initial state")

        line = str(problem)

        assert line == "specs/x.json: /lifecycles/a/states: no initial state"

    def test_empty_pointer_prints_as_root(self) -> None:
        """A problem about the whole document prints '(root)' for its pointer."""
        problem = Problem("x.json", "", "invalid JSON at line 1 column 1: oops")

        line = str(problem)

        assert line == "x.json: (root): invalid JSON at line 1 column 1: oops"

    def test_warning_prints_warning_before_its_message(self) -> None:
        """A warning prints as FILE: /pointer: warning: message."""
        problem = Problem("x.json", "/a", "no rule leads here", severity="warning")

        line = str(problem)

        assert line == "x.json: /a: warning: no rule leads here"

    def test_severity_defaults_to_error_and_refuses_other_words(self) -> None:
        """A Problem is an error unless it says otherwise; only two severities exist."""
        problem = Problem("f", "/p", "m")

        with pytest.raises(ValueError, match="severity"):
            Problem("f", "/p", "m", severity="info")  # type: ignore[arg-type] # the point

        assert problem.severity == "error"

    def test_problems_are_values(self) -> None:
        """Two problems with the same fields are equal and hash alike (frozen)."""
        first = Problem("f", "/p", "m")
        second = Problem("f", "/p", "m")

        same = {first, second}

        assert first == second
        assert len(same) == 1


class TestSpecError:
    """SpecError carries every problem and is a ValueError."""

    def test_problems_are_kept_in_order_as_a_tuple(self) -> None:
        """.problems is a tuple of the problems given, in the order given."""
        problems = [Problem("f", "/b", "second"), Problem("f", "/a", "first")]

        error = SpecError(iter(problems))

        assert error.problems == tuple(problems)

    def test_message_counts_and_lists_every_problem(self) -> None:
        """The message says how many problems and prints one per line."""
        problems = [Problem("f", "/a", "one"), Problem("f", "", "two")]

        error = SpecError(problems)

        assert str(error) == "2 problems in spec:\nf: /a: one\nf: (root): two"

    def test_one_problem_is_singular(self) -> None:
        """A single problem reads '1 problem', not '1 problems'."""
        problems = [Problem("f", "/a", "one")]

        error = SpecError(problems)

        assert str(error).startswith("1 problem in spec:\n")

    def test_is_a_value_error_and_a_statepoll_error(self) -> None:
        """Callers may catch SpecError as ValueError or as StatepollError."""
        error = SpecError([Problem("f", "", "m")])

        bases = (isinstance(error, ValueError), isinstance(error, StatepollError))

        assert bases == (True, True)


class TestUnknownSpecError:
    """An unknown spec name is a LookupError that lists the built-in names."""

    def test_unknown_name_lists_the_builtin_names(self) -> None:
        """load_spec of a bare unknown name raises UnknownSpecError naming the built-ins."""
        name = "no-such-service"

        with pytest.raises(UnknownSpecError) as info:
            load_spec(name)

        assert info.value.name == name
        assert info.value.known == builtin_names()
        assert str(info.value) == (
            "unknown spec 'no-such-service': not a file, and not a built-in spec "
            "(built-in: azure-translator, mindee, oneclickdz)"
        )

    def test_is_a_lookup_error_and_a_statepoll_error(self) -> None:
        """Callers may catch UnknownSpecError as LookupError or StatepollError."""
        error = UnknownSpecError("x", ["a"])

        bases = (isinstance(error, LookupError), isinstance(error, StatepollError))

        assert bases == (True, True)


class TestIllegalTransitionError:
    """An illegal move carries the lifecycle and both states."""

    def test_fields_and_message_name_the_refused_move(self) -> None:
        """.lifecycle/.source/.dest are set and the message names the move."""
        error = IllegalTransitionError("inference", "Processed", "Processing")

        fields = (error.lifecycle, error.source, error.dest)

        assert fields == ("inference", "Processed", "Processing")
        assert str(error) == (
            "illegal transition in lifecycle 'inference': 'Processed' -> 'Processing'"
        )
        assert isinstance(error, ValueError)
        assert isinstance(error, StatepollError)
