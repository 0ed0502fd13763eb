"""wait_for_change: a profile change (through the API) reaches the journeys that wait for it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.flow.steps.waiting import PROFILE_CHANGED
from flowline.store.database import Store
from flowline.store.tables import events
from tests.conftest import Tenant, finish
from tests.test_journeys import publish
from tests.test_wait_for_event import start


def change_flow(**wait: Any) -> dict[str, Any]:
    return {
        "id": "waiting",
        "name": "Waiting for a change",
        "trigger": {"type": "flow"},
        "steps": [
            {
                "id": "wait",
                "type": "wait_for_change",
                "attribute": "plan",
                "timeout": "2d",
                "next": {"changed": "thanks", "timeout": "done"},
                **wait,
            },
            {
                "id": "thanks",
                "type": "send",
                "channel": "in_app",
                "content": {"body": "on {{ profile.plan }}"},
            },
            {"id": "done", "type": "exit"},
        ],
    }


async def test_a_change_of_the_attribute_ends_the_wait(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await api.put("/v1/profiles/ada", json={"attributes": {"plan": "free", "city": "Oslo"}})
    await publish(api, change_flow())
    journey_id, state = await start(api, temporal)
    assert state.waiting_for is not None and state.waiting_for.startswith("change: plan")
    await api.put("/v1/profiles/ada", json={"attributes": {"city": "Bergen"}})  # another attribute
    await api.put("/v1/profiles/ada", json={"attributes": {"plan": "free"}})  # the same value: no change
    await api.put("/v1/profiles/ada", json={"attributes": {"plan": "pro"}})
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path][:2] == [("wait", "changed"), ("thanks", "sent")]
    inbox = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert [m["body"] for m in inbox] == ["on pro"]


async def test_a_change_to_another_value_than_to_keeps_waiting(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, change_flow(to="pro"))
    journey_id, _ = await start(api, temporal)
    await api.put("/v1/profiles/ada", json={"attributes": {"plan": "basic"}})
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path] == [("wait", "timeout"), ("done", "exit")]

    journey_id, _ = await start(api, temporal)
    await api.put("/v1/profiles/ada", json={"attributes": {"plan": "pro"}})
    state = await finish(temporal, journey_id)
    assert state.path[0].branch == "changed"


async def test_profile_changes_are_stored_as_events(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    await api.put("/v1/profiles/bob", json={"attributes": {"plan": "free", "nick": "b"}})
    await api.put("/v1/profiles/bob", json={"attributes": {"plan": "pro", "nick": None}})
    await api.put("/v1/profiles/bob", json={"attributes": {"plan": "pro"}})  # nothing changes
    async with store.connect() as conn:
        rows = await conn.execute(
            select(events.c.properties)
            .where(
                events.c.workspace_id == tenant.id,
                events.c.profile_id == "bob",
                events.c.name == PROFILE_CHANGED,
            )
            .order_by(events.c.timestamp)
        )
        changes = [r.properties for r in rows]
    assert changes == [
        {
            "changed": {"nick": {"from": None, "to": "b"}, "plan": {"from": None, "to": "free"}},
            "source": "api",
        },
        {
            "changed": {"nick": {"from": "b", "to": None}, "plan": {"from": "free", "to": "pro"}},
            "source": "api",
        },
    ]


async def test_a_change_made_by_another_journeys_step_ends_the_wait(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    """update_profile in one flow, wait_for_change in another: the step routes its change."""
    await publish(api, change_flow(to="gold"))
    waiting, _ = await start(api, temporal)
    upgrade = {
        "id": "upgrade",
        "name": "Upgrade",
        "trigger": {"type": "flow"},
        "steps": [{"id": "set", "type": "update_profile", "set": {"plan": "gold"}}],
    }
    await publish(api, upgrade)
    started = await api.post("/v1/flows/upgrade/journeys", json={"profile_id": "ada"})
    await finish(temporal, started.json()["journey_id"])
    state = await finish(temporal, waiting)
    assert state.path[0].branch == "changed"
    assert state.path[0].left_at is not None
    assert state.path[0].left_at - state.path[0].entered_at < timedelta(days=1)
