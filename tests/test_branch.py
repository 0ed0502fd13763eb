"""branch: ordered rules over the person's attributes, tags, events and flows; the first that holds
wins, else ``else``. Journeys run on the time-skipping server against SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities import ConditionActivities
from flowline.flow.graph import next_step
from flowline.flow.steps import BranchStep
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.journey import ConditionsRequest, JourneyRef, JourneyState, NamedCondition
from flowline.store.database import Store
from flowline.store.tables import profiles
from tests.conftest import Tenant, finish
from tests.test_journeys import publish

ADULT = {"attribute": "age", "op": "greater_than_or_equal", "value": 18}


def branch_flow(branches: list[dict[str, Any]], *, every_step: bool = False, **fields: Any) -> dict[str, Any]:
    """A branch step, then a message per target it names (``first``, ``second``, ``other``; a
    branch without a target reaches ``first``, listed next), then the exit."""
    targets = {b.get("next") for b in branches} | {fields.get("else")}
    targets |= {"first"} if None in targets else set()

    def message(step_id: str) -> dict[str, Any]:
        content = {"body": step_id}
        return {"id": step_id, "type": "send", "channel": "in_app", "content": content, "next": "done"}

    return {
        "id": "branchy",
        "name": "Branchy",
        "trigger": {"type": "flow"},
        "steps": [
            {"id": "check", "type": "branch", "branches": branches, **fields},
            *[message(m) for m in ("first", "second", "other") if every_step or m in targets],
            {"id": "done", "type": "exit"},
        ],
    }


async def run_for(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, profile: str, flow: str = "branchy"
) -> tuple[JourneyState, list[str]]:
    """Start a journey of ``flow`` for ``profile``; its final state and the messages it sent."""
    started = await api.post(f"/v1/flows/{flow}/journeys", json={"profile_id": profile})
    assert started.status_code == 201, started.text
    state = await finish(temporal, started.json()["journey_id"])
    inbox = (await api.get(f"/v1/profiles/{profile}/inbox")).json()["messages"]
    return state, [m["body"] for m in inbox]


async def test_a_branch_on_an_attribute(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, branch_flow([{"name": "adult", "when": ADULT, "next": "second"}], **{"else": "other"}))
    await api.put("/v1/profiles/ada", json={"attributes": {"age": 36}})
    await api.put("/v1/profiles/tim", json={"attributes": {"age": 12}})
    state, inbox = await run_for(api, temporal, "ada")
    assert (state.path[0].branch, inbox) == ("adult", ["second"])
    assert state.path[0].error is None
    state, inbox = await run_for(api, temporal, "tim")
    assert (state.path[0].branch, inbox) == ("else", ["other"])
    # Nothing known about the person: no rule holds.
    state, inbox = await run_for(api, temporal, "nobody")
    assert (state.path[0].branch, inbox) == ("else", ["other"])


async def test_the_first_matching_branch_wins_and_else_defaults_to_the_next_step(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    named = {"attribute": "first_name", "op": "is_not_empty"}
    rules = [
        {"name": "grown_up", "when": ADULT, "next": "second"},
        {"name": "named", "when": named, "next": "other"},
    ]
    await publish(api, branch_flow(rules))
    await api.put("/v1/profiles/ada", json={"attributes": {"age": 36, "first_name": "Ada"}})
    await api.put("/v1/profiles/tim", json={"attributes": {"age": 12, "first_name": "Tim"}})
    await api.put("/v1/profiles/zed", json={"attributes": {"age": 9}})
    assert (await run_for(api, temporal, "ada"))[1] == ["second"], "both hold: the first listed wins"
    assert (await run_for(api, temporal, "tim"))[1] == ["other"]
    state, inbox = await run_for(api, temporal, "zed")
    assert (state.path[0].branch, inbox) == ("else", ["first"]), "no else: the step listed next"

    await publish(api, branch_flow(list(reversed(rules))))  # version 2: the other order
    state, _ = await run_for(api, temporal, "ada")
    assert [(p.step, p.branch) for p in state.path[:2]] == [("check", "named"), ("other", "sent")]


async def test_a_branch_on_a_tag(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, branch_flow([{"name": "vip", "when": {"tag": "vip"}, "next": "second"}]))
    for person in ("ada", "tim"):
        await api.put(f"/v1/profiles/{person}", json={"attributes": {}})
    async with store.begin() as conn:
        await conn.execute(
            profiles.update()
            .where(profiles.c.workspace_id == tenant.id, profiles.c.id == "ada")
            .values(tags=["vip"])
        )
    assert (await run_for(api, temporal, "ada"))[0].path[0].branch == "vip"
    assert (await run_for(api, temporal, "tim"))[0].path[0].branch == "else"


async def test_a_branch_on_an_event_count_within_a_window(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    rule = {
        "event": "purchase",
        "within": "7d",
        "count": {"op": ">=", "value": 2},
        "where": [{"property": "total", "op": "greater_than", "value": 0}],
    }
    await publish(api, branch_flow([{"name": "loyal", "when": rule, "next": "second"}], **{"else": "other"}))
    now = await temporal.get_current_time()
    purchases = {"ada": [1, 2, 30], "tim": [1, 30, 40], "zed": [1, 2]}  # days ago
    for person, days in purchases.items():
        for i, ago in enumerate(days):
            event = {
                "id": f"{person}-{i}",
                "profile_id": person,
                "name": "purchase",
                "timestamp": (now - timedelta(days=ago)).isoformat(),
                "properties": {"total": 0 if person == "zed" and i == 1 else 10},
            }
            assert (await api.post("/v1/events", json=event)).status_code == 202
    assert (await run_for(api, temporal, "ada"))[1] == ["second"]
    assert (await run_for(api, temporal, "tim"))[1] == ["other"], "only one purchase in the window"
    assert (await run_for(api, temporal, "zed"))[1] == ["other"], "one of two fails the filter"


async def test_a_branch_on_flow_membership(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    onboarding = {
        "id": "onboarding",
        "name": "Onboarding",
        "trigger": {"type": "flow"},
        "steps": [{"id": "wait", "type": "pause", "for": "300d"}],
    }
    await publish(api, onboarding)
    rules = [
        {"name": "onboarding", "when": {"flow": "onboarding", "state": "in_flow"}, "next": "second"},
        {"name": "was_here", "when": {"flow": "branchy", "state": "exited"}, "next": "other"},
    ]
    await publish(api, branch_flow(rules, **{"else": "first"}))
    started = await api.post("/v1/flows/onboarding/journeys", json={"profile_id": "ada"})
    assert started.status_code == 201
    state, inbox = await run_for(api, temporal, "ada")
    assert (state.path[0].branch, inbox) == ("onboarding", ["second"])
    state, inbox = await run_for(api, temporal, "tim")
    assert (state.path[0].branch, inbox) == ("else", ["first"])
    # Tim's first journey through this flow has ended by now.
    state, inbox = await run_for(api, temporal, "tim")
    assert [(p.step, p.branch) for p in state.path[:2]] == [("check", "was_here"), ("other", "sent")]


def test_branch_targets_are_validated_with_their_paths() -> None:
    rules = [
        {"name": "a", "when": ADULT, "next": "second"},
        {"name": "b", "when": {"tag": "x"}, "next": "nowhere"},
    ]
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(branch_flow(rules, every_step=True, **{"else": "ghost"}))
    assert [(f.path, f.message) for f in caught.value.faults] == [
        ("$.steps[0].branches[1].next", "no step has the id 'nowhere'"),
        ("$.steps[0].else", "no step has the id 'ghost'"),
    ]
    with pytest.raises(FlowInvalid) as caught:
        wrong = {"attribute": "age", "op": "was_today", "type": "number"}
        parse_flow(branch_flow([{"name": "a", "when": wrong}]))
    [fault] = caught.value.faults
    assert fault.path == "$.steps[0].branches[0].when"
    assert fault.message.startswith("'was_today' does not apply to a number attribute")
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(branch_flow([{"name": "a", "when": {"any": [{"tag": "x"}, {"tags": "y"}]}}]))
    assert caught.value.faults[0].path == "$.steps[0].branches[0].when.any[1]"
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(branch_flow([{"name": "else", "when": ADULT}, {"name": "x", "when": ADULT}]))
    assert "'else' is the branch taken when no condition holds" in caught.value.faults[0].message


def test_every_target_is_reachable_and_a_branch_loop_needs_a_wait() -> None:
    flow = parse_flow(branch_flow([{"name": "a", "when": ADULT, "next": "other"}], **{"else": "second"}))
    step = flow.steps[0]
    assert isinstance(step, BranchStep)
    assert [next_step(flow, step, b) for b in ("a", "else")] == ["other", "second"]
    with pytest.raises(FlowInvalid) as caught:
        to_other = [{"name": "a", "when": ADULT, "next": "other"}]
        parse_flow(branch_flow(to_other, every_step=True, **{"else": "other"}))
    assert [f.message for f in caught.value.faults] == [
        "step 'first' can never be reached",
        "step 'second' can never be reached",
    ]
    looping = branch_flow([{"name": "again", "when": ADULT, "next": "check"}])
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(looping)
    assert any(f.message.startswith("loop without a wait") for f in caught.value.faults)


async def test_an_evaluation_error_takes_else_with_the_reason(store: Store, tenant: Tenant) -> None:
    ref = JourneyRef(journey_id="j", workspace_id=tenant.id, flow_id="f", version=1, profile_id="p")
    rules = [
        NamedCondition.model_validate({"name": "never", "when": {"tag": "x"}}),
        NamedCondition.model_validate({"name": "always", "when": {"tag": "x", "op": "has_not"}}),
    ]
    activities = ConditionActivities(store)
    good = ConditionsRequest(journey=ref, conditions=rules, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert (await activities.evaluate_conditions(good)).branch == "always"
    # A clock without a zone cannot place "now": the step records why and takes "else".
    bad = good.model_copy(update={"now": datetime(2026, 1, 1)})
    result = await activities.evaluate_conditions(bad)
    assert result.branch == "else"
    assert result.error is not None and result.error.startswith("never: ValueError: naive datetime")
