"""Event triggers beyond name and ``where``: a profile condition, event-to-profile matching,
occurrence counting (every N / the first N), and the flow_entered / flow_exited events the engine
writes itself. Through the API on the time-skipping server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.store.database import Store
from flowline.store.tables import events, journeys
from launch.routing import JourneyLauncher
from tests.conftest import Tenant, finish
from tests.flows import send_then_exit_flow


def flow(**trigger: Any) -> dict[str, Any]:
    doc = send_then_exit_flow("viewed")
    doc["trigger"].update(trigger)
    doc["settings"] = {"reentry": "concurrent"}
    return doc


async def publish(api: httpx.AsyncClient, doc: dict[str, Any]) -> httpx.Response:
    response = await api.put(f"/v1/flows/{doc['id']}", json=doc)
    if response.status_code != 200:
        return response
    published = await api.post(f"/v1/flows/{doc['id']}/publish")
    assert published.status_code == 200, published.text
    return published


async def send(api: httpx.AsyncClient, event_id: str, profile: str = "ada", **properties: Any) -> list[str]:
    response = await api.post(
        "/v1/events",
        json={"id": event_id, "profile_id": profile, "name": "viewed", "properties": properties},
    )
    assert response.status_code == 202, response.text
    journeys: list[str] = response.json()["journeys"]
    return journeys


async def test_profile_condition_admits_and_refuses(api: httpx.AsyncClient, worker: None) -> None:
    condition = {"attribute": "plan", "op": "is", "value": "pro"}
    assert (await publish(api, flow(profile=condition))).status_code == 200
    await api.put("/v1/profiles/ada", json={"attributes": {"plan": "pro"}})
    await api.put("/v1/profiles/bob", json={"attributes": {"plan": "free"}})
    assert len(await send(api, "e-ada", "ada")) == 1
    assert await send(api, "e-bob", "bob") == []
    assert await send(api, "e-new", "cy") == []  # a profile without attributes


async def test_match_compares_an_event_property_with_a_profile_attribute(
    api: httpx.AsyncClient, worker: None
) -> None:
    match = [{"event_property": "book", "profile_attribute": "reading"}]
    assert (await publish(api, flow(match=match))).status_code == 200
    await api.put("/v1/profiles/ada", json={"attributes": {"reading": "dune"}})
    assert len(await send(api, "e-1", "ada", book="dune")) == 1
    assert await send(api, "e-2", "ada", book="emma") == []
    assert await send(api, "e-3", "ada") == []  # the property is missing
    assert await send(api, "e-4", "bob", book="dune") == []  # the attribute is missing


async def test_every_n_enters_on_each_nth_matching_event(api: httpx.AsyncClient, worker: None) -> None:
    where = [{"property": "page", "op": "is", "value": "home"}]
    assert (await publish(api, flow(where=where, occurrence={"every": 3}))).status_code == 200
    entered = []
    for i in range(1, 8):
        entered.append(bool(await send(api, f"e-{i}", page="home")))
        # Events that fail ``where`` do not count.
        assert await send(api, f"other-{i}", page="cart") == []
    assert entered == [False, False, True, False, False, True, False]
    assert await send(api, "bob-1", "bob", page="home") == []  # counted per profile


async def test_first_n_enters_on_the_first_n_events_only(api: httpx.AsyncClient, worker: None) -> None:
    assert (await publish(api, flow(occurrence={"first": 2}))).status_code == 200
    entered = [bool(await send(api, f"e-{i}")) for i in range(1, 6)]
    assert entered == [True, True, False, False, False]


async def test_trigger_faults_have_paths(api: httpx.AsyncClient) -> None:
    bad = flow(occurrence={"every": 2, "first": 1}, match=[{"event_property": "x"}])
    response = await publish(api, bad)
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["faults"]}
    assert "$.trigger.occurrence" in paths
    assert "$.trigger.match[0].profile_attribute" in paths


async def test_flow_entered_and_flow_exited_are_written_once_and_can_trigger_flows(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    store: Store,
    tenant: Tenant,
    task_queue: str,
) -> None:
    assert (await publish(api, flow())).status_code == 200
    follow = send_then_exit_flow("flow_exited")
    follow["id"] = "follow"
    follow["trigger"]["where"] = [{"property": "flow_id", "op": "is", "value": "short"}]
    assert (await publish(api, follow)).status_code == 200

    [journey_id] = await send(api, "e-1")
    assert (await finish(temporal, journey_id)).status == "completed"
    # The same event again: no second journey, no second flow_entered.
    assert await send(api, "e-1") == []

    async with store.connect() as conn:
        rows = await conn.execute(
            select(events.c.id, events.c.name, events.c.properties, events.c.routed_at)
            .where(events.c.workspace_id == tenant.id, events.c.name.in_(["flow_entered", "flow_exited"]))
            .order_by(events.c.name)
        )
        found = [dict(r._mapping) for r in rows]
    assert [(r["id"], r["name"]) for r in found] == [
        (f"flow_entered-{journey_id}", "flow_entered"),
        (f"flow_exited-{journey_id}", "flow_exited"),
    ]
    entered, exited = found
    assert entered["properties"] == {"flow_id": "short", "version": 1, "journey_id": journey_id}
    assert exited["properties"] == {
        "flow_id": "short",
        "journey_id": journey_id,
        "exit_reason": exited["properties"]["exit_reason"],
        "status": "completed",
    }
    assert exited["routed_at"] is None  # left to the sweeper
    # A profile change routes that profile's pending system events, but leaves these to the sweeper.
    assert (await api.put("/v1/profiles/ada", json={"attributes": {"plan": "pro"}})).status_code == 200

    # The sweeper routes them (and the send's message_sent): flow_exited of "short" starts
    # "follow"; flow_entered of "short" does not start "short" again.
    launcher = JourneyLauncher(store, temporal.client, task_queue)
    assert await launcher.sweep(older_than=timedelta(0), workspace_id=tenant.id) == 3
    async with store.connect() as conn:
        started = await conn.execute(
            select(journeys.c.id, journeys.c.flow_id).where(journeys.c.workspace_id == tenant.id)
        )
        by_flow = sorted((r.flow_id, r.id) for r in started)
    assert [f for f, _ in by_flow] == ["follow", "short"]
    assert (await finish(temporal, by_flow[0][1])).status == "completed"


async def test_the_same_triggering_event_sent_50_times_at_once_starts_one_journey(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    """Re-entry `never` under concurrent duplicates: 50 parallel requests with the same event, and
    50 with 50 different events of the same person, each find one journey."""
    flow = send_then_exit_flow("joined")
    flow["settings"] = {"reentry": "never"}
    assert (await publish(api, flow)).status_code == 200

    async def post(event_id: str) -> httpx.Response:
        return await api.post("/v1/events", json={"id": event_id, "profile_id": "ada", "name": "joined"})

    same = await asyncio.gather(*(post("same") for _ in range(50)))
    different = await asyncio.gather(*(post(f"other-{i}") for i in range(50)))
    answers = [*same, *different]
    assert all(r.status_code == 202 for r in answers), [r.text for r in answers if r.status_code != 202]
    started = {j for r in answers for j in r.json()["journeys"]}
    async with store.connect() as conn:
        rows = (
            (await conn.execute(select(journeys.c.id).where(journeys.c.workspace_id == tenant.id)))
            .scalars()
            .all()
        )
    assert len(rows) == 1 and started == set(rows)
    await finish(temporal, rows[0])
