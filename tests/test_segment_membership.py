"""Segment membership kept up to date: a baseline when a segment is saved, entries and exits when
data changes (PUT profile, events) and when time passes (the clock's activity and workflow), each
reported once as a segment_entered / segment_exited event. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from activities.segment_clock import SegmentClockActivities
from flowline.segment_clock import ClockResult, ClockTick
from flowline.store import profile_changes as changes
from flowline.store import segment_members, segments
from flowline.store.database import Store, utcnow
from flowline.store.tables import events
from launch.routing import JourneyLauncher
from tests.conftest import Tenant
from workflows.segment_clock import SegmentClockWorkflow

PRO = {"attribute": "plan", "op": "is", "value": "pro"}
# "No session in the last 9 days" (people who never had one included).
LAPSED = {"event": "session", "happened": False, "within": "9d"}


async def segment_events(store: Store, tenant: Tenant) -> list[tuple[str, str, str]]:
    """(name, profile, segment) of the tenant's segment events, in the order written."""
    async with store.connect() as conn:
        rows = await conn.execute(
            select(events.c.name, events.c.profile_id, events.c.properties)
            .where(
                events.c.workspace_id == tenant.id,
                events.c.name.in_(["segment_entered", "segment_exited"]),
            )
            .order_by(events.c.received_at, events.c.id)
        )
        return [(r.name, r.profile_id, r.properties["segment"]) for r in rows]


async def members(store: Store, tenant: Tenant, segment_id: str) -> list[str]:
    async with store.connect() as conn:
        return sorted(await segment_members.members_of(conn, tenant.id, segment_id))


async def put_segment(api: httpx.AsyncClient, segment_id: str, rule: dict[str, Any]) -> None:
    response = await api.put(f"/v1/segments/{segment_id}", json={"name": segment_id, "rule": rule})
    assert response.status_code == 200, response.text


async def test_the_first_computation_is_a_baseline_then_profile_changes_enter_and_exit(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    await api.put("/v1/profiles/ada", json={"attributes": {"plan": "pro"}})
    await api.put("/v1/profiles/bob", json={"attributes": {"plan": "free"}})
    await put_segment(api, "pros", PRO)
    # Ada was in it when it was created: a member, but she did not "enter".
    assert await members(store, tenant, "pros") == ["ada"]
    assert await segment_events(store, tenant) == []

    await api.put("/v1/profiles/bob", json={"attributes": {"plan": "pro"}})
    await api.put("/v1/profiles/ada", json={"attributes": {"plan": "free"}})
    await api.put("/v1/profiles/ada", json={"attributes": {"age": 40}})  # no change to the segment
    assert await members(store, tenant, "pros") == ["bob"]
    assert await segment_events(store, tenant) == [
        ("segment_entered", "bob", "pros"),
        ("segment_exited", "ada", "pros"),
    ]
    # The same rule saved again changes nothing; a new rule is a re-evaluation with events.
    await put_segment(api, "pros", PRO)
    assert len(await segment_events(store, tenant)) == 2
    await put_segment(api, "pros", {"attribute": "plan", "op": "is", "value": "free"})
    assert await members(store, tenant, "pros") == ["ada"]
    assert (await segment_events(store, tenant))[2:] == [
        ("segment_entered", "ada", "pros"),
        ("segment_exited", "bob", "pros"),
    ]


async def test_events_make_people_enter(api: httpx.AsyncClient, store: Store, tenant: Tenant) -> None:
    await put_segment(api, "buyers", {"event": "purchase", "count": {"op": ">=", "value": 2}})
    sent = [{"id": f"p-{n}", "profile_id": "cy", "name": "purchase"} for n in range(3)]
    assert (await api.post("/v1/events", json=sent[:1])).status_code == 202
    assert await members(store, tenant, "buyers") == []
    # The second purchase (and a third in the same batch) make one entry.
    assert (await api.post("/v1/events", json=sent[1:])).status_code == 202
    assert await members(store, tenant, "buyers") == ["cy"]
    assert await segment_events(store, tenant) == [("segment_entered", "cy", "buyers")]


async def test_time_passing_makes_people_enter_on_the_clock(
    api: httpx.AsyncClient,
    store: Store,
    tenant: Tenant,
    temporal: WorkflowEnvironment,
    worker: None,
    task_queue: str,
) -> None:
    now = utcnow()
    session = {"id": "s-1", "profile_id": "ada", "name": "session", "timestamp": now.isoformat()}
    assert (await api.post("/v1/events", json=session)).status_code == 202
    await api.put("/v1/profiles/bob", json={"attributes": {"plan": "free"}})
    await put_segment(api, "lapsed", LAPSED)
    assert await members(store, tenant, "lapsed") == ["bob"]  # the baseline

    launcher = JourneyLauncher(store, temporal.client, task_queue)
    clock = SegmentClockActivities(store, launcher)
    soon = await clock.reevaluate_segments(ClockTick(now=now + timedelta(days=8), workspace_id=tenant.id))
    assert soon == ClockResult(segments=1, entered=0, exited=0)
    later = ClockTick(now=now + timedelta(days=10), workspace_id=tenant.id)
    assert await clock.reevaluate_segments(later) == ClockResult(segments=1, entered=1, exited=0)
    # The activity retried with the same time writes nothing twice.
    assert await clock.reevaluate_segments(later) == ClockResult(segments=1, entered=0, exited=0)
    assert await segment_events(store, tenant) == [("segment_entered", "ada", "lapsed")]
    assert await members(store, tenant, "lapsed") == ["ada", "bob"]

    # A new session: she leaves again when the data changes.
    back = {"id": "s-2", "profile_id": "ada", "name": "session", "timestamp": now.isoformat()}
    assert (await api.post("/v1/events", json=back)).status_code == 202
    assert await members(store, tenant, "lapsed") == ["bob"]

    # The clock's workflow, as the Schedule starts it, evaluates as of its own time (the
    # time-skipping server's clock: now, so nothing changes) or of the tick's.
    tick = ClockTick(now=now + timedelta(days=20), workspace_id=tenant.id)
    result = await temporal.client.execute_workflow(
        SegmentClockWorkflow.run, tick, id=f"clock-{tenant.id}", task_queue=task_queue
    )
    assert result == ClockResult(segments=1, entered=1, exited=0)
    assert [e[0] for e in await segment_events(store, tenant)] == [
        "segment_entered",
        "segment_exited",
        "segment_entered",
    ]


async def test_a_retried_evaluation_writes_no_duplicates(store: Store, tenant: Tenant) -> None:
    """Two evaluations as of the same time (a retry), and two at once: one entry event."""
    now = utcnow()
    async with store.begin() as conn:
        await segments.put_segment(store, conn, tenant.id, "pros", "pros", PRO)
        segment = await segment_members.saved_segment(conn, tenant.id, "pros")
        assert segment is not None
        await segment_members.baseline(store, conn, segment, now)
        await changes.change_attributes(store, conn, tenant.id, "ada", {"plan": "pro"}, changes.Origin("api"))
    for _ in range(2):
        async with store.begin() as conn:
            segment = await segment_members.saved_segment(conn, tenant.id, "pros")
            assert segment is not None
            await segment_members.reevaluate(store, conn, segment, now, ["ada"])
    assert await segment_events(store, tenant) == [("segment_entered", "ada", "pros")]
    # Events stored unrouted: the caller (or the sweeper) routes them.
    async with store.connect() as conn:
        routed = (
            await conn.execute(
                select(events.c.routed_at).where(
                    events.c.workspace_id == tenant.id, events.c.name == "segment_entered"
                )
            )
        ).scalar_one()
    assert routed is None


async def test_a_workspace_without_segments_is_not_evaluated(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    launcher = JourneyLauncher(store, temporal.client, task_queue)
    assert not await launcher.segments.has_segments(tenant.id)
    await put_segment(api, "pros", PRO)
    # Cached for a few seconds in this (other) process; saving a segment here invalidates it.
    assert not await launcher.segments.has_segments(tenant.id)
    launcher.segments_changed(tenant.id)
    assert await launcher.segments.has_segments(tenant.id)


async def test_concurrent_changes_each_enter_once(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    """Twenty people made pros at once, and one of them five times at once: twenty entries."""
    await put_segment(api, "pros", PRO)

    async def make_pro(profile: str) -> None:
        response = await api.put(f"/v1/profiles/{profile}", json={"attributes": {"plan": "pro"}})
        assert response.status_code == 200, response.text

    people = [f"p{n:02}" for n in range(20)]
    await asyncio.gather(*(make_pro(p) for p in [*people, *["p00"] * 4]))
    assert await members(store, tenant, "pros") == people
    entries = await segment_events(store, tenant)
    assert sorted(p for _, p, _ in entries) == people


async def test_clients_cannot_send_the_engines_segment_and_profile_events(api: httpx.AsyncClient) -> None:
    sent = [
        {"id": "e-1", "profile_id": "ada", "name": "segment_entered", "properties": {"segment": "pros"}},
        {"id": "e-2", "profile_id": "ada", "name": "profile_changed"},
        {"id": "e-3", "profile_id": "ada", "name": "viewed"},
    ]
    response = await api.post("/v1/events", json=sent)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    assert [(r["index"], r["faults"][0]["path"]) for r in body["rejected"]] == [
        (0, "$[0].name"),
        (1, "$[1].name"),
    ]


async def test_an_ingest_evaluates_only_the_segments_its_events_may_change(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    await put_segment(api, "pros", PRO)
    await put_segment(api, "loyal", {"not": {"tag": "churned"}})
    # Ada becomes a pro behind the hook's back: only a re-evaluation of "pros" would see it.
    async with store.begin() as conn:
        await changes.change_attributes(store, conn, tenant.id, "ada", {"plan": "pro"}, changes.Origin("api"))
    viewed = {"id": "v-1", "profile_id": "ada", "name": "viewed"}
    assert (await api.post("/v1/events", json=viewed)).status_code == 202
    # Events change no attribute: "pros" was not evaluated for her. "loyal" holds for a profile
    # the ingest created (and for her): both enter it.
    assert await members(store, tenant, "pros") == []
    new = {"id": "v-2", "profile_id": "newcomer", "name": "viewed"}
    assert (await api.post("/v1/events", json=new)).status_code == 202
    assert await members(store, tenant, "loyal") == ["ada", "newcomer"]
    # A profile change re-evaluates everything.
    await api.put("/v1/profiles/ada", json={"attributes": {"age": 3}})
    assert await members(store, tenant, "pros") == ["ada"]
