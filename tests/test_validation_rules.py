"""docs/flows.md#validation: "Validation rejects, with the JSON path of each fault: unknown step
types or fields, missing or dangling `next` targets, unreachable steps, missing branches, loops that can spin
without a wait, `not happened` alone, durations out of range, more steps than the configured
limit." One test per rule through ``parse_flow``, and the same cases through the API
(``PUT /v1/flows/{id}`` answers 422 with ``faults: [{path, message}]``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from flowline.flow.graph import next_step
from flowline.flow.validation import FlowInvalid, load_document, parse_flow
from flowline.settings import Settings
from tests.flows import STEP_EXAMPLES, every_step_type_flow, step_types
from tests.validation_cases import (
    BRANCH_KINDS,
    DANGLING,
    DURATION_BOUNDS,
    DURATIONS,
    MISSING,
    MISSING_BRANCHES,
    NOT_AN_ID,
    NOT_HAPPENED,
    NOT_HAPPENED_ALONE,
    SPINNING,
    UNKNOWN,
    UNREACHABLE,
    WAIT_RANGE,
    WAITING_LOOPS,
    Case,
    flow,
    ids,
    replaced,
    step,
    unreachable,
)


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


# ---------------------------------------------------------------- unknown step types or fields


def test_every_step_type_is_covered_by_the_examples() -> None:
    assert set(STEP_EXAMPLES) == step_types()


@pytest.mark.parametrize(("case_id", "document", "expected"), UNKNOWN, ids=ids(UNKNOWN))
def test_unknown_step_types_and_fields(
    case_id: str, document: dict[str, Any], expected: dict[str, str]
) -> None:
    assert faults(document) == expected


async def test_unknown_step_types_and_fields_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, UNKNOWN)


# ---------------------------------------------------------------- missing or dangling targets


def test_every_branching_step_type_has_its_branches_tested() -> None:
    kinds = {case_id.split("-")[0] for case_id, _, _ in BRANCH_KINDS}
    assert kinds == step_types() - {"exit"}


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


@pytest.mark.parametrize(("case_id", "document", "expected"), UNREACHABLE, ids=ids(UNREACHABLE))
def test_unreachable_steps(case_id: str, document: dict[str, Any], expected: dict[str, str]) -> None:
    assert faults(document) == expected


async def test_unreachable_steps_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, UNREACHABLE)


# ---------------------------------------------------------------- missing branches


@pytest.mark.parametrize(("case_id", "document", "expected"), MISSING_BRANCHES, ids=ids(MISSING_BRANCHES))
def test_missing_branches(case_id: str, document: dict[str, Any], expected: dict[str, str]) -> None:
    assert faults(document) == expected


async def test_missing_branches_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, MISSING_BRANCHES)


def test_a_branch_left_out_of_next_is_no_fault_it_takes_the_next_listed_step() -> None:
    """docs/steps/README.md: a step without ``next`` continues with the step listed after it; the
    last exits."""
    parsed = parse_flow(
        flow(step("w", "wait_for_event", next={"happened": "end"}), step("s", "send"), step("end", "exit"))
    )
    assert next_step(parsed, parsed.steps[0], "timeout") == "s"
    last = parse_flow(flow(step("s", "send"), step("w", "wait_for_event", next={"happened": "s"})))
    assert next_step(last, last.steps[1], "timeout") is None  # the journey ends


# ---------------------------------------------------------------- loops that can spin without a wait


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


@pytest.mark.parametrize(("case_id", "document", "expected"), NOT_HAPPENED, ids=ids(NOT_HAPPENED))
def test_not_happened_alone(case_id: str, document: dict[str, Any], expected: dict[str, str]) -> None:
    assert faults(document) == expected
    beside = [{"event": "opened"}, {"event": "bought", "happened": False}]
    assert parse_flow(flow(step("a", "wait_for_event", conditions=beside)))


async def test_not_happened_alone_through_the_api(api: httpx.AsyncClient) -> None:
    await all_rejected_by_the_api(api, NOT_HAPPENED)


# ---------------------------------------------------------------- durations out of range


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


# ---------------------------------------------------------------- several faults at once

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
        assert response.status_code == 422, case_id
        assert response.json()["faults"] == [{"path": p, "message": m} for p, m in expected.items()], case_id


# ---------------------------------------------------------------- every step type


def test_a_flow_with_every_step_type_is_valid() -> None:
    parsed = parse_flow(every_step_type_flow())
    assert {s.type for s in parsed.steps} == step_types()


async def test_a_flow_with_every_step_type_is_valid_through_the_api(api: httpx.AsyncClient) -> None:
    response = await api.put("/v1/flows/f", json=every_step_type_flow())
    assert response.status_code == 200, response.text
    assert {s["type"] for s in response.json()["draft"]["steps"]} == step_types()
