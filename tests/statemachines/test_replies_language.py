"""Spec language 2, reading replies: how conditions, error rules, wait hints and paging stops load.

Each block is built where it is written (its JSON pointer), and the semantic
checks name the field that is wrong and say what to write instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from statemachines import SpecError, load_document
from statemachines.checks import check_spec
from statemachines.spec import Condition, ErrorSource, Spec, WaitHint
from tests.statemachines.helpers import REPO_ROOT, job_lifecycle, minimal_spec

Change = Callable[[dict[str, Any], dict[str, Any]], None]


def _loaded(change: Change) -> Spec:
    document = minimal_spec()
    change(document, job_lifecycle(document))
    return load_document(document)


def _problems(change: Change) -> list[tuple[str, str]]:
    """Return the errors loading the minimal spec after ``change`` raises."""
    document = minimal_spec()
    change(document, job_lifecycle(document))
    with pytest.raises(SpecError) as info:
        load_document(document)
    return [
        (p.pointer, p.message) for p in info.value.problems if p.severity == "error"
    ]


def _when(condition: dict[str, Any], state: str = "Failed") -> Change:
    """Put a rule 'state when condition' first in the poll's observe rules."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["poll"]["observe"].insert(0, {"when": condition, "state": state})

    return change


def _first_when(spec: Spec) -> Condition:
    when = spec.lifecycle("job").poll.observe[0].when
    assert when is not None
    return when


AT = "/lifecycles/job/poll/observe/0/when"


# -- conditions ------------------------------------------------------------------------------


def test_not_is_built_with_its_one_condition_where_it_is_written() -> None:
    """'not' holds one child, located under /not."""
    when = _first_when(_loaded(_when({"not": {"status": 404}})))

    assert (when.kind, when.location) == ("not", AT)
    assert [(c.kind, c.status, c.location) for c in when.children] == [
        ("status", (404,), f"{AT}/not")
    ]


@pytest.mark.parametrize("kind", ["lt", "le", "gt", "ge"])
def test_a_number_test_is_built_on_a_pointer(kind: str) -> None:
    """lt, le, gt and ge keep their number as the condition's one value."""
    when = _first_when(_loaded(_when({"pointer": "/progress", kind: 100})))

    assert (when.kind, when.pointer, when.values, when.header) == (
        kind,
        "/progress",
        (100,),
        None,
    )


def test_a_value_test_on_a_header_reads_the_header() -> None:
    """'header' with a value test is built as that test on the header's text."""
    when = _first_when(_loaded(_when({"header": "X-Left", "le": 0})))

    assert (when.kind, when.header, when.values) == ("le", "X-Left", (0,))


def test_a_header_alone_stays_a_presence_test() -> None:
    """'header' alone is the presence test it always was."""
    when = _first_when(_loaded(_when({"header": "retry-after"})))

    assert (when.kind, when.header) == ("header", "retry-after")


def test_match_is_built_on_a_wildcard_pointer() -> None:
    """'match' says how the values a '*' pointer names combine."""
    condition = {"pointer": "/items/*/status", "in": ["a", "b"], "match": "all"}

    when = _first_when(_loaded(_when(condition)))

    assert (when.kind, when.match, when.values) == ("in", "all", ("a", "b"))


def test_error_takes_one_code_a_list_or_a_flag() -> None:
    """'error' is built as codes (one or several) or as 'is an error' (a boolean)."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["errors"] = {"code_pointer": "/code"}
        lifecycle["poll"]["observe"][:0] = [
            {"when": {"error": "A"}, "state": "Failed"},
            {"when": {"error": ["B", "C"]}, "state": "Failed"},
            {"when": {"error": False}, "state": "Running"},
        ]

    observe = _loaded(change).lifecycle("job").poll.observe

    built = [(r.when.kind, r.when.values, r.when.exists) for r in observe[:3] if r.when]
    assert built == [
        ("error", ("A",), True),
        ("error", ("B", "C"), True),
        ("error", (), False),
    ]


def test_the_schema_refuses_two_value_tests_in_one_condition() -> None:
    """A pointer takes exactly one value test."""
    found = _problems(_when({"pointer": "/n", "lt": 1, "gt": 0}))

    assert [at for at, _ in found] == [AT]


def test_the_schema_refuses_match_on_a_header() -> None:
    """'match' reads a pointer's elements; a header has none."""
    found = _problems(_when({"header": "x", "equals": "1", "match": "all"}))

    assert [at for at, _ in found] == [AT]


def test_match_without_a_wildcard_is_reported() -> None:
    """'match' on a pointer without '*' names one value: reported at /match."""
    found = _problems(_when({"pointer": "/a", "equals": "x", "match": "all"}))

    assert found == [
        (
            f"{AT}/match",
            (
                "'match' needs a '*' token in the pointer to stand for every element "
                "(e.g. /items/*/status): '/a' names one value"
            ),
        )
    ]


def test_a_wildcard_without_match_is_a_warning() -> None:
    """A '*' token without 'match' is a member name (RFC 6901), which is likely a slip."""
    spec = _loaded(_when({"not": {"pointer": "/a/*/b", "equals": "x"}}))

    assert [(w.pointer, w.message) for w in spec.warnings] == [
        (
            f"{AT}/not/pointer",
            (
                "'*' is read as a member named '*' here; add \"match\": \"all\" or "
                '"any" to test every element'
            ),
        )
    ]


def test_a_header_compared_with_a_number_is_reported() -> None:
    """A header's text is never equal to a number: each such value is reported."""
    change = _when(
        {
            "any": [
                {"header": "x-a", "equals": 0},
                {"header": "x-a", "in": ["b", 1]},
                {"header": "x-a", "gt": 0},
            ]
        }
    )

    found = _problems(change)

    advice = "or use lt, le, gt or ge for numbers"
    assert found == [
        (
            f"{AT}/any/0/equals",
            f"a header's value is text: compare with a string such as '0', {advice}",
        ),
        (
            f"{AT}/any/1/in/1",
            f"a header's value is text: compare with a string such as '1', {advice}",
        ),
    ]


def test_an_error_test_needs_to_know_where_the_code_is() -> None:
    """Testing the error code of a spec that never reads one is reported."""
    found = _problems(_when({"error": "NotFound"}))

    assert found == [
        (
            f"{AT}/error",
            (
                "the service's error code is never read: say where it is with "
                "errors.code_pointer or errors.code_from"
            ),
        )
    ]


def test_error_true_needs_no_code() -> None:
    """'error: true' tests the status too, so it needs no code source."""
    spec = _loaded(_when({"error": True}))

    assert _first_when(spec).kind == "error"


# -- case-insensitive maps -------------------------------------------------------------------


def test_ignore_case_is_built_on_the_rule() -> None:
    """ignore_case is kept on its observe rule."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["poll"]["observe"][0]["ignore_case"] = True

    assert _loaded(change).lifecycle("job").poll.observe[0].ignore_case is True


def test_ignore_case_without_a_map_and_keys_that_clash_are_reported() -> None:
    """ignore_case needs a map, and keys equal but for case must lead to one state."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        rule = lifecycle["poll"]["observe"][0]
        rule["ignore_case"] = True
        rule["map"].update({"QUEUED": "Running", "Done": "Done"})
        lifecycle["poll"]["observe"].insert(
            0, {"when": {"status": 202}, "state": "Running", "ignore_case": True}
        )

    found = _problems(change)

    assert found == [
        (
            "/lifecycles/job/poll/observe/0/ignore_case",
            "ignore_case applies to a value map, and this rule has none",
        ),
        (
            "/lifecycles/job/poll/observe/1/map/QUEUED",
            (
                "'QUEUED' and 'queued' are the same ignoring case but lead to "
                "different states (Running, Queued)"
            ),
        ),
    ]


# -- jitter minimum --------------------------------------------------------------------------


def test_a_jitter_minimum_is_built() -> None:
    """jitter.min is kept (default 0)."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["schedule"] = {"interval": 5, "jitter": {"kind": "full", "min": 1}}

    assert _loaded(change).lifecycle("job").schedule.jitter.min == 1


def test_a_jitter_minimum_on_other_than_full_jitter_is_reported() -> None:
    """A jitter minimum bounds full jitter only."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["schedule"] = {"jitter": {"kind": "proportional", "min": 1}}

    assert _problems(change) == [
        (
            "/lifecycles/job/schedule/jitter/min",
            (
                "min applies to full jitter (drawn from [min, delay]), not to "
                "'proportional': set kind to 'full' or remove min"
            ),
        )
    ]


# -- error rules and error sources -----------------------------------------------------------


def test_error_rules_and_sources_are_built_in_order_where_written() -> None:
    """Rules keep their order and pointers; one source or a list of them."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["errors"] = {
            "rules": [
                {
                    "when": {"all": [{"status": 403}, {"header": "retry-after"}]},
                    "as": "transient",
                    "description": "a rate limit",
                },
                {"when": {"error": "Throttling"}, "as": "transient"},
            ],
            "code_from": [
                {"header": "x-amzn-ErrorType", "pattern": "^([^:]+)"},
                {"pattern": "<Code>([^<]+)</Code>"},
            ],
            "message_from": {"pointer": "/message"},
        }

    errors = _loaded(change).lifecycle("job").errors

    assert [(r.verdict, r.location) for r in errors.rules] == [
        ("transient", "/lifecycles/job/errors/rules/0"),
        ("transient", "/lifecycles/job/errors/rules/1"),
    ]
    assert errors.rules[0].description == "a rate limit"
    assert errors.rules[1].when.location == "/lifecycles/job/errors/rules/1/when"
    assert errors.code_from == (
        ErrorSource(
            header="x-amzn-ErrorType",
            pattern="^([^:]+)",
            location="/lifecycles/job/errors/code_from/0",
        ),
        ErrorSource(
            pattern="<Code>([^<]+)</Code>",
            location="/lifecycles/job/errors/code_from/1",
        ),
    )
    assert errors.message_from == (
        ErrorSource(pointer="/message", location="/lifecycles/job/errors/message_from"),
    )
    assert errors.reads_code


def test_error_rules_from_defaults_point_into_defaults() -> None:
    """A rule inherited from /defaults is located there, a lifecycle's own one in it."""

    def change(document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        document["defaults"] = {"errors": {"code_from": {"header": "x-code"}}}
        lifecycle["errors"] = {"rules": [{"when": {"error": "X"}, "as": "fatal"}]}

    errors = _loaded(change).lifecycle("job").errors

    assert errors.code_from[0].location == "/defaults/errors/code_from"
    assert errors.rules[0].location == "/lifecycles/job/errors/rules/0"


def test_a_lifecycle_without_error_rules_keeps_the_defaults() -> None:
    """No rules and no sources: the status lists decide alone, as before."""
    errors = _loaded(lambda _d, _lc: None).lifecycle("job").errors

    assert (errors.rules, errors.code_from, errors.message_from) == ((), (), ())
    assert not errors.reads_code


def test_an_error_source_names_exactly_one_place() -> None:
    """A pointer and a header in one source are refused by the schema."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["errors"] = {"code_from": {"pointer": "/c", "header": "x-c"}}

    assert [at for at, _ in _problems(change)] == ["/lifecycles/job/errors/code_from"]


def test_a_bad_error_source_pattern_is_reported_at_it() -> None:
    """An error source's pattern must compile (as Python code could build it)."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["errors"] = {"message_from": [{"header": "x-m", "pattern": "(.+)"}]}

    spec = _loaded(change)
    job = spec.lifecycle("job")
    source = attrs.evolve(job.errors.message_from[0], pattern="(")
    errors = attrs.evolve(job.errors, message_from=(source,))
    spec = attrs.evolve(spec, lifecycles=(attrs.evolve(job, errors=errors),))

    problems = check_spec(spec, "spec")

    assert [(p.pointer, p.message) for p in problems] == [
        (
            "/lifecycles/job/errors/message_from/0/pattern",
            (
                "invalid regular expression: missing ), unterminated subpattern at "
                "position 0"
            ),
        )
    ]


# -- wait hints ------------------------------------------------------------------------------


def test_wait_hints_are_built_with_their_conditions() -> None:
    """Each hint keeps its header, kind and optional condition, located in retry_after."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["schedule"] = {
            "retry_after": {
                "max": 60,
                "hints": [
                    {
                        "header": "x-ratelimit-reset",
                        "kind": "epoch",
                        "when": {"header": "x-ratelimit-remaining", "le": 0},
                    },
                    {"header": "x-wait-ms", "kind": "delta_ms", "description": "ms"},
                ],
            }
        }

    hints = _loaded(change).lifecycle("job").schedule.retry_after.hints

    at = "/lifecycles/job/schedule/retry_after/hints"
    assert hints == (
        WaitHint(
            header="x-ratelimit-reset",
            kind="epoch",
            when=Condition(
                kind="le",
                header="x-ratelimit-remaining",
                values=(0,),
                location=f"{at}/0/when",
            ),
            location=f"{at}/0",
        ),
        WaitHint(
            header="x-wait-ms", kind="delta_ms", description="ms", location=f"{at}/1"
        ),
    )


def test_a_wait_hint_condition_reads_headers_only() -> None:
    """A hint is read from headers alone: status, body and error tests are reported."""

    def change(_document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        condition = {
            "all": [
                {"status": 429},
                {"not": {"pointer": "/x", "exists": True}},
                {"header": "h"},
                {"header": "h", "exists": True},
            ]
        }
        hint = {"header": "x", "kind": "delta", "when": condition}
        lifecycle["schedule"] = {"retry_after": {"hints": [hint]}}

    found = _problems(change)

    at = "/lifecycles/job/schedule/retry_after/hints/0/when/all"
    message = (
        "a wait hint's condition reads headers only: test a header's presence or value"
    )
    assert found == [(f"{at}/0", message), (f"{at}/1/not", message)]


# -- paging stop ------------------------------------------------------------------------------


def _items(paging: dict[str, Any]) -> Change:
    def change(document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        document["lifecycles"]["doc"] = {
            "item_only": True,
            "states": {"Waiting": {"initial": True}, "Ok": {"outcome": "success"}},
            "transitions": [{"from": "Waiting", "to": "Ok"}],
            "poll": {
                "request": {"path": "/docs/{item_id}"},
                "observe": [{"when": {"status": 200}, "state": "Ok"}],
            },
        }
        lifecycle["items"] = {
            "lifecycle": "doc",
            "request": {"path": "/jobs/{job_id}/docs"},
            "items_pointer": "/data",
            "id_pointer": "/id",
            "paging": paging,
        }

    return change


def test_a_paging_stop_condition_is_built() -> None:
    """stop_when is a condition located under the paging block."""
    paging = {
        "kind": "cursor",
        "cursor_param": "after",
        "next_pointer": "/next",
        "stop_when": {"pointer": "/has_more", "equals": False},
    }

    items = _loaded(_items(paging)).lifecycle("job").items

    assert items is not None
    stop = items.paging.stop_when
    assert stop is not None
    assert (stop.kind, stop.pointer, stop.values, stop.location) == (
        "equals",
        "/has_more",
        (False,),
        "/lifecycles/job/items/paging/stop_when",
    )


def test_a_paging_stop_cannot_test_an_error_code() -> None:
    """A page is read only when it is not an error: its code is never there."""
    paging = {
        "kind": "cursor",
        "cursor_param": "after",
        "next_pointer": "/next",
        "stop_when": {"error": True},
    }

    assert _problems(_items(paging)) == [
        (
            "/lifecycles/job/items/paging/stop_when/error",
            "a page's error code is not read: test the page's status or body instead",
        )
    ]


# -- the README's examples -------------------------------------------------------------------


def _readme_fragments() -> list[dict[str, Any]]:
    """Return the JSON fragments of the README's "Reading replies" section, parsed."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    # The section ends at the next heading, of any level.
    section = re.split(
        r"\n#{2,3} ", text.split("### Reading replies", 1)[1], maxsplit=1
    )[0]
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL)
    return [json.loads("{" + block + "}") for block in blocks]


def test_the_readme_examples_load_in_a_spec() -> None:
    """Each example of "Reading replies" is valid where it says it goes, and sound."""
    observe, errors, retry_after, paging = _readme_fragments()
    document = minimal_spec()
    lifecycle = job_lifecycle(document)
    lifecycle["states"] = {
        "queued": {"initial": True},
        "running": {},
        "done": {"outcome": "success"},
        "failed": {"outcome": "failure"},
    }
    lifecycle["transitions"] = [
        {"from": "queued", "to": "running"},
        {"from": ["queued", "running"], "to": ["done", "failed"]},
    ]
    lifecycle["poll"]["observe"] = observe["observe"]
    lifecycle["schedule"] = {"jitter": {"kind": "full", "min": 1}, **retry_after}
    lifecycle.update(errors)
    _items(paging["paging"])(document, lifecycle)

    spec = load_document(document)

    job = spec.lifecycle("job")
    assert [r.verdict for r in job.errors.rules] == ["transient", "observe"]
    assert job.schedule.retry_after.hints[0].kind == "epoch"
    assert spec.warnings == ()


# -- error codes reach observe rules ---------------------------------------------------------


def test_an_observed_error_code_no_error_reply_reaches_is_a_warning() -> None:
    """Error replies are classified before observe rules: without an observe rule, say so."""
    condition = {"any": [{"error": True}, {"error": False}, {"error": ["Gone", "X"]}]}

    def change(document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        lifecycle["errors"] = {"code_pointer": "/code"}
        _when(condition)(document, lifecycle)

    spec = _loaded(change)

    advice = "an error reply is never observed here: add an errors rule such as "
    assert [(w.pointer, w.message) for w in spec.warnings] == [
        (
            f"{AT}/any/0/error",
            advice
            + '{"when": {"status": 404}, "as": "observe"} so that this rule sees it',
        ),
        (
            f"{AT}/any/2/error",
            advice
            + '{"when": {"error": "Gone"}, "as": "observe"} so that this rule sees it',
        ),
    ]


@pytest.mark.parametrize(
    ("expect_status", "fatal_status", "warned"),
    [([200, 409], [400], False), ([200, 404], [404], True), ([200, 201], [400], True)],
)
def test_a_poll_accepting_an_unlisted_error_status_observes_it(
    expect_status: list[int], fatal_status: list[int], warned: bool
) -> None:
    """A 4xx the poll accepts and no status list claims reaches observe rules: no warning."""

    def change(document: dict[str, Any], lifecycle: dict[str, Any]) -> None:
        _when({"error": True})(document, lifecycle)
        lifecycle["poll"]["request"]["expect_status"] = expect_status
        lifecycle["errors"] = {"fatal_status": fatal_status}

    spec = _loaded(change)

    assert bool(spec.warnings) is warned
