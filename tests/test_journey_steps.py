"""journey_steps: each journey's path in the store, exact under retries, numbered across
continue-as-new, and what inspection shows from it (journeys, profiles) when the workflow cannot."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.journey import JourneyLimits, JourneyRef, PathEntry
from flowline.store import journey_steps, journeys
from flowline.store.database import Store
from flowline.store.tables import journey_steps as journey_steps_table
from tests.conftest import Tenant, finish
from tests.flows import welcome_flow
from tests.servers import HttpSink
from tests.test_continue_as_new import events, start_with_limits, ticking_flow
from tests.test_journeys import publish, signed_up

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def rows_of(store: Store, journey_id: str) -> list[tuple[int, str, str | None, bool]]:
    """(seq, step, branch, left) of each stored visit."""
    async with store.connect() as conn:
        found = await conn.execute(
            select(journey_steps_table)
            .where(journey_steps_table.c.journey_id == journey_id)
            .order_by(journey_steps_table.c.seq)
        )
        return [(r.seq, r.step_id, r.branch, r.left_at is not None) for r in found]


async def until_stored(store: Store, journey_id: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(await rows_of(store, journey_id)) < count:
        assert time.monotonic() < deadline, await rows_of(store, journey_id)
        await asyncio.sleep(0.1)


async def test_writing_a_visit_again_updates_it_in_place(store: Store, tenant: Tenant) -> None:
    ref = JourneyRef(
        journey_id=f"j-{tenant.id}", workspace_id=tenant.id, flow_id="f", version=1, profile_id="p"
    )
    first = PathEntry(step="a", type="split", entered_at=T0, left_at=T0, branch="x")
    waiting = PathEntry(step="w", type="pause", entered_at=T0)
    async with store.begin() as conn:
        await journey_steps.record_steps(conn, ref, 0, [first, waiting])
        await journey_steps.record_steps(conn, ref, 0, [first, waiting])  # a retried write
    left = waiting.model_copy(update={"left_at": T0 + timedelta(days=1), "branch": "next"})
    done = PathEntry(step="bye", type="exit", entered_at=T0 + timedelta(days=1), branch="exit")
    async with store.begin() as conn:
        await journey_steps.record_steps(conn, ref, 1, [left, done])
        await journey_steps.record_steps(conn, ref, 1, [left, done])
    assert await rows_of(store, ref.journey_id) == [
        (0, "a", "x", True),
        (1, "w", "next", True),
        (2, "bye", "exit", False),
    ]


async def test_a_waiting_journey_shows_where_it_is_and_what_it_waits_for(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink, store: Store
) -> None:
    await publish(api, welcome_flow(sink.url, pause="2d"))
    [journey_id] = await signed_up(api, "evt-1")
    await until_stored(store, journey_id, 1)  # written before the two-day pause
    assert await rows_of(store, journey_id) == [(0, "wait", None, False)]

    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    assert detail["live"] and detail["current_step"] == "wait"
    assert detail["waiting_for"] == "pause: 2d"
    [journey] = (await api.get("/v1/profiles/ada")).json()["journeys"]
    assert (journey["flow_id"], journey["version"], journey["current_step"]) == ("welcome", 1, "wait")
    listed = (await api.get("/v1/journeys", params={"flow": "welcome"})).json()["journeys"]
    assert [j["current_step"] for j in listed] == ["wait"]
    [version] = (await api.get("/v1/flows/welcome/stats")).json()["versions"]
    assert [(s["id"], s["entered"], s["at_step"]) for s in version["steps"]] == [
        ("wait", 1, 1),
        ("hello", 0, 0),
        ("notify", 0, 0),
        ("done", 0, 0),
    ]

    state = await finish(temporal, journey_id)
    stored = await rows_of(store, journey_id)
    assert stored == [(i, p.step, p.branch, True) for i, p in enumerate(state.path)]
    assert [s[1] for s in stored] == ["wait", "hello", "notify", "done"]
    [journey] = (await api.get("/v1/profiles/ada")).json()["journeys"]
    assert journey["current_step"] == "done"
    [version] = (await api.get("/v1/flows/welcome/stats")).json()["versions"]
    assert [(s["entered"], s["at_step"], s["left"]) for s in version["steps"]] == [
        (1, 0, {"next": 1}),
        (1, 0, {"sent": 1}),
        (1, 0, {"sent": 1}),
        (1, 0, {"exit": 1}),
    ]


async def test_the_stored_path_answers_when_the_workflow_cannot(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    """A journey whose workflow is gone (past retention): its record and its stored path answer."""
    journey_id = f"j-gone-{tenant.id}"
    async with store.begin() as conn:
        await journeys.claim_entry(
            store,
            conn,
            journey_id=journey_id,
            workspace_id=tenant.id,
            flow_id="old",
            version=3,
            profile_id="ada",
            lock="entry:x",
            trigger_event_id=None,
            started_at=T0,
        )
        ref = JourneyRef(
            journey_id=journey_id, workspace_id=tenant.id, flow_id="old", version=3, profile_id="ada"
        )
        path = [
            PathEntry(step="ab", type="split", entered_at=T0, left_at=T0, branch="a"),
            PathEntry(step="wait", type="pause", entered_at=T0),
        ]
        await journey_steps.record_steps(conn, ref, 0, path)
    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    assert not detail["live"] and detail["current_step"] == "wait"
    assert [(p["seq"], p["step"], p["branch"]) for p in detail["path"]] == [(0, "ab", "a"), (1, "wait", None)]


async def test_visits_are_numbered_across_continue_as_new(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    store: Store,
    tenant: Tenant,
    task_queue: str,
) -> None:
    """Five steps, then a wait that continues as new after 3 signals keeping 2 path entries: the
    numbering goes on in the new runs. (The wait is long: on the time-skipping server a wait of
    seconds could time out while the test sends its events.)"""
    flow = ticking_flow(
        {
            "id": "wait",
            "type": "wait_for_event",
            "conditions": [{"event": "tick", "count": {"op": ">=", "value": 7}}],
            "timeout": "30d",
        }
    )
    steps = [{"id": f"s{i}", "type": "update_variable", "set": {"n": str(i)}} for i in range(5)]
    flow["steps"][:0] = steps
    await publish(api, flow)
    limits = JourneyLimits(signals_per_run=3, path_entries_kept=2)
    journey_id = await start_with_limits(store, temporal, tenant, task_queue, limits)
    await events(api, "tick", 7, "t", heard_by=temporal.client.get_workflow_handle(journey_id))
    state = await finish(temporal, journey_id)
    assert state.runs >= 3 and state.path_dropped == 4  # six entries at the first hand-over, two kept
    expected = [(i, f"s{i}", "next", True) for i in range(5)] + [
        (5, "wait", "happened", True),
        (6, "after", "sent", True),
    ]
    assert await rows_of(store, journey_id) == expected
    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    assert [(p["seq"], p["step"]) for p in detail["path"]] == [(seq, step) for seq, step, _, _ in expected]
