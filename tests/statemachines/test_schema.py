"""The JSON Schema: built-in specs conform, and its errors become pointed Problems."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import statemachines.schema
from statemachines import builtin_names, builtin_path
from statemachines.errors import Problem
from statemachines.schema import SCHEMA_NAME, schema_problems, specs_dir, validator
from tests.statemachines.helpers import REPO_ROOT, job_lifecycle, minimal_spec

BUILTINS = ("azure-translator", "mindee", "oneclickdz")


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _pointers_and_messages(doc: Any) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in schema_problems(doc, "spec.json")]


class TestBuiltinSpecsConform:
    """Every built-in spec is valid against the schema, checked without our code."""

    def test_schema_is_a_valid_draft_2020_12_schema(self) -> None:
        """The schema itself passes its metaschema."""
        schema = _read(specs_dir() / SCHEMA_NAME)

        cls = jsonschema.validators.validator_for(schema)

        assert cls is jsonschema.Draft202012Validator
        cls.check_schema(schema)

    @pytest.mark.parametrize("name", BUILTINS)
    def test_builtin_validates_with_jsonschema_directly(self, name: str) -> None:
        """The jsonschema library alone (formats checked) finds no error in the built-in spec."""
        schema = _read(REPO_ROOT / "specs" / SCHEMA_NAME)
        document = _read(REPO_ROOT / "specs" / f"{name}.json")
        checker = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )

        errors = [e.message for e in checker.iter_errors(document)]

        assert errors == []

    @pytest.mark.parametrize("name", BUILTINS)
    def test_builtin_validates_with_the_schema_its_dollar_schema_names(
        self, name: str
    ) -> None:
        """The '$schema' a built-in carries resolves, beside it, to the schema it passes."""
        path = REPO_ROOT / "specs" / f"{name}.json"
        document = _read(path)
        schema_path = (path.parent / document["$schema"]).resolve()

        jsonschema.validate(document, _read(schema_path))

        assert schema_path == (REPO_ROOT / "specs" / SCHEMA_NAME).resolve()

    @pytest.mark.parametrize("name", BUILTINS)
    def test_builtin_has_no_schema_problems(self, name: str) -> None:
        """Our own schema_problems() agrees: no problem in a built-in spec."""
        document = _read(builtin_path(name))

        problems = schema_problems(document, name)

        assert problems == []


class TestSpecsDir:
    """The schema and built-ins are found in a checkout and in a wheel."""

    def test_checkout_uses_the_specs_folder(self) -> None:
        """From a checkout, specs_dir() is the repository's specs/ folder."""
        folder = specs_dir()

        assert folder == (REPO_ROOT / "specs").resolve()

    def test_wheel_layout_prefers_the_packaged_copy(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A ``_specs`` folder inside the package (the wheel layout) wins."""
        package = tmp_path / "site-packages" / "statemachines"
        (package / "_specs").mkdir(parents=True)
        (package / "_specs" / SCHEMA_NAME).write_text("{}", encoding="utf-8")
        monkeypatch.setattr(
            statemachines.schema, "__file__", str(package / "schema.py")
        )

        folder = specs_dir.__wrapped__()

        assert folder == package / "_specs"

    def test_missing_specs_folder_names_both_places_looked_in(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A broken install raises FileNotFoundError naming both candidate folders."""
        package = tmp_path / "statemachines"
        package.mkdir()
        monkeypatch.setattr(
            statemachines.schema, "__file__", str(package / "schema.py")
        )

        with pytest.raises(FileNotFoundError) as info:
            specs_dir.__wrapped__()

        assert str(package / "_specs") in str(info.value)
        assert str(tmp_path / "specs") in str(info.value)

    def test_schema_file_is_not_a_builtin_spec(self) -> None:
        """The schema sits among the specs but is never listed as a built-in."""
        names = builtin_names()

        assert (specs_dir() / SCHEMA_NAME).is_file()
        assert not any(SCHEMA_NAME.startswith(name) for name in names)

    def test_validator_is_built_once(self) -> None:
        """validator() returns the same object on every call."""
        first = validator()

        second = validator()

        assert first is second


class TestSchemaProblems:
    """jsonschema errors become Problems whose pointer names the bad field."""

    def test_valid_document_has_no_problems(self) -> None:
        """The minimal spec passes the schema."""
        document = minimal_spec()

        problems = schema_problems(document, "spec.json")

        assert problems == []

    def test_problem_carries_the_file_label(self) -> None:
        """Each Problem names the file it was given."""
        document: list[object] = []

        problems = schema_problems(document, "where.json")

        assert problems == [Problem("where.json", "", "[] is not of type 'object'")]

    def test_typo_property_points_at_itself_with_a_hint(self) -> None:
        """One unknown property: the pointer names it and the message suggests the fix."""
        document = minimal_spec()
        document["service"]["titel"] = "Demo"

        found = _pointers_and_messages(document)

        assert found == [
            (
                "/service/titel",
                (
                    "unknown property 'titel'; did you mean 'title'? Allowed: auth, "
                    "base_url, base_url_env, description, docs, headers, max_in_flight, "
                    "name, redact, title"
                ),
            )
        ]

    def test_unknown_property_without_close_match_has_no_hint(self) -> None:
        """With nothing close, the message lists what is allowed and guesses nothing."""
        document = minimal_spec()
        document["zzzz"] = 1

        found = _pointers_and_messages(document)

        assert found == [
            (
                "/zzzz",
                (
                    "unknown property 'zzzz'; Allowed: $schema, defaults, lifecycles, "
                    "service, spec_version"
                ),
            )
        ]

    def test_several_unknown_properties_point_at_their_parent(self) -> None:
        """Two extras in one object: the pointer stays on the object."""
        document = minimal_spec()
        document["x"] = 1
        document["y"] = 2

        found = _pointers_and_messages(document)

        assert found == [
            ("", "Additional properties are not allowed ('x', 'y' were unexpected)")
        ]

    def test_missing_required_property_is_named_in_the_pointer(self) -> None:
        """One missing required property: the pointer names the absent field."""
        document = minimal_spec()
        del job_lifecycle(document)["poll"]

        found = _pointers_and_messages(document)

        assert found == [
            ("/lifecycles/job/poll", "required property 'poll' is missing")
        ]

    def test_each_missing_required_property_is_named_in_its_own_pointer(self) -> None:
        """Two missing required properties: each problem's pointer names its own field."""
        document = minimal_spec()
        document["service"] = {}

        found = sorted(_pointers_and_messages(document))

        assert found == [
            ("/service/base_url", "required property 'base_url' is missing"),
            ("/service/name", "required property 'name' is missing"),
        ]

    def test_wrong_type_points_at_the_value(self) -> None:
        """A value of the wrong type is reported at its own pointer."""
        document = minimal_spec()
        job_lifecycle(document)["schedule"] = {"interval": "10"}

        found = _pointers_and_messages(document)

        assert found == [
            ("/lifecycles/job/schedule/interval", "'10' is not of type 'number'")
        ]

    def test_one_of_reports_the_bad_list_item_not_the_other_branch(self) -> None:
        """A bad name inside a 'to' list is reported at that item, not as 'not a string'."""
        document = minimal_spec()
        job_lifecycle(document)["transitions"][1]["to"] = ["Done", "bad name"]

        found = _pointers_and_messages(document)

        assert found == [
            (
                "/lifecycles/job/transitions/1/to/1",
                "'bad name' does not match '^[A-Za-z_][A-Za-z0-9_.-]*$'",
            )
        ]

    def test_one_of_with_no_better_branch_keeps_a_pointer_at_the_value(self) -> None:
        """A 'to' that is neither a name nor a list is reported at the 'to' field."""
        document = minimal_spec()
        job_lifecycle(document)["transitions"][1]["to"] = 5

        pointers = [p for p, _ in _pointers_and_messages(document)]

        assert pointers == ["/lifecycles/job/transitions/1/to"]

    def test_not_clause_message_is_reported_at_the_rule(self) -> None:
        """An observe rule with both 'state' and 'map' is refused at the rule."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["observe"] = [
            {"when": {"status": 302}, "state": "Done", "map": {"done": "Done"}}
        ]

        pointers = [p for p, _ in _pointers_and_messages(document)]

        assert pointers == ["/lifecycles/job/poll/observe/0"]
