"""Loading specs: files and built-in names → JSON → schema → model → checks → Spec."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statemachines import (
    MISSING,
    Auth,
    Outcome,
    Spec,
    SpecError,
    UnknownSpecError,
    build_machine,
    builtin_names,
    builtin_path,
    load_builtin,
    load_document,
    load_spec,
    mermaid,
    resolve_pointer,
    split_pointer,
)
from statemachines.load import _load_file, content_hash
from tests.statemachines.helpers import (
    BAD_SPECS,
    REPO_ROOT,
    job_lifecycle,
    minimal_spec,
    write_spec,
)

BAD_SPEC_FILES = sorted(BAD_SPECS.glob("*.json"))
SEVERAL = [
    BAD_SPECS / "several_mistakes.json",
    BAD_SPECS / "several_schema_mistakes.json",
]


def _relative(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def _problem_lines(spec: str | Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    return [str(p) for p in info.value.problems]


def _problems_of_document(doc: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        load_document(doc)
    return [(p.pointer, p.message) for p in info.value.problems]


@pytest.fixture
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in the checkout's root, so relative spec paths resolve from anywhere."""
    monkeypatch.chdir(REPO_ROOT)


# --- bad specs: one file per rule, each with its exact expected output --------


@pytest.mark.usefixtures("at_repo_root")
@pytest.mark.parametrize("path", BAD_SPEC_FILES, ids=lambda p: p.stem)
def test_bad_spec_reports_exactly_its_expected_lines(path: Path) -> None:
    """Loading each bad spec prints exactly the lines of its .expected file, in order."""
    expected = path.with_suffix(".expected").read_text(encoding="utf-8").splitlines()

    lines = _problem_lines(_relative(path))

    assert lines == expected


def test_every_bad_spec_has_an_expected_file_and_vice_versa() -> None:
    """tests/data/bad_specs pairs each X.json with an X.expected, and nothing else."""
    names = {p.name for p in BAD_SPECS.iterdir()}

    stems_json = {n.removesuffix(".json") for n in names if n.endswith(".json")}
    stems_expected = {
        n.removesuffix(".expected") for n in names if n.endswith(".expected")
    }

    assert stems_json == stems_expected
    assert len(names) == 2 * len(stems_json)


@pytest.mark.usefixtures("at_repo_root")
def test_several_mistakes_are_all_reported_not_only_the_first() -> None:
    """A file with one mistake per semantic rule reports every one of them."""
    path = _relative(BAD_SPECS / "several_mistakes.json")

    with pytest.raises(SpecError) as info:
        load_spec(path)

    assert sorted(p.pointer for p in info.value.problems) == [
        "/lifecycles/job/poll/observe/0/map/failed",
        "/lifecycles/job/poll/request/path",
        "/lifecycles/job/schedule/deadline",
        "/lifecycles/job/schedule/per_state/Runing",
        "/lifecycles/job/states/Failed",
        "/lifecycles/job/states/Running/initial",
        "/lifecycles/job/states/Stuck",
        "/lifecycles/job/states/Stuck",
        "/lifecycles/job/transitions/1/to/1",
        "/lifecycles/job/transitions/3/from",
        "/lifecycles/other/states",
        "/lifecycles/other/states/Orphan",
    ]


@pytest.mark.usefixtures("at_repo_root")
@pytest.mark.parametrize("path", SEVERAL, ids=lambda p: p.stem)
def test_problems_are_reported_in_pointer_order(path: Path) -> None:
    """Problems come sorted by JSON pointer (token by token), whatever rule found them."""
    with pytest.raises(SpecError) as info:
        load_spec(_relative(path))

    pointers = [p.pointer for p in info.value.problems]

    assert pointers == sorted(pointers, key=split_pointer)


@pytest.mark.parametrize(
    "path",
    [p for p in BAD_SPEC_FILES if p.stem not in {"invalid_json", "empty_file"}],
    ids=lambda p: p.stem,
)
def test_every_problem_pointer_names_a_place_in_the_file(path: Path) -> None:
    """Each pointer resolves in the file (for a missing property, its parent does)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    with pytest.raises(SpecError) as info:
        load_spec(path)

    unresolved = [
        p.pointer
        for p in info.value.problems
        if resolve_pointer(document, p.pointer) is MISSING
        and not (
            p.message.endswith("is missing")
            and resolve_pointer(document, p.pointer.rsplit("/", 1)[0]) is not MISSING
        )
    ]

    assert unresolved == []


# --- reading files and names ---------------------------------------------------


def test_builtin_names_are_the_three_seed_services() -> None:
    """builtin_names() lists DESIGN's built-in specs, sorted."""
    names = builtin_names()

    assert names == ("azure-translator", "mindee", "oneclickdz")


@pytest.mark.parametrize("name", ["azure-translator", "mindee", "oneclickdz"])
def test_builtin_name_and_its_file_path_load_equal_specs(name: str) -> None:
    """load_spec(NAME) and load_spec(path of NAME) give equal specs, one content hash."""
    by_path = load_spec(str(builtin_path(name)))

    by_name = load_spec(name)

    assert by_name == by_path
    assert by_name.content_hash == by_path.content_hash
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", by_name.content_hash)
    assert (by_name.source, by_path.source) == (
        f"builtin:{name}",
        str(builtin_path(name)),
    )


def test_load_builtin_is_cached() -> None:
    """A built-in is read once: load_builtin returns the same object each time."""
    first = load_builtin("mindee")

    second = load_builtin("mindee")

    assert first is second


def test_builtin_path_of_unknown_name_raises_unknown_spec_error() -> None:
    """builtin_path() refuses names that are not built-in, listing those that are."""
    name = "mindy"

    with pytest.raises(UnknownSpecError) as info:
        builtin_path(name)

    assert info.value.known == builtin_names()


@pytest.mark.parametrize("indent", [None, 7], ids=["compact", "indent-7"])
def test_reformatting_a_spec_keeps_its_content_hash(
    tmp_path: Path, indent: int | None
) -> None:
    """Re-dumping the same JSON with other whitespace and key order keeps the hash."""
    original = json.loads(builtin_path("mindee").read_text(encoding="utf-8"))
    reordered = dict(reversed(list(original.items())))
    path = write_spec(tmp_path, reordered, indent=indent)

    spec = load_spec(path)

    assert spec.content_hash == load_builtin("mindee").content_hash


def test_changing_a_value_changes_the_content_hash(tmp_path: Path) -> None:
    """Any change of meaning (here one interval) gives another hash and an unequal spec."""
    document = json.loads(builtin_path("mindee").read_text(encoding="utf-8"))
    document["lifecycles"]["inference"]["schedule"]["interval"] = 2
    path = write_spec(tmp_path, document)

    spec = load_spec(path)

    assert spec.content_hash != load_builtin("mindee").content_hash
    assert spec != load_builtin("mindee")


def test_content_hash_is_sha256_of_canonical_json() -> None:
    """content_hash() hashes sorted-key, compact, UTF-8 JSON."""
    document = {"b": "é", "a": [1, 2]}

    digest = content_hash(document)

    assert (
        digest == "sha256:" + hashlib.sha256('{"a":[1,2],"b":"é"}'.encode()).hexdigest()
    )


def test_path_like_is_accepted_and_becomes_the_source(tmp_path: Path) -> None:
    """load_spec takes an os.PathLike; the spec remembers the path it came from."""
    path = write_spec(tmp_path, minimal_spec())

    spec = load_spec(path)

    assert spec.source == str(path)
    assert spec.lifecycle_names == ("job",)


def test_missing_json_file_is_a_problem_not_an_unknown_name(tmp_path: Path) -> None:
    """A '.json' path that does not exist is a SpecError 'file not found' at (root)."""
    path = tmp_path / "absent.json"

    lines = _problem_lines(str(path))

    assert lines == [f"{path}: (root): file not found"]


def test_unknown_bare_name_is_unknown_spec_error() -> None:
    """A bare name that is neither a file nor a built-in raises UnknownSpecError."""
    name = "not-a-service"

    with pytest.raises(UnknownSpecError):
        load_spec(name)


def test_vanished_bare_file_is_an_unknown_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare name whose file cannot be found at read time is reported as unknown."""
    monkeypatch.chdir(tmp_path)

    with pytest.raises(UnknownSpecError) as info:
        _load_file(Path("gone"), source="gone", label="gone")

    assert info.value.name == "gone"


def test_unreadable_path_is_a_cannot_read_problem(tmp_path: Path) -> None:
    """A directory named like a spec is reported as unreadable, not raised raw."""
    path = tmp_path / "folder.json"
    path.mkdir()

    lines = _problem_lines(path)

    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: (root): cannot read: ")


def test_non_utf8_file_is_a_cannot_read_problem(tmp_path: Path) -> None:
    """A file that is not UTF-8 is reported as unreadable with the decoder's reason."""
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"spec_version": "\xe9"}')

    lines = _problem_lines(path)

    assert len(lines) == 1
    assert lines[0].startswith(
        f"{path}: (root): cannot read: 'utf-8' codec can't decode"
    )


@pytest.mark.parametrize(
    "literal", ["NaN", "Infinity", "-Infinity"], ids=["nan", "inf", "minus-inf"]
)
def test_non_json_number_literals_are_refused_with_a_spec_error(
    tmp_path: Path, literal: str
) -> None:
    """NaN/Infinity are not JSON: a spec using one is refused with a SpecError."""
    text = json.dumps(minimal_spec()).replace(
        '"poll":', f'"schedule": {{"interval": {literal}}}, "poll":', 1
    )
    path = tmp_path / "spec.json"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(SpecError) as info:
        load_spec(path)

    assert info.value.problems


def test_huge_integer_in_a_schedule_is_a_problem_not_a_crash() -> None:
    """An integer too large for a float is reported as a Problem, not an OverflowError."""
    document = minimal_spec()
    job_lifecycle(document)["schedule"] = {"initial_delay": 10**400, "deadline": 1}

    with pytest.raises(SpecError) as info:
        load_document(document)

    assert [p.pointer for p in info.value.problems] == [
        "/lifecycles/job/schedule/deadline"
    ]


def test_load_document_labels_problems_with_its_source() -> None:
    """load_document() names its problems after ``source`` ('<document>' by default)."""
    document = minimal_spec()
    del document["spec_version"]

    with pytest.raises(SpecError) as info:
        load_document(document, source="inline")

    assert [p.file for p in info.value.problems] == ["inline"]


# --- defaults -------------------------------------------------------------------


def test_lifecycle_schedule_key_wins_over_defaults_and_others_are_kept() -> None:
    """A lifecycle's own schedule key overrides defaults.schedule; other default keys stay."""
    document = minimal_spec()
    document["defaults"] = {"schedule": {"interval": 7, "max_attempts": 3}}
    job_lifecycle(document)["schedule"] = {"max_attempts": 9}

    schedule = load_document(document).lifecycle("job").schedule

    assert (schedule.interval, schedule.max_attempts) == (7, 9)


def test_defaults_merge_one_level_deep() -> None:
    """A lifecycle's nested block (backoff) replaces the default's block whole."""
    document = minimal_spec()
    document["defaults"] = {
        "schedule": {
            "backoff": {"kind": "exponential", "factor": 3, "max_interval": 60}
        }
    }
    job_lifecycle(document)["schedule"] = {"backoff": {"kind": "fixed"}}

    backoff = load_document(document).lifecycle("job").schedule.backoff

    assert (backoff.kind, backoff.factor, backoff.max_interval) == ("fixed", 2.0, None)


def test_errors_and_policy_defaults_merge_like_schedule() -> None:
    """defaults.errors and defaults.policy merge key by key with the lifecycle's own."""
    document = minimal_spec()
    document["defaults"] = {
        "errors": {"retry_budget": 3, "timeout": 9},
        "policy": {"illegal_transition": "fail", "unknown_state": "fail"},
    }
    job_lifecycle(document)["errors"] = {"timeout": 4}
    job_lifecycle(document)["policy"] = {"unknown_state": "reject"}

    lifecycle = load_document(document).lifecycle("job")

    assert (lifecycle.errors.retry_budget, lifecycle.errors.timeout) == (3, 4)
    assert (lifecycle.policy.illegal_transition, lifecycle.policy.unknown_state) == (
        "fail",
        "reject",
    )


def test_oneclickdz_gift_card_overrides_only_what_it_sets() -> None:
    """gift_card sets max_attempts and deadline; interval and delay come from defaults."""
    schedule = load_builtin("oneclickdz").lifecycle("gift_card").schedule

    values = [
        schedule.initial_delay,
        schedule.interval,
        schedule.max_attempts,
        schedule.deadline,
    ]

    assert values == [5, 5, 120, 600]


# --- the model of the built-ins (facts DESIGN relies on) ------------------------


@pytest.mark.parametrize(
    ("name", "lifecycles"),
    [
        ("mindee", ("inference",)),
        ("oneclickdz", ("mobile_topup", "internet_topup", "gift_card")),
        ("azure-translator", ("batch", "document")),
    ],
)
def test_builtins_declare_the_lifecycles_design_names(
    name: str, lifecycles: tuple[str, ...]
) -> None:
    """Each built-in declares DESIGN's lifecycles, in file order."""
    spec = load_builtin(name)

    names = spec.lifecycle_names

    assert names == lifecycles
    assert spec.name == name


@pytest.mark.parametrize(
    ("name", "env", "header"),
    [
        ("mindee", "MINDEE_V2_API_KEY", "Authorization"),
        ("oneclickdz", "ONECLICKDZ_ACCESS_TOKEN", "X-Access-Token"),
        ("azure-translator", "AZURE_TRANSLATOR_KEY", "Ocp-Apim-Subscription-Key"),
    ],
)
def test_builtin_credentials_come_from_the_environment(
    name: str, env: str, header: str
) -> None:
    """Each built-in names its credential's variable and header, with no scheme prefix."""
    auth = load_builtin(name).service.auth

    assert isinstance(auth, Auth)
    assert (auth.env, auth.header, auth.scheme, auth.required) == (
        env,
        header,
        None,
        True,
    )


def test_mindee_cannot_cancel() -> None:
    """Mindee's inference has no cancel block (its jobs cannot be cancelled)."""
    lifecycle = load_builtin("mindee").lifecycle("inference")

    cancel = lifecycle.cancel

    assert cancel is None


def test_mindee_redirect_is_the_processed_signal() -> None:
    """Mindee polls without following redirects; a 302 means Processed."""
    poll = load_builtin("mindee").lifecycle("inference").poll

    first_rule = poll.observe[0]

    assert poll.request.follow_redirects is False
    assert first_rule.when is not None
    assert (first_rule.when.kind, first_rule.when.status, first_rule.state) == (
        "status",
        (302,),
        "Processed",
    )


def test_azure_batch_cancel_leads_through_cancelling_to_cancelled() -> None:
    """Azure's batch cancels with DELETE from NotStarted/Running via Cancelling → Cancelled."""
    cancel = load_builtin("azure-translator").lifecycle("batch").cancel

    assert cancel is not None
    assert cancel.request.method == "DELETE"
    assert cancel.from_states == ("NotStarted", "Running")
    assert cancel.leads_to == ("Cancelling", "Cancelled")


def test_azure_batch_items_follow_the_document_lifecycle() -> None:
    """Azure's batch pages its documents, each following the item-only 'document' lifecycle."""
    spec = load_builtin("azure-translator")

    items = spec.lifecycle("batch").items

    assert items is not None
    assert items.lifecycle == "document"
    assert items.paging.kind == "next_link"
    assert items.paging.next_pointers == ("/@nextLink", "/nextLink")
    assert spec.lifecycle("document").item_only is True


@pytest.mark.parametrize(
    ("lifecycle", "state", "interval", "deadline"),
    [
        ("mobile_topup", "UNKNOWN_ERROR", 3600, 93600),
        ("internet_topup", "QUEUED", 21600, 180000),
    ],
)
def test_oneclickdz_uncertain_states_are_provisional_with_slow_schedules(
    lifecycle: str, state: str, interval: int, deadline: int
) -> None:
    """UNKNOWN_ERROR and QUEUED are provisional (not terminal) and re-checked slowly."""
    model = load_builtin("oneclickdz").lifecycle(lifecycle)

    override = model.schedule.for_state(state)

    assert model.state(state).provisional is True
    assert model.state(state).terminal is False
    assert override is not None
    assert (override.interval, override.deadline) == (interval, deadline)


# --- the model itself -----------------------------------------------------------


def test_unknown_state_lookup_names_the_declared_states() -> None:
    """Lifecycle.state() of an undeclared name raises KeyError listing the states."""
    lifecycle = load_builtin("mindee").lifecycle("inference")

    with pytest.raises(KeyError, match="has no state 'Done'; declared: Processing, "):
        lifecycle.state("Done")


def test_unknown_lifecycle_lookup_names_the_lifecycles() -> None:
    """Spec.lifecycle() of an undeclared name raises KeyError listing the lifecycles."""
    spec = load_builtin("azure-translator")

    with pytest.raises(
        KeyError, match="has no lifecycle 'batches'; it has: batch, document"
    ):
        spec.lifecycle("batches")


def test_as_mapping_gives_lifecycles_by_name() -> None:
    """Spec.as_mapping() maps each lifecycle name to its lifecycle."""
    spec = load_builtin("oneclickdz")

    mapping = spec.as_mapping()

    assert list(mapping) == list(spec.lifecycle_names)
    assert mapping["gift_card"] is spec.lifecycle("gift_card")


def test_lifecycle_knows_its_initial_terminal_states_and_inputs() -> None:
    """initial, terminal_states and input() describe the lifecycle."""
    lifecycle = load_builtin("mindee").lifecycle("inference")

    summary = (lifecycle.initial, lifecycle.terminal_states)

    assert summary == ("Processing", frozenset({"Processed", "Failed"}))
    product = lifecycle.input("product")
    assert product is not None
    assert (product.where, product.default) == ("path", "extraction")
    assert lifecycle.input("nope") is None


def test_schedule_for_state_without_override_is_none() -> None:
    """Schedule.for_state() of a state with no override returns None."""
    schedule = load_builtin("oneclickdz").lifecycle("mobile_topup").schedule

    override = schedule.for_state("PENDING")

    assert override is None


@pytest.mark.parametrize(
    ("request_doc", "status", "accepted"),
    [
        ({"path": "/x", "expect_status": [202]}, 202, True),
        ({"path": "/x", "expect_status": [202]}, 200, False),
        ({"path": "/x"}, 204, True),
        ({"path": "/x"}, 302, True),
        ({"path": "/x", "follow_redirects": True}, 302, False),
        ({"path": "/x"}, 404, False),
    ],
    ids=["listed", "not-listed", "any-2xx", "3xx-is-a-signal", "3xx-followed", "4xx"],
)
def test_request_accepts_status(
    request_doc: dict[str, Any], status: int, accepted: bool
) -> None:
    """Request.accepts(): expect_status when given, else 2xx (and 3xx unless followed)."""
    document = minimal_spec()
    job_lifecycle(document)["poll"]["request"] = {
        **request_doc,
        "path": "/jobs/{job_id}",
    }

    request = load_document(document).lifecycle("job").poll.request

    assert request.accepts(status) is accepted


def test_locations_are_not_part_of_equality() -> None:
    """Two lifecycles that differ only in layout (pointer locations) compare equal."""
    split = minimal_spec()
    job_lifecycle(split)["transitions"][1:] = [
        {"from": "Running", "to": "Done"},
        {"from": "Running", "to": "Failed"},
    ]

    merged, separate = load_document(minimal_spec()), load_document(split)

    assert merged.lifecycle("job") == separate.lifecycle("job")
    assert merged.lifecycle("job").transitions[1].location != (
        separate.lifecycle("job").transitions[1].location
    )


def test_many_to_many_transition_expands_to_every_pair() -> None:
    """'from' and 'to' lists declare every source-destination pair."""
    document = minimal_spec()
    job_lifecycle(document)["transitions"] = [
        {"from": "Queued", "to": "Running"},
        {"from": ["Queued", "Running"], "to": ["Done", "Failed"]},
    ]

    transitions = load_document(document).lifecycle("job").transitions

    pairs = [(t.source, t.dest) for t in transitions[1:]]
    assert pairs == [
        ("Queued", "Done"),
        ("Running", "Done"),
        ("Queued", "Failed"),
        ("Running", "Failed"),
    ]


def _rich_spec() -> dict[str, Any]:
    """Return a valid spec using every optional block of the language."""
    document = minimal_spec()
    document["service"].update(
        {
            "title": "Demo",
            "auth": {"header": "Authorization", "env": "DEMO_KEY", "scheme": "Bearer"},
            "headers": {"Accept": "application/json"},
            "redact": {"pointers": ["/secret"], "query_params": ["sig"]},
            "max_in_flight": 2,
        }
    )
    lifecycle = job_lifecycle(document)
    lifecycle["inputs"] = {
        "name": {"in": "body", "name": "fileName", "required": True},
        "tags": {"in": "query", "type": "array", "default": ["a", "b"]},
    }
    lifecycle["submit"] = {
        "request": {"method": "POST", "path": "/jobs", "expect_status": [201]},
        "body": "json",
        "job_id": [{"pointer": "/id"}, {"header": "Location", "pattern": "/jobs/(.+)"}],
        "observe": True,
        "retry_status": [429],
    }
    lifecycle["poll"]["observe"] = [
        {"when": {"status": [404, 410]}, "state": "Failed"},
        {"when": {"header": "Retry-After"}, "state": "Queued"},
        {"when": {"pointer": "/done", "equals": True}, "state": "Done"},
        {"when": {"pointer": "/phase", "in": ["run", "go"]}, "state": "Running"},
        {"when": {"pointer": "/error", "exists": True}, "state": "Failed"},
        {
            "when": {"all": [{"status": 200}, {"any": [{"header": "X-A"}]}]},
            "pointer": "/status",
            "map": {"queued": "Queued"},
            "on_unknown": "skip",
        },
    ]
    lifecycle["schedule"] = {
        "jitter": {"kind": "full"},
        "retry_after": {"honour": False, "min": 1, "max": 9},
        "per_state": {
            "Running": {"backoff": {"kind": "exponential", "max_interval": 50}}
        },
    }
    lifecycle["result"] = {
        "request": {"path": "/jobs/{job_id}/result"},
        "on": ["success", "failure"],
    }
    lifecycle["errors"] = {"code_pointer": "/code", "message_pointer": ["/a", "/b"]}
    lifecycle["items"] = {
        "lifecycle": "part",
        "request": {"path": "/jobs/{job_id}/parts", "query": {"tag": "{tags}"}},
        "items_pointer": "/value",
        "id_pointer": "/id",
        "paging": {"kind": "cursor", "cursor_param": "after"},
        "filters": {"state": {"param": "status", "format": "csv"}},
        "refresh": "at_end",
    }
    part = copy.deepcopy(minimal_spec()["lifecycles"]["job"])
    part["item_only"] = True
    part["poll"]["request"] = {"url": {"pointer": "/self"}}
    document["lifecycles"]["part"] = part
    return document


def test_every_optional_block_is_built_into_the_model() -> None:
    """A spec using every optional block loads, and each block lands in the model."""
    document = _rich_spec()

    spec = load_document(document)

    job = spec.lifecycle("job")
    assert isinstance(spec.service.auth, Auth)
    assert spec.service.auth.scheme == "Bearer"
    assert spec.service.redact_pointers == ("/secret",)
    assert spec.service.redact_query_params == ("sig",)
    assert spec.service.headers == (("Accept", "application/json"),)
    assert [(i.name, i.wire_name, i.required) for i in job.inputs] == [
        ("name", "fileName", True),
        ("tags", "tags", False),
    ]
    assert job.submit is not None
    assert [(loc.pointer, loc.header, loc.pattern) for loc in job.submit.job_id] == [
        ("/id", None, None),
        (None, "Location", "/jobs/(.+)"),
    ]
    assert [r.when.kind for r in job.poll.observe if r.when is not None] == [
        "status",
        "header",
        "equals",
        "in",
        "exists",
        "all",
    ]
    nested = job.poll.observe[5].when
    assert nested is not None
    assert [c.kind for c in nested.children] == ["status", "any"]
    assert job.poll.observe[3].when is not None
    assert job.poll.observe[3].when.values == ("run", "go")
    assert job.schedule.jitter.kind == "full"
    assert job.schedule.retry_after.honour is False
    running = job.schedule.for_state("Running")
    assert running is not None
    assert running.backoff is not None
    assert running.backoff.max_interval == 50
    assert job.result is not None
    assert job.result.on == (Outcome.SUCCESS, Outcome.FAILURE)
    assert (job.errors.code_pointers, job.errors.message_pointers) == (
        ("/code",),
        ("/a", "/b"),
    )
    assert job.items is not None
    assert job.items.paging.cursor_param == "after"
    assert [(f.name, f.param, f.format) for f in job.items.filters] == [
        ("state", "status", "csv")
    ]
    assert spec.lifecycle("part").poll.request.url[0].pointer == "/self"


def test_json_valued_input_default_does_not_break_hashing() -> None:
    """An input whose default is a JSON list still leaves the spec hashable."""
    spec = load_document(_rich_spec())

    hashed = hash(spec)

    assert isinstance(hashed, int)


# --- property: mutated specs load or report problems, never crash ----------------

_BASES = {"minimal": minimal_spec()} | {
    name: json.loads(builtin_path(name).read_text(encoding="utf-8"))
    for name in ("mindee", "oneclickdz", "azure-translator")
}
_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=6)
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_STATE_LIKE = st.sampled_from(
    ["Queud", "Runing", "Done", "Failed", "done", "", "X-Y"]
) | st.text(max_size=8)

Path_ = tuple[str | int, ...]


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    found: list[Path_] = []
    items: list[tuple[str | int, Any]] = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _parent(document: Any, path: Path_) -> Any:
    node = document
    for token in path[:-1]:
        node = node[token]
    return node


def _state_names(document: Any) -> set[str]:
    lifecycles = document.get("lifecycles") if isinstance(document, dict) else None
    names: set[str] = set()
    for lifecycle in lifecycles.values() if isinstance(lifecycles, dict) else ():
        states = lifecycle.get("states") if isinstance(lifecycle, dict) else None
        names.update(states if isinstance(states, dict) else ())
    return names


def _drop(draw: st.DrawFn, document: Any, paths: list[Path_]) -> None:
    droppable = [p for p in paths if isinstance(_parent(document, p), dict)]
    if droppable:
        path = draw(st.sampled_from(droppable))
        del _parent(document, path)[path[-1]]


def _rename_state(draw: st.DrawFn, document: Any, paths: list[Path_]) -> None:
    states = _state_names(document)

    def names_a_state(path: Path_) -> bool:
        value = _parent(document, path)[path[-1]]
        return path[-1] in states or (isinstance(value, str) and value in states)

    references = [p for p in paths if names_a_state(p)]
    if references:
        path = draw(st.sampled_from(references))
        parent = _parent(document, path)
        new = draw(_STATE_LIKE)
        if isinstance(parent, dict) and path[-1] in states:
            parent[new] = parent.pop(path[-1])
        else:
            parent[path[-1]] = new


def _retype(draw: st.DrawFn, document: Any, paths: list[Path_]) -> None:
    path = draw(st.sampled_from(paths))
    _parent(document, path)[path[-1]] = draw(_JSON)


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a valid spec with one to three mutations: drop, rename a state, retype."""
    document: dict[str, Any] = copy.deepcopy(
        draw(st.sampled_from(sorted(_BASES.items())))[1]
    )
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        if paths:
            mutate = draw(st.sampled_from([_drop, _rename_state, _retype]))
            mutate(draw, document, paths)
    return document


def _load_or_problems(document: Any) -> Spec | tuple[Any, ...]:
    try:
        return load_document(document)
    except SpecError as exc:
        return exc.problems


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=mutated_specs())
def test_mutated_spec_loads_or_reports_problems_never_crashes(
    document: dict[str, Any],
) -> None:
    """Any mutation of a valid spec gives a Spec, or a SpecError with ≥ 1 Problem."""
    result = _load_or_problems(document)

    assert isinstance(result, Spec) or len(result) >= 1


_VALID_STATE_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True)


@st.composite
def renamed_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a valid spec in which one state is renamed everywhere it is named."""
    base = draw(st.sampled_from(sorted(_BASES.items())))[1]
    states = _state_names(base)
    old = draw(st.sampled_from(sorted(states)))
    new = draw(_VALID_STATE_NAMES.filter(lambda name: name not in states))
    renamed: dict[str, Any] = json.loads(
        json.dumps(base).replace(json.dumps(old), json.dumps(new))
    )
    return renamed


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=renamed_specs())
def test_renamed_spec_still_loads_compiles_and_draws(document: dict[str, Any]) -> None:
    """Renaming a state consistently keeps a spec valid; each lifecycle compiles and draws."""
    spec = load_document(document)

    machines = [build_machine(lifecycle) for lifecycle in spec.lifecycles]
    diagrams = [mermaid(lifecycle) for lifecycle in spec.lifecycles]

    assert [m.lifecycle for m in machines] == list(spec.lifecycles)
    assert all(d.startswith("stateDiagram-v2\n") for d in diagrams)


def test_spec_model_is_frozen() -> None:
    """A loaded spec cannot be changed in place; attrs.evolve derives a new one."""
    spec = load_builtin("mindee")

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.spec_version = "2"  # type: ignore[misc] # the point of the test

    assert attrs.evolve(spec, spec_version="2").spec_version == "2"
