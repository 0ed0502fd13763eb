"""The ingest hot path: events no flow and no journey needs are stored routed at once, the others
wait for Temporal; the whole body is checked at once, one by one only when some event is invalid."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.store import events
from flowline.store.database import Store
from flowline.store.events import JOURNEY_EVENTS
from flowline.store.tables import events as events_table
from tests.conftest import Tenant, finish
from tests.servers import unreachable_temporal
from tests.test_journeys import publish
from tests.test_stop_and_goal import paused_flow
from tests.test_wait_for_event import start, wait_flow


@asynccontextmanager
async def temporal_unreachable(api: httpx.AsyncClient) -> AsyncIterator[None]:
    """The app's launcher and router talk to a Temporal server that is not there."""
    services = api._transport.app.state.services  # type: ignore[attr-defined]
    launcher = services.launcher
    working = launcher.client
    gone = await unreachable_temporal()
    launcher.client = launcher.router.client = gone
    try:
        yield
    finally:
        launcher.client = launcher.router.client = working


async def unrouted(store: Store, tenant: Tenant) -> set[str]:
    async with store.connect() as conn:
        rows = await conn.execute(
            select(events_table.c.id).where(
                events_table.c.workspace_id == tenant.id,
                events_table.c.routed_at.is_(None),
                events_table.c.name.not_in(JOURNEY_EVENTS),
            )
        )
        return {str(r) for r in rows.scalars()}


async def test_only_events_a_journey_hears_wait_for_temporal(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, wait_flow({"conditions": [{"event": "checkout"}], "timeout": "3d"}))
    journey_id, _ = await start(api, temporal)  # ada waits for checkout
    batch = [
        {"id": "c1", "profile_id": "ada", "name": "checkout"},
        {"id": "v1", "profile_id": "ada", "name": "page_viewed"},  # ada's journey does not listen
        {"id": "b1", "profile_id": "bob", "name": "checkout"},  # bob has no journey
    ]
    async with temporal_unreachable(api):
        refused = await api.post("/v1/events", json=batch)
    assert refused.status_code == 503, refused.text
    # The event the journey hears is kept unrouted (not lost); the others were routed at once.
    assert await unrouted(store, tenant) == {"c1"}

    again = await api.post("/v1/events", json=batch)
    assert again.status_code == 202 and again.json()["duplicates"] == 3
    assert await unrouted(store, tenant) == set()
    assert (await finish(temporal, journey_id)).path[0].branch == "happened"


async def test_a_journey_started_by_a_batch_hears_its_later_events(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, temporal: WorkflowEnvironment, worker: None
) -> None:
    # stop_when is heard from any point of the journey, also before its first step.
    await publish(api, paused_flow(stop_when=[{"event": "order_completed"}]))
    batch = [
        {"id": "c1", "profile_id": "ada", "name": "cart_updated"},
        {"id": "o1", "profile_id": "ada", "name": "order_completed"},
        {"id": "o2", "profile_id": "bob", "name": "order_completed"},
    ]
    response = await api.post("/v1/events", json=batch)
    assert response.status_code == 202, response.text
    [journey_id] = response.json()["journeys"]
    assert await unrouted(store, tenant) == set()
    state = await finish(temporal, journey_id)
    assert state.status == "stopped" and state.exit_reason == "stop_when: order_completed"


async def test_an_event_that_only_starts_a_journey_is_not_looked_up_for_listeners(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, temporal: WorkflowEnvironment, worker: None
) -> None:
    # Nobody can hear it (the journey it starts hears only later events): step 3 of the ingest
    # marks it routed without asking which journeys of ada listen.
    await publish(api, paused_flow(stop_when=[{"event": "order_completed"}]))
    router = api._transport.app.state.services.launcher.router  # type: ignore[attr-defined]
    looked_up: list[list[str]] = []
    route = router.route

    async def spy(conn: Any, workspace_id: str, items: Any) -> Any:
        looked_up.append([i.event.id for i in items])
        return await route(conn, workspace_id, items)

    router.route = spy
    try:
        first = await api.post("/v1/events", json=[{"id": "c1", "profile_id": "ada", "name": "cart_updated"}])
        assert first.status_code == 202 and len(first.json()["journeys"]) == 1
        assert looked_up == [] and await unrouted(store, tenant) == set()
        # Once ada has a journey in flight that listens, her stop event is routed to it.
        second = await api.post(
            "/v1/events", json=[{"id": "o1", "profile_id": "ada", "name": "order_completed"}]
        )
        assert second.status_code == 202
        assert looked_up == [["o1"]]
    finally:
        router.route = route
    state = await finish(temporal, first.json()["journeys"][0])
    assert state.status == "stopped"


async def test_events_are_stored_routed_or_not_with_their_instants(store: Store, tenant: Tenant) -> None:
    berlin = timezone(timedelta(hours=1))
    batch: list[dict[str, Any]] = [
        {
            "id": "e1",
            "profile_id": "ada",
            "name": "n",
            "timestamp": datetime(2026, 3, 1, 13, 0, 0, 5, tzinfo=berlin),
            "properties": {"nested": {"list": [1, "ü", None]}, "quote": "a'b\"c"},
        },
        {"id": "e2", "profile_id": "bob", "name": "n", "timestamp": datetime(2026, 3, 1, 12, tzinfo=UTC)},
    ]
    async with store.begin() as conn:
        assert await events.insert_events(store, conn, tenant.id, batch, routed={"e2"}) == {"e1", "e2"}
        assert await events.insert_events(store, conn, tenant.id, batch) == set()
    async with store.connect() as conn:
        rows = {
            r.id: r
            for r in await conn.execute(
                select(events_table)
                .where(events_table.c.workspace_id == tenant.id)
                .order_by(events_table.c.id)
            )
        }
    assert rows["e1"].timestamp == datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert rows["e1"].properties == batch[0]["properties"]
    assert rows["e2"].properties == {}
    assert rows["e1"].routed_at is None and rows["e2"].routed_at == rows["e2"].received_at


async def test_the_body_is_checked_as_a_whole_then_one_by_one(api: httpx.AsyncClient) -> None:
    one = {"id": "e1", "profile_id": "ada", "name": "n"}
    for body in (one, [one, one], {"events": [one]}):
        response = await api.post("/v1/events", json=body)
        assert response.status_code == 202, response.text
    assert response.json()["duplicates"] == 1
    mixed = await api.post("/v1/events", json={"events": [{**one, "id": "e2"}, {**one, "name": ""}]})
    assert mixed.status_code == 202
    assert mixed.json()["accepted"] == 1
    [rejected] = mixed.json()["rejected"]
    assert rejected["index"] == 1 and rejected["faults"][0]["path"] == "$.events[1].name"

    broken = await api.post("/v1/events", content=b'[{"id": ', headers={"Content-Type": "application/json"})
    assert broken.status_code == 422
    assert broken.json()["faults"][0]["message"].startswith("JSON decode error: ")
    empty = await api.post("/v1/events", content=b"", headers={"Content-Type": "application/json"})
    assert empty.status_code == 422 and empty.json()["faults"] == [{"path": "$", "message": "Field required"}]
    assert (await api.post("/v1/events", json=[])).json()["accepted"] == 0
