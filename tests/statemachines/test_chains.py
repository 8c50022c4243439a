"""A success state's ``then``: the schema, the model it builds, and what the checks refuse."""

from __future__ import annotations

from typing import Any

import pytest

from statemachines import SpecError, check_chain_target, load_document
from statemachines.spec import Then, ThenInput
from tests.engine._chain_service import chain_document, reports_document, to_reports

UPLOAD = "/lifecycles/upload/states/processed/then"
BATCH = "/lifecycles/batch/states/completed/then"


def _errors(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        load_document(document)
    return [
        (p.pointer, p.message) for p in info.value.problems if p.severity == "error"
    ]


def _then(document: dict[str, Any], lifecycle: str = "upload") -> dict[str, Any]:
    states = document["lifecycles"][lifecycle]["states"]
    found: dict[str, Any] = next(s["then"] for s in states.values() if "then" in s)
    return found


def test_a_then_builds_each_source_with_its_location() -> None:
    """Pointer (from result by default), an own input, a fixed value: all kept, in order."""
    spec = load_document(chain_document())

    then = spec.lifecycle("upload").state("processed").then

    assert then == Then(
        lifecycle="batch",
        inputs=(
            ThenInput(name="input_file_id", pointer="/id"),
            ThenInput(name="window", value="24h", has_value=True),
            ThenInput(name="label", input="name"),
        ),
    )
    assert then is not None
    assert then.location == UPLOAD
    assert then.inputs[0].location == f"{UPLOAD}/inputs/input_file_id"


def test_a_pointer_may_read_the_final_response_and_a_value_may_be_null() -> None:
    """from: response is kept; a fixed null is a value, told apart from none."""
    document = chain_document()
    _then(document)["inputs"]["window"] = {"value": None}
    _then(document)["inputs"]["input_file_id"] = {"pointer": "/id", "from": "response"}

    then = load_document(document).lifecycle("upload").state("processed").then

    assert then is not None
    assert then.inputs[0].source == "response"
    assert (then.inputs[1].value, then.inputs[1].has_value) == (None, True)


def test_states_without_then_have_none() -> None:
    """Existing specs are unchanged: no then, no chain."""
    spec = load_document(chain_document())

    assert spec.lifecycle("export").state("done").then is None


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ({"pointer": "/id", "input": "name"}, f"{UPLOAD}/inputs/input_file_id"),
        ({"from": "result"}, f"{UPLOAD}/inputs/input_file_id"),
        ({"pointer": "id"}, f"{UPLOAD}/inputs/input_file_id/pointer"),
        ({"pointer": "/id", "from": "body"}, f"{UPLOAD}/inputs/input_file_id/from"),
    ],
)
def test_the_schema_refuses_a_source_that_is_not_exactly_one(
    source: dict[str, Any], where: str
) -> None:
    """Two sources, none, a bad pointer or an unknown 'from': a schema problem there."""
    document = chain_document()
    _then(document)["inputs"]["input_file_id"] = source

    assert where in [pointer for pointer, _ in _errors(document)]


def test_an_unknown_lifecycle_is_refused_with_a_hint() -> None:
    """A misspelt lifecycle name: pointed at, with a did-you-mean."""
    document = chain_document()
    _then(document)["lifecycle"] = "bach"

    assert _errors(document) == [
        (
            f"{UPLOAD}/lifecycle",
            (
                "unknown lifecycle 'bach'; did you mean 'batch'? "
                "Declared: upload, batch, export"
            ),
        )
    ]


def test_only_a_success_state_may_chain() -> None:
    """A failure state or a state that is not terminal cannot start another lifecycle."""
    document = chain_document()
    states = document["lifecycles"]["upload"]["states"]
    states["error"]["then"] = {
        "lifecycle": "export",
        "inputs": {"file_id": {"value": 1}},
    }
    states["processing"]["then"] = {
        "lifecycle": "export",
        "inputs": {"file_id": {"value": 1}},
    }

    assert _errors(document) == [
        (
            "/lifecycles/upload/states/error/then",
            "only a success state can start another lifecycle (error: failure)",
        ),
        (
            "/lifecycles/upload/states/processing/then",
            "only a success state can start another lifecycle (processing: not terminal)",
        ),
    ]


def test_inputs_must_be_the_targets_and_cover_its_required_ones() -> None:
    """An unknown input of the target (did-you-mean), and a required one left out."""
    document = chain_document()
    _then(document)["inputs"] = {"input_fileid": {"pointer": "/id"}}

    assert _errors(document) == [
        (
            UPLOAD,
            "missing required input(s) of lifecycle 'batch': input_file_id",
        ),
        (
            f"{UPLOAD}/inputs/input_fileid",
            (
                "unknown input 'input_fileid' of lifecycle 'batch'; did you mean "
                "'input_file_id'? Declared: input_file_id, window, label"
            ),
        ),
    ]


def test_an_own_input_must_be_declared() -> None:
    """{"input": NAME} names an input of the job that ends: a typo is pointed at."""
    document = chain_document()
    _then(document)["inputs"]["label"] = {"input": "nme"}

    assert _errors(document) == [
        (
            f"{UPLOAD}/inputs/label/input",
            "unknown input 'nme' of this lifecycle; did you mean 'name'? Declared: name",
        )
    ]


def test_the_target_must_be_submittable() -> None:
    """A lifecycle without a submit cannot be started by a chain."""
    document = chain_document()
    del document["lifecycles"]["export"]["submit"]

    assert _errors(document) == [
        (
            f"{BATCH}/lifecycle",
            "lifecycle 'export' has no submit: a chained job is submitted",
        )
    ]


def test_a_chain_that_comes_back_is_refused_at_each_link() -> None:
    """A then from export back to upload closes a loop: each then on it is reported."""
    document = chain_document()
    document["lifecycles"]["export"]["states"]["done"]["then"] = {
        "lifecycle": "upload",
        "inputs": {"name": {"value": "again"}},
    }

    problems = _errors(document)

    assert problems == [
        (
            "/lifecycles/batch/states/completed/then/lifecycle",
            "the chain comes back (batch -> export -> upload -> batch): a chain must end",
        ),
        (
            "/lifecycles/export/states/done/then/lifecycle",
            "the chain comes back (export -> upload -> batch -> export): a chain must end",
        ),
        (
            f"{UPLOAD}/lifecycle",
            "the chain comes back (upload -> batch -> export -> upload): a chain must end",
        ),
    ]


def test_a_lifecycle_that_chains_to_itself_is_a_loop() -> None:
    """A then naming its own lifecycle is the shortest loop."""
    document = chain_document()
    document["lifecycles"]["export"]["states"]["done"]["then"] = {
        "lifecycle": "export",
        "inputs": {"file_id": {"pointer": "/id"}},
    }

    assert _errors(document) == [
        (
            "/lifecycles/export/states/done/then/lifecycle",
            "the chain comes back (export -> export): a chain must end",
        )
    ]


def _to_reports(**then: Any) -> dict[str, Any]:
    document = to_reports(chain_document())
    _then(document).update(then)
    return document


def test_a_then_of_another_spec_is_checked_when_it_is_bound() -> None:
    """Lifecycle and inputs of another spec are not known at load: the spec loads."""
    spec = load_document(_to_reports(lifecycle="anything", inputs={}))

    then = spec.lifecycle("upload").state("processed").then

    assert then is not None
    assert (then.spec, then.lifecycle) == ("reports", "anything")


def test_naming_its_own_spec_is_checked_at_load() -> None:
    """A then whose spec is this spec's own name is checked like one without."""
    document = chain_document()
    _then(document).update(spec="files", lifecycle="bach")

    assert [at for at, _ in _errors(document)] == [f"{UPLOAD}/lifecycle"]


@pytest.mark.parametrize(
    ("then", "expected"),
    [
        ({}, []),
        (
            {"lifecycle": "rendr"},
            [
                (
                    f"{UPLOAD}/lifecycle",
                    (
                        "unknown lifecycle 'rendr' of spec 'reports'; did you mean "
                        "'render'? Declared: render"
                    ),
                )
            ],
        ),
        (
            {"inputs": {"src": {"pointer": "/id"}}},
            [
                (UPLOAD, "missing required input(s) of lifecycle 'render': source"),
                (
                    f"{UPLOAD}/inputs/src",
                    (
                        "unknown input 'src' of lifecycle 'render'; did you mean "
                        "'source'? Declared: source"
                    ),
                ),
            ],
        ),
    ],
)
def test_check_chain_target_says_what_the_other_spec_cannot_honour(
    then: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    """Sound, an unknown lifecycle (did-you-mean), inputs it does not declare or lacks."""
    spec = load_document(_to_reports(**then))
    found = spec.lifecycle("upload").state("processed").then
    assert found is not None

    problems = check_chain_target(found, load_document(reports_document()))

    assert sorted(problems) == sorted(expected)
