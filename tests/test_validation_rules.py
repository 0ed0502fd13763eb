"""SPEC §3: "Validation rejects, with the JSON path of each fault: unknown step types or fields,
missing or dangling `next` targets, unreachable steps, missing branches, loops that can spin
without a wait, `not happened` alone, durations out of range, more steps than the configured
limit." One test per rule through ``parse_flow``, and the same cases through the API
(``PUT /v1/flows/{id}`` answers 422 with ``faults: [{path, message}]``)."""

from __future__ import annotations

import copy
from typing import Any, get_args

import httpx
import pytest

from flowline.flow.graph import next_step
from flowline.flow.model import Step
from flowline.flow.validation import FlowInvalid, load_document, parse_flow
from flowline.settings import Settings

Case = tuple[str, dict[str, Any], dict[str, str]]  # (id, document, {path: message})

NOT_AN_ID = "is not an id (1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit)"
WAIT_RANGE = "a wait lasts from 1s to 5 years"
COND = {"tag": "vip", "op": "has"}

# A minimal valid step of every type (without id and next).
EXAMPLES: dict[str, dict[str, Any]] = {
    "pause": {"type": "pause", "for": "1h"},
    "send": {"type": "send", "channel": "in_app", "content": {"body": "hi"}},
    "webhook": {"type": "webhook", "url": "http://127.0.0.1:1/hook"},
    "split": {"type": "split", "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]},
    "branch": {"type": "branch", "branches": [{"name": "vip", "when": COND}]},
    "update_variable": {"type": "update_variable", "set": {"n": "1 + 1"}},
    "wait_for_date": {"type": "wait_for_date", "attribute": "renewal", "is_today": True},
    "update_profile": {"type": "update_profile", "set": {"plan": "pro"}},
    "tag": {"type": "tag", "add": ["vip"]},
    "do_not_contact": {"type": "do_not_contact", "action": "add", "channel": "email"},
    "start_conversation": {"type": "start_conversation", "tag": "support"},
    "wait_for_event": {"type": "wait_for_event", "conditions": [{"event": "bought"}], "timeout": "1d"},
    "wait_for_change": {"type": "wait_for_change", "attribute": "plan", "timeout": "1d"},
    "add_to_flow": {"type": "add_to_flow", "flow": "other"},
    "call_api": {"type": "call_api", "method": "GET", "url": "http://127.0.0.1:1/x"},
    "exit": {"type": "exit"},
}


def union_members() -> set[str]:
    """The ``type`` of every member of the ``Step`` union."""
    members = get_args(get_args(Step)[0])
    return {get_args(member.model_fields["type"].annotation)[0] for member in members}


def flow(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "f", "name": "F", "trigger": {"type": "event", "event": "e"}, "steps": list(steps), **extra}


def step(step_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, **copy.deepcopy(EXAMPLES[kind]), **fields}


def faults(document: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document, **kwargs)
    return {f.path: f.message for f in caught.value.faults}


async def api_faults(api: httpx.AsyncClient, document: dict[str, Any]) -> dict[str, str]:
    response = await api.put(f"/v1/flows/{document['id']}", json=document)
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"message", "faults"} and all(set(f) == {"path", "message"} for f in body["faults"])
    return {f["path"]: f["message"] for f in body["faults"]}


async def all_rejected_by_the_api(api: httpx.AsyncClient, cases: list[Case]) -> None:
    for case_id, document, expected in cases:
        assert await api_faults(api, document) == expected, case_id
    assert (await api.get("/v1/flows/f")).status_code == 404  # nothing was saved


def ids(cases: list[Case]) -> list[str]:
    return [case[0] for case in cases]


# ---------------------------------------------------------------- unknown step types or fields

UNKNOWN: list[Case] = [
    (
        "type",
        flow(step("a", "exit"), {"id": "b", "type": "teleport"}),
        {"$.steps[1]": "unknown type 'teleport'"},
    ),
    ("no-type", flow({"id": "a", "for": "1h"}), {"$.steps[0]": "'type' is missing"}),
    *[
        (f"field-{kind}", flow(step("a", kind, colour="red")), {"$.steps[0].colour": "unknown field"})
        for kind in EXAMPLES
    ],
    *[
        (
            f"branch-{kind}",
            flow(step("a", kind, next={"opened": "b"}), step("b", "exit")),
            {"$.steps[0].next.opened": "unknown field"},
        )
        for kind in ("send", "wait_for_event", "wait_for_change", "call_api", "add_to_flow")
    ],
    (
        "nested",
        flow(step("a", "split", control={"weight": 1, "nxt": "a"})),
        {"$.steps[0].control.nxt": "unknown field"},
    ),
    ("settings", flow(step("a", "exit"), settings={"speed": 1}), {"$.settings.speed": "unknown field"}),
]


def test_every_step_type_is_covered_by_the_examples() -> None:
    assert set(EXAMPLES) == union_members()


@pytest.mark.parametrize(("case_id", "document", "expected"), UNKNOWN, ids=ids(UNKNOWN))
def test_unknown_step_types_and_fields(
    case_id: str, document: dict[str, Any], expected: dict[str, str]
) -> None:
    assert faults(document) == expected


async def test_unknown_step_types_and_fields_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, UNKNOWN)


# ---------------------------------------------------------------- missing or dangling targets

# (id, the step under test with TARGET where a target goes, the path of that target)
TARGET = "__target__"
BRANCH_KINDS: list[tuple[str, dict[str, Any], str]] = [
    *[
        (f"{kind}-next", step("a", kind, next=TARGET), "next")
        for kind in EXAMPLES
        if kind not in ("split", "branch", "exit")
    ],
    *[(f"send-{b}", step("a", "send", next={b: TARGET}), f"next.{b}") for b in ("sent", "skipped", "failed")],
    (
        "split-variant",
        step("a", "split", variants=[{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "next": TARGET}]),
        "variants[1].next",
    ),
    (
        "split-control",
        step("a", "split", variants=[{"name": "a", "weight": 1}], control={"weight": 1, "next": TARGET}),
        "control.next",
    ),
    (
        "branch-branch",
        step("a", "branch", branches=[{"name": "vip", "when": COND, "next": TARGET}]),
        "branches[0].next",
    ),
    ("branch-else", step("a", "branch", **{"else": TARGET}), "else"),
    *[
        (f"wait_for_event-{b}", step("a", "wait_for_event", next={b: TARGET}), f"next.{b}")
        for b in ("happened", "timeout")
    ],
    *[
        (f"wait_for_change-{b}", step("a", "wait_for_change", next={b: TARGET}), f"next.{b}")
        for b in ("changed", "timeout")
    ],
    *[
        (f"call_api-{b}", step("a", "call_api", next={b: TARGET}), f"next.{b}")
        for b in ("success", "client_error", "server_error", "error")
    ],
    *[
        (f"add_to_flow-{b}", step("a", "add_to_flow", next={b: TARGET}), f"next.{b}")
        for b in ("added", "failed")
    ],
]


def replaced(node: Any, old: str, new: str) -> Any:
    """A copy of ``node`` with every string ``old`` (value or key) replaced by ``new``."""
    if isinstance(node, dict):
        return {replaced(k, old, new): replaced(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [replaced(item, old, new) for item in node]
    return new if node == old else node


def target_cases(target: str, message: str) -> list[Case]:
    return [
        (
            case_id,
            flow(replaced(tested, TARGET, target), step("end", "exit")),
            {f"$.steps[0].{where}": message},
        )
        for case_id, tested, where in BRANCH_KINDS
    ]


DANGLING = target_cases("ghost", "no step has the id 'ghost'")
MISSING = target_cases("", f"'' {NOT_AN_ID}")


def test_every_branching_step_type_has_its_branches_tested() -> None:
    kinds = {case_id.split("-")[0] for case_id, _, _ in BRANCH_KINDS}
    assert kinds == union_members() - {"exit"}


@pytest.mark.parametrize(("case_id", "document", "expected"), DANGLING, ids=ids(DANGLING))
def test_dangling_next_targets(case_id: str, document: dict[str, Any], expected: dict[str, str]) -> None:
    assert faults(document) == expected
    assert parse_flow(replaced(document, "ghost", "end"))  # the same flow with a real target is valid


@pytest.mark.parametrize(("case_id", "document", "expected"), MISSING, ids=ids(MISSING))
def test_missing_next_targets(case_id: str, document: dict[str, Any], expected: dict[str, str]) -> None:
    assert faults(document) == expected


async def test_missing_and_dangling_next_targets_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, DANGLING + MISSING)


# ---------------------------------------------------------------- unreachable steps


def unreachable(step_id: str) -> str:
    return f"step {step_id!r} can never be reached"


UNREACHABLE: list[Case] = [
    ("after-an-exit", flow(step("a", "exit"), step("b", "send")), {"$.steps[1]": unreachable("b")}),
    (
        "every-branch-jumps-over-it",
        flow(
            step("a", "send", next={"sent": "c", "skipped": "c", "failed": "c"}),
            step("b", "tag"),
            step("c", "exit"),
        ),
        {"$.steps[1]": unreachable("b")},
    ),
    (
        "after-a-branch-step-whose-rules-and-else-jump",
        flow(
            step("a", "branch", branches=[{"name": "vip", "when": COND, "next": "c"}], **{"else": "c"}),
            step("b", "tag"),
            step("c", "exit"),
        ),
        {"$.steps[1]": unreachable("b")},
    ),
    (
        "after-a-control-group-that-leaves",
        flow(
            step("a", "split", variants=[{"name": "x", "weight": 1, "next": "c"}], control={"weight": 1}),
            step("b", "tag"),
            step("c", "exit"),
        ),
        {"$.steps[1]": unreachable("b")},
    ),
    (
        "after-add-to-flow-then-exit",
        flow(
            step("a", "add_to_flow", then="exit", next={"failed": "c"}), step("b", "tag"), step("c", "exit")
        ),
        {"$.steps[1]": unreachable("b")},
    ),
    (
        "a-cycle-nothing-enters",
        flow(step("a", "exit"), step("b", "pause", next="c"), step("c", "pause", next="b")),
        {"$.steps[1]": unreachable("b"), "$.steps[2]": unreachable("c")},
    ),
]


@pytest.mark.parametrize(("case_id", "document", "expected"), UNREACHABLE, ids=ids(UNREACHABLE))
def test_unreachable_steps(case_id: str, document: dict[str, Any], expected: dict[str, str]) -> None:
    assert faults(document) == expected


async def test_unreachable_steps_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, UNREACHABLE)


# ---------------------------------------------------------------- missing branches

MISSING_BRANCHES: list[Case] = [
    (
        "branch-without-branches",
        flow({"id": "a", "type": "branch"}),
        {"$.steps[0].branches": "Field required"},
    ),
    (
        "branch-with-no-branches",
        flow(step("a", "branch", branches=[])),
        {"$.steps[0].branches": "List should have at least 1 item after validation, not 0"},
    ),
    ("split-without-variants", flow({"id": "a", "type": "split"}), {"$.steps[0].variants": "Field required"}),
    (
        "split-with-no-variants",
        flow(step("a", "split", variants=[], control={"weight": 1})),
        {"$.steps[0].variants": "List should have at least 1 item after validation, not 0"},
    ),
    (
        "split-with-one-variant-and-no-control",
        flow(step("a", "split", variants=[{"name": "x", "weight": 1}])),
        {"$.steps[0]": "a split needs two variants, or one and a control group"},
    ),
]


@pytest.mark.parametrize(("case_id", "document", "expected"), MISSING_BRANCHES, ids=ids(MISSING_BRANCHES))
def test_missing_branches(case_id: str, document: dict[str, Any], expected: dict[str, str]) -> None:
    assert faults(document) == expected


async def test_missing_branches_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, MISSING_BRANCHES)


def test_a_branch_left_out_of_next_is_no_fault_it_takes_the_next_listed_step() -> None:
    """SPEC §3: a step without ``next`` continues with the step listed after it, the last exits."""
    parsed = parse_flow(
        flow(step("w", "wait_for_event", next={"happened": "end"}), step("s", "send"), step("end", "exit"))
    )
    assert next_step(parsed, parsed.steps[0], "timeout") == "s"
    last = parse_flow(flow(step("s", "send"), step("w", "wait_for_event", next={"happened": "s"})))
    assert next_step(last, last.steps[1], "timeout") is None  # the journey ends


# ---------------------------------------------------------------- loops that can spin without a wait


def loop_through(kind: str, **fields: Any) -> dict[str, Any]:
    """``w`` (a step of ``kind``) -> ``s`` (a send) -> back to ``w``."""
    return flow({"id": "w", "type": kind, **fields}, step("s", "send", next="w"))


SPINNING: list[Case] = [
    ("a-step-to-itself", flow(step("a", "webhook", next="a")), {"$.steps[0]": "loop without a wait: a -> a"}),
    (
        "through-a-branch-else",
        flow(
            step("a", "tag"),
            step("b", "branch", branches=[{"name": "vip", "when": COND, "next": "end"}], **{"else": "a"}),
            step("end", "exit"),
        ),
        {"$.steps[0]": "loop without a wait: a -> b -> a"},
    ),
    (
        "through-a-split-variant",
        flow(
            step("a", "update_variable"),
            step(
                "b", "split", variants=[{"name": "x", "weight": 1, "next": "a"}, {"name": "y", "weight": 1}]
            ),
            step("end", "exit"),
        ),
        {"$.steps[0]": "loop without a wait: a -> b -> a"},
    ),
    (
        "through-a-call-error",
        flow(
            step("a", "update_profile"),
            step("b", "call_api", next={"success": "end", "error": "a"}),
            step("end", "exit"),
        ),
        {"$.steps[0]": "loop without a wait: a -> b -> a"},
    ),
    (
        "through-add-to-flow-failed",
        flow(step("a", "add_to_flow", next={"failed": "a"}), step("end", "exit")),
        {"$.steps[0]": "loop without a wait: a -> a"},
    ),
    # Steps that wait only the first time round: the loop spins from the second visit on.
    (
        "a-pause-until-a-date-time",
        loop_through("pause", until="2026-01-01T00:00:00+00:00"),
        {"$.steps[0]": "loop without a wait: w -> s -> w"},
    ),
    (
        "a-date-wait-that-is-not-every-year",
        loop_through("wait_for_date", attribute="renewal", is_today=True),
        {"$.steps[0]": "loop without a wait: w -> s -> w"},
    ),
    (
        "an-event-wait-counting-events-since-entry",
        loop_through("wait_for_event", conditions=[{"event": "x"}], timeout="1d", include_since_entry=True),
        {"$.steps[0]": "loop without a wait: w -> s -> w"},
    ),
]

WAITING_LOOPS = {
    "pause-for": loop_through("pause", **{"for": "1d"}),
    "pause-until-a-weekday": loop_through("pause", until={"weekday": "monday", "time": "09:00"}),
    "every-year-date": loop_through("wait_for_date", attribute="birthday", is_today=True, every_year=True),
    "event-wait": loop_through("wait_for_event", conditions=[{"event": "x"}], timeout="1d"),
    "change-wait": loop_through("wait_for_change", attribute="plan", timeout="indefinite"),
}


@pytest.mark.parametrize(("case_id", "document", "expected"), SPINNING, ids=ids(SPINNING))
def test_loops_that_can_spin_without_a_wait(
    case_id: str, document: dict[str, Any], expected: dict[str, str]
) -> None:
    assert faults(document) == expected


@pytest.mark.parametrize("document", WAITING_LOOPS.values(), ids=WAITING_LOOPS.keys())
def test_loops_through_a_step_that_always_waits_are_valid(document: dict[str, Any]) -> None:
    assert parse_flow(document).steps[1].next == "w"  # type: ignore[union-attr]


async def test_loops_that_can_spin_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, SPINNING)
    for document in WAITING_LOOPS.values():
        assert (await api.post("/v1/flows/f/validate", json=document)).status_code == 200


# ---------------------------------------------------------------- `not happened` alone

NOT_HAPPENED_ALONE = "'not happened' conditions need a 'happened' condition beside them"
NOT_HAPPENED: list[Case] = [
    (
        "one",
        flow(step("a", "wait_for_event", conditions=[{"event": "bought", "happened": False}])),
        {"$.steps[0].conditions": NOT_HAPPENED_ALONE},
    ),
    (
        "two-in-a-later-step",
        flow(
            step("a", "tag"),
            step(
                "b",
                "wait_for_event",
                conditions=[{"event": "x", "happened": False}, {"event": "y", "happened": False}],
            ),
        ),
        {"$.steps[1].conditions": NOT_HAPPENED_ALONE},
    ),
]


@pytest.mark.parametrize(("case_id", "document", "expected"), NOT_HAPPENED, ids=ids(NOT_HAPPENED))
def test_not_happened_alone(case_id: str, document: dict[str, Any], expected: dict[str, str]) -> None:
    assert faults(document) == expected
    beside = [{"event": "opened"}, {"event": "bought", "happened": False}]
    assert parse_flow(flow(step("a", "wait_for_event", conditions=beside)))


async def test_not_happened_alone_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, NOT_HAPPENED)


# ---------------------------------------------------------------- durations out of range


def one_step(kind: str, **fields: Any) -> dict[str, Any]:
    return flow({**step("a", kind), **fields})


EVERY_YEAR = "with every_year, is_in and was are at most 365d"
CALL_TIMEOUT = "a call's timeout is from 1s to 60s"
DURATIONS: list[Case] = [
    ("pause-0s", one_step("pause", **{"for": "0s"}), {"$.steps[0].for": WAIT_RANGE}),
    ("pause-over-5-years", one_step("pause", **{"for": "1831d"}), {"$.steps[0].for": WAIT_RANGE}),
    (
        "past-any-date",
        one_step("pause", **{"for": "99999999999999w"}),
        {"$.steps[0].for": "'99999999999999w' is too long a duration"},
    ),
    (
        "not-a-duration",
        one_step("pause", **{"for": "3 fortnights"}),
        {"$.steps[0].for": "'3 fortnights' is not a duration such as '30s', '15m', '4h', '7d' or '2w'"},
    ),
    (
        "date-is-in-0s",
        one_step("wait_for_date", is_today=False, is_in="0s"),
        {"$.steps[0].is_in": WAIT_RANGE},
    ),
    (
        "date-was-over-5-years",
        one_step("wait_for_date", is_today=False, was="2000d"),
        {"$.steps[0].was": WAIT_RANGE},
    ),
    (
        "every-year-over-a-year",
        one_step("wait_for_date", is_today=False, is_in="366d", every_year=True),
        {"$.steps[0]": EVERY_YEAR},
    ),
    ("event-timeout-0s", one_step("wait_for_event", timeout="0s"), {"$.steps[0].timeout": WAIT_RANGE}),
    (
        "event-within-0s",
        one_step("wait_for_event", conditions=[{"event": "x", "within": "0s"}]),
        {"$.steps[0].conditions[0].within": WAIT_RANGE},
    ),
    (
        "change-timeout-over-5-years",
        one_step("wait_for_change", timeout="300w"),
        {"$.steps[0].timeout": WAIT_RANGE},
    ),
    ("call-timeout-0s", one_step("call_api", timeout="0s"), {"$.steps[0].timeout": CALL_TIMEOUT}),
    ("call-timeout-61s", one_step("call_api", timeout="61s"), {"$.steps[0].timeout": CALL_TIMEOUT}),
    (
        "branch-condition-within-0s",
        one_step("branch", branches=[{"name": "x", "when": {"event": "x", "within": "0s"}}]),
        {"$.steps[0].branches[0].when": "'within' must be longer than zero"},
    ),
    (
        "settings",
        flow(step("a", "exit"), settings={"goal": {"event": "x", "within": "0s"}, "max_duration": "2000d"}),
        {"$.settings.goal.within": WAIT_RANGE, "$.settings.max_duration": WAIT_RANGE},
    ),
]
DURATION_BOUNDS = [
    one_step("pause", **{"for": "1s"}),
    one_step("pause", **{"for": "1830d"}),
    one_step("wait_for_date", is_today=False, is_in="365d", every_year=True),
    one_step("wait_for_date", is_today=False, was="1830d"),
    one_step("wait_for_event", timeout="1s"),
    one_step("call_api", timeout="60s"),
]


@pytest.mark.parametrize(("case_id", "document", "expected"), DURATIONS, ids=ids(DURATIONS))
def test_durations_out_of_range(case_id: str, document: dict[str, Any], expected: dict[str, str]) -> None:
    assert faults(document) == expected


@pytest.mark.parametrize("document", DURATION_BOUNDS)
def test_durations_at_the_bounds_are_valid(document: dict[str, Any]) -> None:
    assert parse_flow(document)


async def test_durations_out_of_range_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, DURATIONS)


# ---------------------------------------------------------------- more steps than the limit


def chain(count: int) -> dict[str, Any]:
    return flow(*[step(f"s{i}", "pause") for i in range(count)])


def test_more_steps_than_the_configured_limit() -> None:
    assert faults(chain(4), max_steps=3) == {"$.steps": "4 steps; a flow may have at most 3"}
    assert len(parse_flow(chain(3), max_steps=3).steps) == 3


async def test_more_steps_than_the_configured_limit_through_the_api(api: httpx.AsyncClient) -> None:
    limit = Settings().max_steps  # what the api fixture's settings use
    assert await api_faults(api, chain(limit + 1)) == {
        "$.steps": f"{limit + 1} steps; a flow may have at most {limit}"
    }
    assert (await api.put("/v1/flows/f", json=chain(limit))).status_code == 200


# ---------------------------------------------------------------- any document


def test_invalid_yaml_is_a_fault_at_the_root() -> None:
    with pytest.raises(FlowInvalid) as caught:
        load_document("steps: [unclosed")
    [fault] = caught.value.faults
    assert fault.path == "$" and fault.message.startswith("not valid YAML or JSON")
    assert faults(["a list"]) == {"$": "a flow document is a mapping (object)"}


async def test_invalid_yaml_is_a_fault_at_the_root_through_the_api(api: httpx.AsyncClient) -> None:
    yaml_header = {"Content-Type": "application/yaml"}
    response = await api.put("/v1/flows/f", content="steps: [unclosed", headers=yaml_header)
    assert response.status_code == 422
    [fault] = response.json()["faults"]
    assert fault["path"] == "$" and fault["message"].startswith("not valid YAML or JSON")
    response = await api.put("/v1/flows/f", content="- a list", headers=yaml_header)
    assert response.json()["faults"] == [{"path": "$", "message": "a flow document is a mapping (object)"}]


# Schema faults are all reported together; graph rules run once the schema holds, and then
# report every fault of theirs together too.
SEVERAL: list[Case] = [
    (
        "schema",
        flow(
            step("a", "pause", colour="red", **{"for": "0s"}),
            {"id": "b", "type": "teleport"},
            step("c", "send", next={"sent": ""}),
            step("d", "wait_for_event", conditions=[{"event": "x", "happened": False}]),
        ),
        {
            "$.steps[0].for": WAIT_RANGE,
            "$.steps[0].colour": "unknown field",
            "$.steps[1]": "unknown type 'teleport'",
            "$.steps[2].next.sent": f"'' {NOT_AN_ID}",
            "$.steps[3].conditions": NOT_HAPPENED_ALONE,
        },
    ),
    (
        "targets",
        flow(
            step("a", "pause", next="ghost"), step("b", "send", next={"failed": "nowhere"}), step("b", "exit")
        ),
        {
            "$.steps[2].id": "duplicate step id 'b'",
            "$.steps[0].next": "no step has the id 'ghost'",
            "$.steps[1].next.failed": "no step has the id 'nowhere'",
        },
    ),
    (
        "graph",
        flow(step("a", "webhook", next="a"), step("b", "tag"), step("c", "exit")),
        {
            "$.steps[1]": unreachable("b"),
            "$.steps[2]": unreachable("c"),
            "$.steps[0]": "loop without a wait: a -> a",
        },
    ),
]


@pytest.mark.parametrize(("case_id", "document", "expected"), SEVERAL, ids=ids(SEVERAL))
def test_several_faults_are_all_reported(
    case_id: str, document: dict[str, Any], expected: dict[str, str]
) -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document)
    assert [(f.path, f.message) for f in caught.value.faults] == list(expected.items())


async def test_several_faults_are_all_reported_through_the_api(api: httpx.AsyncClient) -> None:
    for case_id, document, expected in SEVERAL:
        response = await api.put("/v1/flows/f", json=document)
        assert response.json()["faults"] == [{"path": p, "message": m} for p, m in expected.items()], case_id


def every_step_type() -> dict[str, Any]:
    """One valid flow using every member of the ``Step`` union, each branch leading on."""
    steps = [step(kind, kind) for kind in EXAMPLES if kind != "exit"]
    steps[0]["next"] = "send"
    steps[1]["next"] = {"sent": "webhook", "skipped": "webhook", "failed": "exit"}
    steps[3]["variants"][0]["next"] = "branch"
    steps[4]["else"] = "update_variable"
    return flow(*steps, step("exit", "exit"))


def test_a_flow_with_every_step_type_is_valid() -> None:
    parsed = parse_flow(every_step_type())
    assert {s.type for s in parsed.steps} == union_members()


async def test_a_flow_with_every_step_type_is_valid_through_the_api(api: httpx.AsyncClient) -> None:
    response = await api.put("/v1/flows/f", json=every_step_type())
    assert response.status_code == 200, response.text
    assert {s["type"] for s in response.json()["draft"]["steps"]} == union_members()
