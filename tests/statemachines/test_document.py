"""Hostile JSON gets Problems: deep nesting, infinite numbers, duplicate keys, huge values.

Each rule is checked through ``load_spec`` (a file) and, where a document built
in Python can break it too, ``load_document``.
"""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from statemachines import (
    Condition,
    Outcome,
    Problem,
    Spec,
    SpecError,
    builtin_path,
    load_builtin,
    load_document,
    load_spec,
)
from statemachines._document import (
    MAX_DEPTH,
    FrozenDict,
    FrozenList,
    _depth,
    _outside_strings,
    freeze,
)
from statemachines.errors import MAX_PROBLEMS, MESSAGE_LIMIT, at_most
from statemachines.load import content_hash
from tests.statemachines.helpers import job_lifecycle, minimal_spec, write_spec

TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
# minimal_spec() nests 5 levels down to an input's "default" value:
# the document, lifecycles, job, inputs and the input itself.
_ABOVE_DEFAULT = 5


def _problems(spec: str | Path) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    return [(p.pointer, p.message) for p in info.value.problems]


def _document_problems(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        load_document(document)
    return [(p.pointer, p.message) for p in info.value.problems]


def _write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(text, encoding="utf-8")
    return path


def _nested_lists(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _with_default(default: Any) -> dict[str, Any]:
    """Return the minimal spec with an input whose default is ``default``."""
    document = minimal_spec()
    job_lifecycle(document)["inputs"] = {"x": {"in": "none", "default": default}}
    return document


class TestDepth:
    """Nesting deeper than MAX_DEPTH is a SpecError at the root, never a RecursionError."""

    @pytest.mark.parametrize(
        ("opening", "closing"), [("[", "]"), ('{"a":', "}")], ids=["arrays", "objects"]
    )
    def test_hundred_thousand_deep_file_is_refused(
        self, tmp_path: Path, opening: str, closing: str
    ) -> None:
        """A file nested 100,000 deep reports one problem at (root)."""
        path = _write_text(tmp_path, opening * 100_000 + "1" + closing * 100_000)

        found = _problems(path)

        assert found == [("", TOO_DEEP)]

    def test_deep_dict_document_is_refused(self) -> None:
        """load_document of a dict nested 100,000 deep reports one problem at (root)."""
        document: dict[str, Any] = {}
        for _ in range(100_000):
            document = {"a": document}

        found = _document_problems(document)

        assert found == [("", TOO_DEEP)]

    def test_self_containing_document_is_refused_as_too_deep(self) -> None:
        """A dict that contains itself (no JSON can) is refused, not walked forever."""
        document = minimal_spec()
        document["service"]["loop"] = document

        found = _document_problems(document)

        assert found == [("", TOO_DEEP)]

    def test_file_at_the_limit_loads(self, tmp_path: Path) -> None:
        """A spec nested exactly MAX_DEPTH levels deep is accepted."""
        document = _with_default(_nested_lists(MAX_DEPTH - _ABOVE_DEFAULT))
        path = write_spec(tmp_path, document)

        spec = load_spec(path)

        assert spec.document == document

    def test_file_one_level_past_the_limit_is_refused(self, tmp_path: Path) -> None:
        """One level more than MAX_DEPTH is refused before parsing."""
        document = _with_default(_nested_lists(MAX_DEPTH - _ABOVE_DEFAULT + 1))
        path = write_spec(tmp_path, document)

        found = _problems(path)

        assert found == [("", TOO_DEEP)]

    def test_document_at_the_limit_loads_and_past_it_is_refused(self) -> None:
        """load_document applies the same limit as a file."""
        at_limit = _with_default(_nested_lists(MAX_DEPTH - _ABOVE_DEFAULT))
        past_limit = _with_default(_nested_lists(MAX_DEPTH - _ABOVE_DEFAULT + 1))

        spec = load_document(at_limit)

        assert (
            spec.lifecycle("job").inputs[0].default
            == at_limit["lifecycles"]["job"]["inputs"]["x"]["default"]
        )
        assert _document_problems(past_limit) == [("", TOO_DEEP)]

    def test_deepest_conditions_the_limit_allows_are_validated_and_built(self) -> None:
        """Nested all/any conditions up to MAX_DEPTH pass jsonschema and the builder.

        Both recurse (about seven frames per level); the limit keeps them far
        from Python's recursion limit.
        """
        condition: dict[str, Any] = {"status": 200}
        # The rule's "when" sits 7 levels down; each "all" adds an object and a list.
        for _ in range((MAX_DEPTH - 7) // 2):
            condition = {"all": [condition]}
        document = minimal_spec()
        job_lifecycle(document)["poll"]["observe"].insert(
            0, {"when": condition, "state": "Done"}
        )

        spec = load_document(document)

        assert spec.lifecycle("job").poll.observe[0].when == _built(condition)

    def test_brackets_inside_strings_do_not_count(self, tmp_path: Path) -> None:
        """'[' and '{' in strings, escaped quotes included, are not nesting."""
        document = minimal_spec()
        document["service"]["description"] = '"[{' * 1000 + "\\" + '\\"[' * 1000
        path = write_spec(tmp_path, document)

        spec = load_spec(path)

        assert spec.service.description == document["service"]["description"]

    def test_closing_brackets_in_strings_cannot_hide_depth(
        self, tmp_path: Path
    ) -> None:
        """']' in a string does not cancel real nesting that follows it."""
        text = '{"a": "' + "]" * 1000 + '", "b": ' + "[" * 5000 + "]" * 5000 + "}"
        path = _write_text(tmp_path, text)

        found = _problems(path)

        assert found == [("", TOO_DEEP)]


def _built(raw: dict[str, Any]) -> Condition:
    """Return the Condition model of nested single-child 'all' conditions."""
    levels = 0
    while "all" in raw:
        raw = raw["all"][0]
        levels += 1
    built = Condition(kind="status", status=(raw["status"],))
    for _ in range(levels):
        built = Condition(kind="all", children=(built,))
    return built


_TRICKY_TEXT = st.text(alphabet='[]{}"\\/ab', max_size=8)
_JSON_VALUES = st.recursive(
    st.none() | st.integers() | _TRICKY_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(_TRICKY_TEXT, inner, max_size=3)
    ),
    max_leaves=12,
)


def _true_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_true_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_true_depth, value), default=0)
    return 0


@given(value=_JSON_VALUES, indent=st.sampled_from([None, 1]))
def test_text_depth_is_the_documents_depth(value: Any, indent: int | None) -> None:
    """The pre-parse scan measures the nesting json would build, whatever the strings hold."""
    text = json.dumps(value, indent=indent)

    depth = _depth(_outside_strings(text))

    assert depth == _true_depth(value)


class TestFiniteNumbers:
    """Numbers must be finite: 1e400 is reported at its pointer, not read as infinity."""

    @pytest.mark.parametrize(
        ("key", "literal"),
        [
            ("interval", "1e400"),
            ("initial_delay", "-1e400"),
            ("deadline", "1E+400"),
            ("interval", "1" + "0" * 400 + ".5"),
        ],
        ids=["1e400", "minus-1e400", "1E+400", "400-digits"],
    )
    def test_overflowing_literal_is_reported_at_its_pointer(
        self, tmp_path: Path, key: str, literal: str
    ) -> None:
        """A number too large for a float is 'not a finite number', at the value."""
        text = json.dumps(minimal_spec()).replace(
            '"poll":', f'"schedule": {{"{key}": {literal}}}, "poll":', 1
        )
        path = _write_text(tmp_path, text)

        found = _problems(path)

        shown = literal if len(literal) <= 40 else literal[:40] + "…"
        assert found == [
            (f"/lifecycles/job/schedule/{key}", f"{shown} is not a finite number")
        ]

    def test_large_but_finite_exponent_loads(self, tmp_path: Path) -> None:
        """1e300 is a float like any other."""
        text = json.dumps(minimal_spec()).replace(
            '"poll":', '"schedule": {"deadline": 1e300}, "poll":', 1
        )
        path = _write_text(tmp_path, text)

        spec = load_spec(path)

        assert spec.lifecycle("job").schedule.deadline == 1e300

    @pytest.mark.parametrize(
        ("value", "shown"),
        [(float("inf"), "inf"), (float("-inf"), "-inf"), (float("nan"), "nan")],
    )
    def test_non_finite_float_in_a_document_is_reported(
        self, value: float, shown: str
    ) -> None:
        """load_document refuses inf, -inf and nan at their pointers."""
        document = minimal_spec()
        job_lifecycle(document)["schedule"] = {"interval": value}

        found = _document_problems(document)

        assert found == [
            ("/lifecycles/job/schedule/interval", f"{shown} is not a finite number")
        ]

    def test_schema_does_not_report_the_same_place_twice(self) -> None:
        """-inf is 'not a finite number' only, not also 'less than the minimum'."""
        document = minimal_spec()
        job_lifecycle(document)["schedule"] = {"initial_delay": float("-inf")}
        document["service"]["max_in_flight"] = "many"

        found = _document_problems(document)

        assert found == [
            ("/lifecycles/job/schedule/initial_delay", "-inf is not a finite number"),
            ("/service/max_in_flight", "'many' is not of type 'integer'"),
        ]


class TestDuplicateKeys:
    """A key declared twice is a problem at the duplicated key, not silently merged."""

    def test_state_declared_twice_is_reported(self, tmp_path: Path) -> None:
        """'Done' twice in states: one problem at /…/states/Done."""
        text = json.dumps(minimal_spec(), indent=2).replace(
            '"Done": {', '"Done": {"outcome": "failure"}, "Done": {', 1
        )
        path = _write_text(tmp_path, text)

        found = _problems(path)

        assert found == [("/lifecycles/job/states/Done", "duplicate key 'Done'")]

    def test_every_duplicate_everywhere_is_reported_with_schema_problems(
        self, tmp_path: Path
    ) -> None:
        """Duplicates at the root and deeper are all reported, with the schema's problems."""
        text = (
            json.dumps(minimal_spec())[:-1]
            + ', "spec_version": "2", "spec_version": "3", "extra": 1}'
        ).replace('"name": "demo"', '"name": "demo", "name": "x", "name": "y"', 1)
        path = _write_text(tmp_path, text)

        found = _problems(path)

        assert found == [
            (
                "/extra",
                (
                    "unknown property 'extra'; Allowed: $schema, defaults, lifecycles, "
                    "service, spec_version"
                ),
            ),
            ("/service/name", "duplicate key 'name'"),
            ("/spec_version", "duplicate key 'spec_version'"),
        ]

    def test_duplicate_inside_a_replaced_value_is_not_reported(
        self, tmp_path: Path
    ) -> None:
        """Only the outer duplicate counts when a later key replaces the inner object."""
        text = json.dumps(minimal_spec())[:-1] + ', "x": {"a": 1, "a": 2}, "x": 3}'
        path = _write_text(tmp_path, text)

        found = _problems(path)

        assert ("/x", "duplicate key 'x'") in found
        assert [p for p, _ in found if p.startswith("/x/")] == []


class TestEmptyAndNonObject:
    """An empty file says so; a file that is not a JSON object says what it is."""

    @pytest.mark.parametrize("text", ["", " \n\t\r\n "], ids=["empty", "whitespace"])
    def test_empty_file_says_the_file_is_empty(self, tmp_path: Path, text: str) -> None:
        """An empty or whitespace-only file: FILE: (root): the file is empty."""
        path = _write_text(tmp_path, text)

        with pytest.raises(SpecError) as info:
            load_spec(path)

        assert [str(p) for p in info.value.problems] == [
            f"{path}: (root): the file is empty"
        ]

    @pytest.mark.parametrize(
        ("text", "kind"),
        [
            ("[1, 2]", "an array"),
            ('"x"', "a string"),
            ("3.5", "a number"),
            ("null", "null"),
        ],
    )
    def test_non_object_file_names_what_it_is(
        self, tmp_path: Path, text: str, kind: str
    ) -> None:
        """A JSON value that is not an object is one problem at (root)."""
        path = _write_text(tmp_path, text)

        found = _problems(path)

        assert found == [("", f"a spec is a JSON object, not {kind}")]

    def test_non_dict_document_names_its_type(self) -> None:
        """load_document of something that is not a dict names its Python type."""
        found = _document_problems(frozenset())

        assert found == [("", "a spec is a JSON object, not a frozenset")]


class TestNotJson:
    """A document built in Python may hold JSON values only."""

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ({1, 2}, "set is not a JSON value"),
            ((1, 2), "tuple is not a JSON value"),
            (b"x", "bytes is not a JSON value"),
            (10**5000, "integer too large (about 3,900 digits or more)"),
        ],
        ids=["set", "tuple", "bytes", "huge-int"],
    )
    def test_non_json_value_is_reported_at_its_pointer(
        self, value: Any, message: str
    ) -> None:
        """Sets, tuples, bytes and unprintable integers are refused before the schema."""
        document = _with_default(value)
        document["service"]["max_in_flight"] = float("inf")

        found = _document_problems(document)

        assert found == [
            ("/lifecycles/job/inputs/x/default", message),
            ("/service/max_in_flight", "inf is not a finite number"),
        ]

    def test_non_string_key_is_reported_at_its_object(self) -> None:
        """A key that is not a string is reported at the object holding it."""
        document = _with_default({1: "a"})

        found = _document_problems(document)

        assert found == [("/lifecycles/job/inputs/x/default", "key 1 is not a string")]

    def test_str_subclass_such_as_an_outcome_is_a_string(self) -> None:
        """A StrEnum member (Outcome.SUCCESS) is a JSON string like any other."""
        document = minimal_spec()
        job_lifecycle(document)["states"]["Done"]["outcome"] = Outcome.SUCCESS

        spec = load_document(document)

        assert spec.lifecycle("job").state("Done").outcome is Outcome.SUCCESS

    def test_large_integer_that_prints_is_accepted(self) -> None:
        """10**400 is a JSON number Python can print: the schema sees it."""
        document = _with_default(10**400)

        spec = load_document(document)

        assert spec.lifecycle("job").inputs[0].default == 10**400


class TestExcerpts:
    """No message prints more than a short excerpt of a bad value."""

    def test_long_message_keeps_its_start_and_its_end(self) -> None:
        """A Problem's message over MESSAGE_LIMIT keeps 120 + 100 characters and a note."""
        message = "v" * 5000 + " is not of type 'object'"

        problem = Problem("f", "/p", message)

        assert len(problem.message) < MESSAGE_LIMIT
        assert problem.message.startswith("v" * 120 + "… [4,804 characters cut] …")
        assert problem.message.endswith("v" * 76 + " is not of type 'object'")

    def test_message_at_the_limit_is_kept_whole(self) -> None:
        """A message of exactly MESSAGE_LIMIT characters is not cut."""
        message = "m" * MESSAGE_LIMIT

        problem = Problem("f", "/p", message)

        assert problem.message == message

    def test_data_file_saved_as_a_spec_prints_one_short_line(
        self, tmp_path: Path
    ) -> None:
        """A 2 MB array of records is one short problem, not 2 MB of output."""
        records = [
            {"id": i, "name": f"item-{i}", "price": i / 7} for i in range(40_000)
        ]
        path = write_spec(tmp_path, records, indent=None)

        with pytest.raises(SpecError) as info:
            load_spec(path)

        assert str(info.value) == (
            f"1 problem in spec:\n{path}: (root): a spec is a JSON object, not an array"
        )

    def test_huge_value_in_a_spec_is_quoted_as_an_excerpt(self, tmp_path: Path) -> None:
        """A 2 MB list where a string belongs: the schema's message is cut short."""
        document = minimal_spec()
        document["service"]["description"] = list(range(300_000))
        path = write_spec(tmp_path, document, indent=None)

        with pytest.raises(SpecError) as info:
            load_spec(path)

        [problem] = info.value.problems
        assert problem.pointer == "/service/description"
        assert len(str(problem)) < len(str(path)) + MESSAGE_LIMIT
        assert problem.message.startswith("[0, 1, 2, 3")
        assert problem.message.endswith("299999] is not of type 'string'")

    def test_many_unknown_properties_are_listed_in_short(self) -> None:
        """Ten thousand unknown properties make one capped message."""
        document = minimal_spec()
        document.update({f"extra{i}": i for i in range(10_000)})

        found = _document_problems(document)

        [(pointer, message)] = found
        assert pointer == ""
        assert len(message) < MESSAGE_LIMIT
        assert message.endswith("were unexpected)")

    def test_thousands_of_problems_are_listed_up_to_a_hundred(
        self, tmp_path: Path
    ) -> None:
        """5,000 duplicate keys give MAX_PROBLEMS lines, the last saying how many more."""
        keys = "".join(f', "k{i}": 1, "k{i}": 2' for i in range(5_000))
        path = _write_text(tmp_path, json.dumps(minimal_spec())[:-1] + keys + "}")

        with pytest.raises(SpecError) as info:
            load_spec(path)

        # 5,000 duplicates and the schema's one "Additional properties" problem.
        problems = info.value.problems
        assert len(problems) == MAX_PROBLEMS
        assert str(problems[-1]) == f"{path}: (root): 4,902 more problems not listed"
        assert problems[1] == Problem(str(path), "/k0", "duplicate key 'k0'")

    def test_a_hundred_problems_are_all_listed(self) -> None:
        """At MAX_PROBLEMS or fewer, nothing is left out."""
        problems = [Problem("f", f"/p{i}", "m") for i in range(MAX_PROBLEMS)]

        kept = at_most(problems)

        assert kept == problems

    def test_huge_template_is_quoted_as_an_excerpt(self) -> None:
        """A malformed 1 MB path template is quoted with at most 120 characters."""
        document = minimal_spec()
        job_lifecycle(document)["poll"]["request"]["path"] = "/" + "a" * 1_000_000 + "{"

        [(_, message)] = _document_problems(document)

        assert len(message) < MESSAGE_LIMIT
        assert message.startswith("malformed template '/aaa")


class TestSpecDocument:
    """Spec.document is the parsed document, read-only, and hashes to content_hash."""

    @pytest.mark.parametrize("name", ["azure-translator", "mindee", "oneclickdz"])
    def test_document_is_the_file_and_hashes_to_the_content_hash(
        self, name: str
    ) -> None:
        """A built-in's document equals its file's JSON, and its hash is the spec's."""
        spec = load_builtin(name)

        document = spec.document

        assert document == json.loads(builtin_path(name).read_text(encoding="utf-8"))
        assert content_hash(document) == spec.content_hash

    def test_document_reloads_into_an_equal_spec(self) -> None:
        """load_document(spec.document) rebuilds the same spec with the same hash."""
        spec = load_builtin("azure-translator")

        again = load_document(spec.document, source="audit")

        assert again == spec
        assert again.content_hash == spec.content_hash

    def test_document_is_read_only_all_the_way_down(self) -> None:
        """Neither the document nor any dict or list inside it can be changed."""
        # Typed Any: the point is what happens at run time despite the types.
        document: Any = load_builtin("mindee").document
        lifecycle = document["lifecycles"]["inference"]
        transitions = lifecycle["transitions"]

        attempts: list[Callable[[], object]] = [
            lambda: document.update(x=1),
            lambda: lifecycle.pop("states"),
            lambda: transitions.append({}),
            transitions.sort,
        ]

        for attempt in attempts:
            with pytest.raises(TypeError, match="read-only"):
                attempt()
        with pytest.raises(TypeError, match="read-only"):
            document["x"] = 1
        with pytest.raises(TypeError, match="read-only"):
            del transitions[0]

    def test_copies_of_the_document_are_plain_and_mutable(self) -> None:
        """copy.deepcopy and pickle give ordinary dicts and lists to change freely."""
        document = load_builtin("mindee").document

        copies = [copy.deepcopy(document), pickle.loads(pickle.dumps(document))]  # noqa: S301 - our own bytes

        for copied in copies:
            copied["lifecycles"]["inference"]["transitions"].append({})
            assert type(copied) is dict
        assert type(copy.copy(document)) is dict

    def test_document_is_not_part_of_equality_or_repr(self) -> None:
        """Specs that differ only in their document compare equal; repr omits it."""
        spec = load_builtin("mindee")

        other = attrs.evolve(spec, document=FrozenDict())

        assert other == spec
        assert "document=" not in repr(spec)
        assert "warnings=" not in repr(spec)

    def test_spec_built_in_python_has_an_empty_document(self) -> None:
        """A Spec made without a loader has an empty, read-only document."""
        spec = Spec(
            service=load_builtin("mindee").service, spec_version="1", lifecycles=()
        )

        document = spec.document

        assert (dict(document), type(document)) == ({}, FrozenDict)

    def test_freeze_copies_dicts_and_lists_and_keeps_scalars(self) -> None:
        """freeze() makes FrozenDict/FrozenList copies; the original stays mutable."""
        original = {"a": [1, {"b": None}], "c": "x"}

        frozen = freeze(original)

        assert frozen == original
        assert type(frozen["a"]) is FrozenList
        assert type(frozen["a"][1]) is FrozenDict
        original["c"] = "y"
        assert frozen["c"] == "x"
