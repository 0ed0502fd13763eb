"""Flows started by data: segment_entry (a profile enters a segment) and profile_change (an
attribute changes, from / to given values), and stop_when on entering a segment. Through the
API on the time-skipping server, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.store import profile_changes as changes
from flowline.store import segment_members
from flowline.store.database import Store, utcnow
from flowline.store.tables import journeys
from launch.routing import JourneyLauncher
from tests.conftest import Tenant, finish
from tests.flows import send_then_exit_flow
from tests.test_stop_and_goal import paused_flow, record
from tests.test_wait_for_event import inbox

PRO = {"attribute": "plan", "op": "is", "value": "pro"}


async def publish(api: httpx.AsyncClient, flow_id: str, trigger: dict[str, Any], **settings: Any) -> None:
    doc = send_then_exit_flow()
    doc.update(id=flow_id, trigger=trigger, settings=settings)
    assert (await api.put(f"/v1/flows/{flow_id}", json=doc)).status_code == 200
    published = await api.post(f"/v1/flows/{flow_id}/publish")
    assert published.status_code == 200, published.text


async def started(store: Store, tenant: Tenant, flow_id: str) -> list[tuple[str, str]]:
    """(profile, journey id) of the flow's journeys, by start."""
    async with store.connect() as conn:
        rows = await conn.execute(
            select(journeys.c.profile_id, journeys.c.id)
            .where(journeys.c.workspace_id == tenant.id, journeys.c.flow_id == flow_id)
            .order_by(journeys.c.started_at, journeys.c.id)
        )
        return [(r.profile_id, r.id) for r in rows]


async def set_plan(api: httpx.AsyncClient, profile: str, plan: str | None, **more: Any) -> None:
    response = await api.put(f"/v1/profiles/{profile}", json={"attributes": {"plan": plan, **more}})
    assert response.status_code == 200, response.text


async def test_segment_entry_starts_one_journey_per_entry_under_the_reentry_rule(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await set_plan(api, "ada", "pro")
    for segment_id, rule in (("pros", PRO), ("elsewhere", {"tag": "x"})):
        assert (
            await api.put(f"/v1/segments/{segment_id}", json={"name": "s", "rule": rule})
        ).status_code == 200
    trigger = {"type": "segment_entry", "segment": "pros"}
    await publish(api, "welcome", trigger, reentry="after_exit")
    await publish(api, "once", trigger, reentry="never")
    await publish(api, "other", {"type": "segment_entry", "segment": "elsewhere"})

    await set_plan(api, "ada", "pro", age=30)  # a member since the baseline: no entry
    await set_plan(api, "bob", "pro")
    await set_plan(api, "bob", "pro", age=31)  # still inside: no second entry
    [(who, first)] = await started(store, tenant, "welcome")
    assert who == "bob" and len(await started(store, tenant, "once")) == 1
    assert (await finish(temporal, first)).status == "completed"
    for journey_id in [j for _, j in await started(store, tenant, "once")]:
        await finish(temporal, journey_id)

    # Bob leaves and enters again: after_exit lets him in again, never does not.
    await set_plan(api, "bob", "free")
    await set_plan(api, "bob", "pro")
    welcome = await started(store, tenant, "welcome")
    assert [p for p, _ in welcome] == ["bob", "bob"]
    assert len(await started(store, tenant, "once")) == 1
    assert await started(store, tenant, "other") == []
    await finish(temporal, welcome[1][1])


async def test_profile_change_from_to_and_null(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    change = {"type": "profile_change", "attribute": "plan"}
    await publish(api, "any", change, reentry="concurrent")
    await publish(api, "to-pro", change | {"to": "pro"}, reentry="concurrent")
    await publish(api, "from-unset", change | {"from": None}, reentry="concurrent")
    await publish(api, "erased", change | {"to": None}, reentry="concurrent")
    await publish(api, "free-to-pro", change | {"from": "free", "to": "pro"}, reentry="concurrent")
    country = {"attribute": "country", "op": "is", "value": "de"}
    await publish(api, "germans", change | {"profile": country}, reentry="concurrent")

    await set_plan(api, "ada", "free")  # unset -> free
    await set_plan(api, "ada", "pro")  # free -> pro
    await set_plan(api, "ada", None)  # pro -> unset (erased)
    await api.put("/v1/profiles/ada", json={"attributes": {"age": 3}})  # another attribute
    await set_plan(api, "bob", "pro", country="de")  # unset -> pro, in Germany

    async def who(flow_id: str) -> list[str]:
        return [p for p, _ in await started(store, tenant, flow_id)]

    assert await who("any") == ["ada", "ada", "ada", "bob"]
    assert await who("to-pro") == ["ada", "bob"]
    assert await who("from-unset") == ["ada", "bob"]
    assert await who("erased") == ["ada"]
    assert await who("free-to-pro") == ["ada"]
    assert await who("germans") == ["bob"]
    for flow_id in ("any", "to-pro", "from-unset", "erased", "free-to-pro", "germans"):
        for _, journey_id in await started(store, tenant, flow_id):
            assert (await finish(temporal, journey_id)).status == "completed"


async def test_entering_a_segment_stops_a_journey_in_the_middle_of_a_pause(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store
) -> None:
    for segment_id, rule in (("pros", PRO), ("others", {"attribute": "plan", "op": "is", "value": "x"})):
        assert (
            await api.put(f"/v1/segments/{segment_id}", json={"name": "s", "rule": rule})
        ).status_code == 200
    doc = paused_flow(stop_when=[{"event": "order_completed"}, {"segment": "pros"}])
    assert (await api.put("/v1/flows/cart", json=doc)).status_code == 200
    assert (await api.post("/v1/flows/cart/publish")).status_code == 200
    response = await api.post("/v1/events", json={"id": "c-1", "profile_id": "ada", "name": "cart_updated"})
    [journey_id] = response.json()["journeys"]
    await temporal.client.get_workflow_handle(journey_id).query("state")

    await set_plan(api, "ada", "x")  # enters another segment: goes on
    await set_plan(api, "ada", "pro")  # leaves "others", enters "pros": stops
    state = await finish(temporal, journey_id)
    assert (state.status, state.exit_reason) == ("stopped", "stop_when: entered segment pros")
    assert [(p.step, p.branch) for p in state.path] == [("wait", "stopped")]
    assert await inbox(api) == []
    row = await record(store, journey_id)
    assert (row["status"], row["exit_reason"]) == ("stopped", "stop_when: entered segment pros")


async def test_segment_faults_have_paths(api: httpx.AsyncClient) -> None:
    doc = paused_flow(stop_when=[{"event": "x"}, {"segment": "no spaces"}, {"segment": "a", "where": []}])
    doc["trigger"] = {"type": "segment_entry"}
    response = await api.put("/v1/flows/cart", json=doc)
    assert response.status_code == 422, response.text
    paths = {f["path"] for f in response.json()["faults"]}
    assert paths == {"$.trigger.segment", "$.settings.stop_when[1].segment", "$.settings.stop_when[2].where"}


async def test_a_flows_own_profile_change_does_not_start_it_again(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    """A profile_change flow that changes the same attribute would start itself forever."""
    bump = {
        "id": "bump",
        "type": "update_profile",
        "set": {"visits": {"expression": "has(profile.visits) ? profile.visits + 1 : 1"}},
    }
    doc = send_then_exit_flow(first=bump)
    doc.update(id="counter", trigger={"type": "profile_change", "attribute": "visits"})
    doc["settings"] = {"reentry": "concurrent"}
    assert (await api.put("/v1/flows/counter", json=doc)).status_code == 200
    assert (await api.post("/v1/flows/counter/publish")).status_code == 200
    await api.put("/v1/profiles/ada", json={"attributes": {"visits": 1}})
    [(_, journey_id)] = await started(store, tenant, "counter")
    assert (await finish(temporal, journey_id)).status == "completed"
    profile = (await api.get("/v1/profiles/ada")).json()
    assert profile["attributes"]["visits"] == 2
    assert len(await started(store, tenant, "counter")) == 1


async def test_publishing_a_flow_that_names_a_missing_segment_is_a_422(api: httpx.AsyncClient) -> None:
    assert (await api.put("/v1/segments/pros", json={"name": "s", "rule": PRO})).status_code == 200
    doc = paused_flow(stop_when=[{"segment": "pros"}, {"event": "x"}, {"segment": "gone"}])
    doc["trigger"] = {"type": "segment_entry", "segment": "missing"}
    assert (await api.put("/v1/flows/cart", json=doc)).status_code == 200  # a draft may name it
    response = await api.post("/v1/flows/cart/publish")
    assert response.status_code == 422, response.text
    faults = {(f["path"], f["message"]) for f in response.json()["faults"]}
    assert faults == {
        ("$.trigger.segment", "no segment 'missing'"),
        ("$.settings.stop_when[2].segment", "no segment 'gone'"),
    }
    assert (await api.get("/v1/flows/cart")).json()["status"] == "draft"


async def test_segment_events_left_unrouted_are_routed_by_the_sweeper(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    store: Store,
    tenant: Tenant,
    task_queue: str,
) -> None:
    """The membership changed but routing did not happen (Temporal refused, the process died)."""
    assert (await api.put("/v1/segments/pros", json={"name": "s", "rule": PRO})).status_code == 200
    await publish(api, "welcome", {"type": "segment_entry", "segment": "pros"})
    async with store.begin() as conn:
        await changes.change_attributes(store, conn, tenant.id, "ada", {"plan": "pro"}, changes.Origin("api"))
    async with store.connect() as conn:
        [segment] = await segment_members.saved_segments(conn, tenant.id)
    written = await segment_members.update_membership(store, segment, utcnow(), ["ada"])
    assert [e["name"] for e in written] == ["segment_entered"]
    assert await started(store, tenant, "welcome") == []
    launcher = JourneyLauncher(store, temporal.client, task_queue)
    assert await launcher.sweep(older_than=timedelta(0), workspace_id=tenant.id) == 2
    [(who, journey_id)] = await started(store, tenant, "welcome")
    assert who == "ada" and (await finish(temporal, journey_id)).status == "completed"
