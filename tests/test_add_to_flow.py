"""add_to_flow: start a journey of another flow, with variables, for this person or another."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import FlowActivities
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.journey import AddToFlowRequest, JourneyRef, JourneyState, TemplateScope
from flowline.store import flows
from flowline.store.database import Store
from flowline.store.flows import FlowStatus
from flowline.store.tables import journeys
from launch.routing import JourneyLauncher
from tests.conftest import Tenant, finish
from tests.flows import target_flow
from tests.test_journeys import publish


def caller_flow(flow_id: str = "caller", *, failed_step: bool = False, **add: Any) -> dict[str, Any]:
    """add_to_flow, then a message "after" and the exit; with ``failed_step``, a "sorry" message
    that only the failed branch reaches (``add`` must name it)."""
    message = {"type": "send", "channel": "in_app", "next": "done"}
    steps: list[dict[str, Any]] = [
        {"id": "add", "type": "add_to_flow", **add},
        {"id": "after", **message, "content": {"body": "after"}},
    ]
    if failed_step:
        steps.append({"id": "sorry", **message, "content": {"body": "sorry"}})
    steps.append({"id": "done", "type": "exit"})
    return {"id": flow_id, "name": "Caller", "trigger": {"type": "flow"}, "steps": steps}


async def run_caller(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    profile: str = "ada",
    variables: dict[str, Any] | None = None,
    flow_id: str = "caller",
) -> JourneyState:
    started = await api.post(
        f"/v1/flows/{flow_id}/journeys", json={"profile_id": profile, "variables": variables or {}}
    )
    assert started.status_code == 201, started.text
    return await finish(temporal, started.json()["journey_id"])


async def inbox(api: httpx.AsyncClient, profile: str) -> list[str]:
    messages = (await api.get(f"/v1/profiles/{profile}/inbox")).json()["messages"]
    return sorted(m["body"] for m in messages)


async def set_status(store: Store, tenant: Tenant, flow_id: str, status: FlowStatus) -> None:
    async with store.begin() as conn:
        assert await flows.set_status(conn, tenant.id, flow_id, status)


# ---------------------------------------------------------------- validation


def test_add_to_flow_validation() -> None:
    def faults(**add: Any) -> list[tuple[str, str]]:
        with pytest.raises(FlowInvalid) as caught:
            parse_flow(caller_flow(**add))
        return [(f.path, f.message) for f in caught.value.faults]

    flow = parse_flow(
        caller_flow(
            flow="caller",  # its own flow: allowed
            variables={"a": "{{ vars.x }}", "b": 3, "c": True, "d": 2.5, "e": {"expression": "[1, 2]"}},
            participant={"by": "email", "from": {"variable": "friend_email"}},
            then="exit",
            next={"failed": "after"},
        )
    )
    assert flow.dump()["steps"][0]["participant"] == {"by": "email", "from": {"variable": "friend_email"}}
    [(path, _)] = faults(flow="not an id")
    assert path == "$.steps[0].flow"
    assert (
        faults(flow="t", variables={"n": {"expression": "1 +"}})[0][0] == "$.steps[0].variables.n.expression"
    )
    [(path, message)] = faults(flow="t", variables={"n": "{{ x | "})
    assert path == "$.steps[0].variables.n" and message.startswith("not a valid template")
    [(path, message)] = faults(flow="t", variables={"n": [1, 2]})
    assert path == "$.steps[0].variables.n" and "{expression: ...}" in message
    [(path, message)] = faults(
        flow="t", participant={"by": "email", "from": {"variable": "a", "attribute": "b"}}
    )
    assert path == "$.steps[0].participant.from"
    assert faults(flow="t", participant={"by": "fax", "from": {"variable": "a"}})[0][0] == (
        "$.steps[0].participant.by"
    )
    [(path, message)] = faults(flow="t", then="exit", next={"added": "after"})
    assert path == "$.steps[0]" and "then: exit" in message
    assert faults(flow="t", next={"failed": "nope"}) == [
        ("$.steps[0].next.failed", "no step has the id 'nope'")
    ]


# ---------------------------------------------------------------- journeys


async def test_variables_arrive_in_the_target_journey(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, target_flow())
    passed = {
        "coupon": "{{ vars.code }}-{{ profile.first_name }}",
        "n": {"expression": "vars.total * 2"},
        "tier": 3,
        "vip": True,
    }
    await publish(api, caller_flow(flow="target", variables=passed))
    await api.put("/v1/profiles/ada", json={"attributes": {"first_name": "Ada"}})

    state = await run_caller(api, temporal, variables={"code": "X1", "total": 21})
    add = state.path[0]
    assert (add.step, add.branch, add.error) == ("add", "added", None)
    assert add.started_journey is not None
    assert [p.step for p in state.path] == ["add", "after", "done"]

    target = await finish(temporal, add.started_journey)
    assert target.variables == {"coupon": "X1-Ada", "n": 42, "tier": 3, "vip": True}
    detail = (await api.get(f"/v1/journeys/{add.started_journey}")).json()
    assert (detail["flow_id"], detail["profile_id"]) == ("target", "ada")
    assert await inbox(api, "ada") == ["X1-Ada for ada", "after"]


async def test_participant_found_by_email_in_a_variable(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, target_flow())
    participant = {"by": "email", "from": {"variable": "friend_email"}}
    await publish(api, caller_flow(flow="target", participant=participant, variables={"coupon": "FRIEND"}))
    await api.put("/v1/profiles/bob", json={"attributes": {"email": "Bob@Example.com"}})

    state = await run_caller(api, temporal, variables={"friend_email": " bob@example.com"})
    add = state.path[0]
    assert add.branch == "added" and add.started_journey is not None
    await finish(temporal, add.started_journey)
    detail = (await api.get(f"/v1/journeys/{add.started_journey}")).json()
    assert detail["profile_id"] == "bob"
    assert await inbox(api, "bob") == ["FRIEND for bob"]
    assert await inbox(api, "ada") == ["after"]


async def test_participant_is_created_when_no_one_has_the_email(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, target_flow())
    participant = {"by": "email", "from": {"attribute": "referrer_email"}}
    await publish(api, caller_flow(flow="target", participant=participant))
    await api.put("/v1/profiles/ada", json={"attributes": {"referrer_email": "new@example.com"}})

    added = []
    for _ in range(2):  # the second time finds the person the first one created
        add = (await run_caller(api, temporal)).path[0]
        assert add.branch == "added" and add.started_journey is not None
        await finish(temporal, add.started_journey)
        added.append((await api.get(f"/v1/journeys/{add.started_journey}")).json()["profile_id"])
    first, second = added
    assert first == second and first not in ("ada", "new@example.com")
    created = (await api.get(f"/v1/profiles/{first}")).json()
    assert created["attributes"] == {"email": "new@example.com"}
    assert await inbox(api, first) == [f"none for {first}"] * 2


async def test_participant_found_by_phone_and_by_id(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, target_flow(reentry="concurrent"))
    by_phone = {"by": "phone", "from": {"variable": "friend"}}
    await publish(api, caller_flow("by-phone", flow="target", participant=by_phone))
    by_id = {"by": "id", "from": {"variable": "friend"}}
    await publish(api, caller_flow("by-id", flow="target", participant=by_id))
    await api.put("/v1/profiles/carol", json={"attributes": {"phone": "+15551234567"}})
    assert (await api.get("/v1/profiles/dave")).status_code == 404

    added = {}
    for flow_id, friend in (("by-phone", "+15551234567"), ("by-id", "dave")):
        state = await run_caller(api, temporal, variables={"friend": friend}, flow_id=flow_id)
        add = state.path[0]
        assert add.branch == "added" and add.started_journey is not None, add
        await finish(temporal, add.started_journey)
        added[flow_id] = (await api.get(f"/v1/journeys/{add.started_journey}")).json()["profile_id"]
    assert added == {"by-phone": "carol", "by-id": "dave"}
    assert (await api.get("/v1/profiles/dave")).status_code == 200  # created with that id
    assert await inbox(api, "carol") == ["none for carol"]
    assert await inbox(api, "dave") == ["none for dave"]


async def test_then_exit_ends_the_caller_once_added(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, target_flow())
    await publish(api, caller_flow(flow="target", then="exit"))
    state = await run_caller(api, temporal)
    assert [(p.step, p.branch) for p in state.path] == [("add", "added")]
    assert state.exit_reason == "added_to_flow"
    assert state.path[0].started_journey is not None
    await finish(temporal, state.path[0].started_journey)
    journeys_of_ada = (await api.get("/v1/journeys?profile=ada")).json()["journeys"]
    caller = next(j for j in journeys_of_ada if j["flow_id"] == "caller")
    assert (caller["exit_reason"], caller["last_step"]) == ("added_to_flow", "add")
    assert await inbox(api, "ada") == ["none for ada"]


async def test_a_draining_target_takes_the_failed_branch(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, target_flow())
    await set_status(store, tenant, "target", "draining")
    await publish(api, caller_flow(flow="target", failed_step=True, next={"failed": "sorry"}))
    state = await run_caller(api, temporal)
    add = state.path[0]
    assert (add.branch, add.error, add.started_journey) == (
        "failed",
        "flow 'target' is draining, not running",
        None,
    )
    assert [p.step for p in state.path] == ["add", "sorry", "done"]
    assert (await api.get("/v1/journeys?flow=target")).json()["journeys"] == []
    assert await inbox(api, "ada") == ["sorry"]


async def test_without_a_failed_branch_the_journey_goes_on_with_the_next_step(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, caller_flow(flow="target"))
    reasons = []
    reasons.append((await run_caller(api, temporal)).path[0])  # no such flow
    assert (await api.put("/v1/flows/target", json=target_flow())).status_code == 200
    reasons.append((await run_caller(api, temporal)).path[0])  # a draft only
    await publish(api, target_flow())
    await set_status(store, tenant, "target", "stopped")
    reasons.append((await run_caller(api, temporal)).path[0])
    assert [(p.branch, p.error) for p in reasons] == [
        ("failed", "flow 'target' does not exist"),
        ("failed", "flow 'target' is draft, not running"),
        ("failed", "flow 'target' is stopped, not running"),
    ]
    assert await inbox(api, "ada") == ["after"] * 3

    # A running target, but no one to add: the variable naming the participant is missing.
    await set_status(store, tenant, "target", "running")
    participant = {"by": "phone", "from": {"variable": "friend_phone"}}
    await publish(api, caller_flow("other", flow="target", participant=participant))
    state = await run_caller(api, temporal, flow_id="other")
    assert (state.path[0].branch, state.path[0].error) == (
        "failed",
        "no participant value: variable 'friend_phone' holds no phone",
    )
    assert [p.step for p in state.path] == ["add", "after", "done"]
    assert (await api.get("/v1/journeys?flow=target")).json()["journeys"] == []


async def test_a_refusing_reentry_rule_takes_the_failed_branch(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, target_flow(reentry="never"))
    await publish(api, caller_flow(flow="target"))
    first = await run_caller(api, temporal)
    assert first.path[0].branch == "added" and first.path[0].started_journey is not None
    await finish(temporal, first.path[0].started_journey)
    again = (await run_caller(api, temporal)).path[0]
    assert (again.branch, again.error) == (
        "failed",
        "the re-entry rule of flow 'target' keeps profile 'ada' out",
    )


async def test_a_retried_activity_starts_one_journey(
    temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant, task_queue: str
) -> None:
    target = parse_flow(target_flow(reentry="concurrent"))
    async with store.begin() as conn:
        await flows.save_draft(store, conn, tenant.id, target)
        await flows.publish(conn, tenant.id, target.id, target)
    activities = FlowActivities(store, JourneyLauncher(store, temporal.client, task_queue))
    ref = JourneyRef(
        journey_id="j-caller-1", workspace_id=tenant.id, flow_id="caller", version=1, profile_id="ada"
    )
    request = AddToFlowRequest(
        journey=ref,
        step_id="add",
        visit=1,
        flow="target",
        variables={"coupon": "C"},
        scope=TemplateScope(),
    )
    env = ActivityEnvironment()
    first = await env.run(activities.add_to_flow, request)
    again = await env.run(activities.add_to_flow, request)
    assert first.branch == again.branch == "added"
    assert first.started_journey is not None and again.started_journey == first.started_journey
    # The next visit of the step is another entry: another journey (the target allows several).
    later = await env.run(activities.add_to_flow, request.model_copy(update={"visit": 2}))
    assert later.started_journey not in (None, first.started_journey)

    async with store.connect() as conn:
        rows = (
            await conn.execute(
                select(journeys.c.id).where(
                    journeys.c.workspace_id == tenant.id, journeys.c.flow_id == "target"
                )
            )
        ).all()
    assert sorted(r.id for r in rows) == sorted([first.started_journey, later.started_journey])
    for journey_id in (first.started_journey, later.started_journey):
        assert journey_id is not None
        state = await finish(temporal, journey_id)
        assert state.variables == {"coupon": "C"}
