"""stop_when, the stop signal and goals: a journey leaves at once from any step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.journey import STOP_SIGNAL, StopRequest
from flowline.store.database import Store
from flowline.store.tables import journeys
from tests.conftest import Tenant, finish
from tests.test_journeys import publish
from tests.test_wait_for_event import inbox, send


def paused_flow(**settings: Any) -> dict[str, Any]:
    return {
        "id": "cart",
        "name": "Cart",
        "trigger": {"type": "event", "event": "cart_updated"},
        "settings": settings,
        "steps": [
            {"id": "wait", "type": "pause", "for": "7d"},
            {"id": "remind", "type": "send", "channel": "in_app", "content": {"body": "your cart"}},
        ],
    }


async def enter(api: httpx.AsyncClient, temporal: WorkflowEnvironment, event_id: str = "c-1") -> str:
    response = await api.post(
        "/v1/events", json={"id": event_id, "profile_id": "ada", "name": "cart_updated"}
    )
    [journey_id] = response.json()["journeys"]
    await temporal.client.get_workflow_handle(journey_id).query("state")
    return str(journey_id)


async def record(store: Store, journey_id: str) -> dict[str, Any]:
    async with store.connect() as conn:
        row = (await conn.execute(select(journeys).where(journeys.c.id == journey_id))).one()
    return dict(row._mapping)


async def test_a_stop_event_ends_the_journey_in_the_middle_of_a_pause(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store
) -> None:
    stop_when = [
        {"event": "order_completed", "where": [{"property": "total", "op": "greater_than", "value": 0}]}
    ]
    await publish(api, paused_flow(stop_when=stop_when))
    journey_id = await enter(api, temporal)
    await send(api, {"id": "o-0", "name": "order_completed", "properties": {"total": 0}})  # filtered out
    await send(api, {"id": "o-1", "name": "order_completed", "properties": {"total": 10}})
    state = await finish(temporal, journey_id)
    assert state.status == "stopped" and state.exit_reason == "stop_when: order_completed"
    assert [(p.step, p.branch) for p in state.path] == [("wait", "stopped")]
    # It left at once: the seven days did not pass, and nothing was sent.
    [wait] = state.path
    assert wait.left_at is not None and wait.left_at - wait.entered_at < timedelta(hours=1)
    assert await inbox(api) == []
    row = await record(store, journey_id)
    assert (row["status"], row["exit_reason"], row["last_step"]) == (
        "stopped",
        "stop_when: order_completed",
        "wait",
    )


EVENT_WAIT = {"id": "wait", "type": "wait_for_event", "conditions": [{"event": "checkout"}], "timeout": "7d"}
CHANGE_WAIT = {"id": "wait", "type": "wait_for_change", "attribute": "plan", "timeout": "indefinite"}


@pytest.mark.parametrize(
    ("wait", "settings", "event", "ended"),
    [
        (EVENT_WAIT, {"stop_when": [{"event": "order_completed"}]}, "order_completed", "stopped"),
        (CHANGE_WAIT, {"stop_when": [{"event": "order_completed"}]}, "order_completed", "stopped"),
        (EVENT_WAIT, {"goal": {"event": "purchase", "within": "7d", "exit": True}}, "purchase", "completed"),
        # The stop event is also the one the wait waits for: the stop wins.
        (
            {**EVENT_WAIT, "conditions": [{"event": "order_completed"}]},
            {"stop_when": [{"event": "order_completed"}]},
            "order_completed",
            "stopped",
        ),
    ],
    ids=["stop-mid-event-wait", "stop-mid-change-wait", "goal-exit-mid-event-wait", "stop-event-awaited"],
)
async def test_a_stop_ends_the_journey_at_once_in_the_middle_of_a_wait_that_listens(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    wait: dict[str, Any],
    settings: dict[str, Any],
    event: str,
    ended: str,
) -> None:
    """Also mid wait_for_event or wait_for_change, whose wait hears the same signal: the journey
    leaves at once, long before the wait's end, and sends nothing after it."""
    document = paused_flow(**settings)
    document["steps"][0] = wait
    await publish(api, document)
    journey_id = await enter(api, temporal)
    await send(api, {"id": "e-1", "name": event})
    state = await finish(temporal, journey_id)
    assert state.status == ended
    assert [(p.step, p.branch) for p in state.path] == [("wait", ended)], state.path
    [left] = state.path
    assert left.left_at is not None and left.left_at - left.entered_at < timedelta(hours=1)
    assert await inbox(api) == []


async def test_without_a_stop_event_the_journey_goes_on(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, paused_flow(stop_when=[{"event": "order_completed"}]))
    journey_id = await enter(api, temporal)
    await send(api, {"id": "x-1", "name": "page_view"})
    state = await finish(temporal, journey_id)
    assert state.status == "completed"
    assert await inbox(api) == ["your cart"]


async def test_the_stop_signal_ends_a_journey_with_its_reason(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store
) -> None:
    await publish(api, paused_flow())
    journey_id = await enter(api, temporal)
    await temporal.client.get_workflow_handle(journey_id).signal(
        STOP_SIGNAL, StopRequest(reason="flow stopped")
    )
    state = await finish(temporal, journey_id)
    assert (state.status, state.exit_reason) == ("stopped", "flow stopped")
    assert (await record(store, journey_id))["status"] == "stopped"


async def test_goal_conversions_count_within_the_window_also_after_the_end(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    goal = {"event": "purchase", "within": "7d", "where": [{"property": "sku", "op": "is", "value": "A"}]}
    await publish(api, paused_flow(goal=goal))
    first = await enter(api, temporal, "c-1")
    await send(api, {"id": "p-b", "name": "purchase", "properties": {"sku": "B"}})  # not the goal
    assert (await record(store, first))["converted_at"] is None
    await send(api, {"id": "p-a", "name": "purchase", "properties": {"sku": "A"}})
    row = await record(store, first)
    assert row["converted_at"] is not None and row["goal_event_id"] == "p-a"
    state = await finish(temporal, first)
    assert state.converted_at is not None and state.status == "completed"  # a goal does not stop it

    # A second journey ends first; a purchase two days later still converts it, one at 8 days not.
    second = await enter(api, temporal, "c-2")
    await finish(temporal, second)
    started = (await record(store, second))["started_at"]
    late = (started + timedelta(days=8)).isoformat()
    await send(api, {"id": "p-late", "name": "purchase", "properties": {"sku": "A"}, "timestamp": late})
    assert (await record(store, second))["converted_at"] is None
    soon = (started + timedelta(days=2)).isoformat()
    await send(api, {"id": "p-soon", "name": "purchase", "properties": {"sku": "A"}, "timestamp": soon})
    row = await record(store, second)
    assert row["goal_event_id"] == "p-soon"
    assert row["converted_at"] - started == timedelta(days=2)
    # The first journey keeps its first conversion.
    assert (await record(store, first))["goal_event_id"] == "p-a"


async def test_a_goal_with_exit_ends_the_journey_as_converted(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, paused_flow(goal={"event": "purchase", "within": "7d", "exit": True}))
    journey_id = await enter(api, temporal)
    await send(api, {"id": "p-1", "name": "purchase"})
    state = await finish(temporal, journey_id)
    assert (state.status, state.exit_reason) == ("completed", "goal_reached")
    assert state.converted_at is not None
    assert await inbox(api) == []


async def test_the_api_stops_a_journey_in_flight(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store
) -> None:
    await publish(api, paused_flow())
    journey_id = await enter(api, temporal)
    stopped = await api.post(f"/v1/journeys/{journey_id}/stop", json={"reason": "customer asked"})
    assert stopped.status_code == 202, stopped.text
    state = await finish(temporal, journey_id)
    assert (state.status, state.exit_reason) == ("stopped", "customer asked")
    assert await inbox(api) == []
    assert (await record(store, journey_id))["status"] == "stopped"
    assert (await api.post(f"/v1/journeys/{journey_id}/stop")).status_code == 409
    assert (await api.post("/v1/journeys/j-nope/stop")).status_code == 404
