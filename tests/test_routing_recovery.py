"""Events whose routing did not finish are routed later: by a resend, or by the sweeper."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from flowline.flow.steps.waiting import PROFILE_CHANGED
from flowline.flow.triggers import SEGMENT_ENTERED, SEGMENT_EXITED
from flowline.store import leases
from flowline.store.database import Store, utcnow
from flowline.store.events import ENGINE_EVENTS, JOURNEY_EVENTS
from flowline.store.tables import events, journeys
from launch.journey_start import JourneyStartFailed
from launch.routing import SWEEP_LEASE, JourneyLauncher
from tests.conftest import Tenant, finish, new_tenant
from tests.flows import send_then_exit_flow
from tests.servers import unreachable_temporal
from tests.test_journeys import publish


def test_engine_events_are_every_event_the_engine_writes() -> None:
    assert JOURNEY_EVENTS | {PROFILE_CHANGED, SEGMENT_ENTERED, SEGMENT_EXITED} == ENGINE_EVENTS


async def test_the_sweeper_routes_events_left_unrouted(
    api: httpx.AsyncClient,
    store: Store,
    tenant: Tenant,
    temporal: WorkflowEnvironment,
    worker: None,
    task_queue: str,
) -> None:
    await publish(api, send_then_exit_flow("signed_up"))
    # An API process whose Temporal is gone: the events are stored, their journey only claimed.
    gone = await unreachable_temporal()
    broken = JourneyLauncher(store, gone, task_queue)
    rows = [{"id": "s-1", "profile_id": "ada", "name": "signed_up", "timestamp": utcnow(), "properties": {}}]
    with pytest.raises(JourneyStartFailed):
        await broken.ingest(tenant.id, rows)

    healthy = JourneyLauncher(store, temporal.client, task_queue)
    assert (
        await healthy.sweep(older_than=timedelta(hours=1), workspace_id=tenant.id) == 0
    )  # too fresh to sweep yet
    # The flow_entered its (claimed) journey wrote is the engine's own: swept after seconds,
    # while the client's event waits for the API's own routing to have had its half minute.
    engine_only = await healthy.sweep(
        older_than=timedelta(hours=1), engine_older_than=timedelta(0), workspace_id=tenant.id
    )
    assert engine_only == 1
    async with store.connect() as conn:
        assert (
            await conn.scalar(
                select(events.c.routed_at).where(events.c.workspace_id == tenant.id, events.c.id == "s-1")
            )
            is None
        )
    assert await healthy.sweep(older_than=timedelta(0), workspace_id=tenant.id) == 1
    async with store.connect() as conn:
        [journey_id] = (
            await conn.execute(select(journeys.c.id).where(journeys.c.workspace_id == tenant.id))
        ).scalars()
        routed_at = await conn.scalar(
            select(events.c.routed_at).where(events.c.workspace_id == tenant.id, events.c.id == "s-1")
        )
    assert routed_at is not None
    assert (await finish(temporal, journey_id)).status == "completed"
    inbox = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert [m["body"] for m in inbox] == ["hi"]


async def test_two_processes_sweeping_at_once_route_each_event_once(
    database_urls: dict[str, str | None], temporal: WorkflowEnvironment, task_queue: str
) -> None:
    """Two API processes' sweepers (each its own engine, so its own database sessions) sweep at
    the same moment: the lease (flowline/store/leases.py) lets one of them route the backlog and
    the other skip, so no event is routed twice (before it, both routed all 40: 80)."""
    url = database_urls["postgresql"]
    if url is None:
        pytest.skip(str(database_urls["postgresql_reason"]))
    first, second = Store(url), Store(url)
    try:
        tenant = await new_tenant(first)
        old = utcnow() - timedelta(hours=1)
        async with first.begin() as conn:
            await conn.execute(
                events.insert(),
                [
                    {
                        "workspace_id": tenant.id,
                        "id": f"left-{n}",
                        "profile_id": f"p{n}",
                        "name": "nobody_listens",
                        "timestamp": old,
                        "properties": {},
                        "received_at": old,
                    }
                    for n in range(40)
                ],
            )
        # The first sweeper stops between reading the backlog and routing it, until the second
        # has swept: the moment two sweeps coincide.
        read, second_done = asyncio.Event(), asyncio.Event()

        class Paused(JourneyLauncher):
            async def _route(self, *args: Any, **kwargs: Any) -> None:
                read.set()
                await second_done.wait()
                await super()._route(*args, **kwargs)

        sweepers = [
            Paused(first, temporal.client, task_queue),
            JourneyLauncher(second, temporal.client, task_queue),
        ]
        sweeping = asyncio.create_task(
            sweepers[0].sweep(older_than=timedelta(minutes=1), workspace_id=tenant.id)
        )
        await asyncio.wait_for(read.wait(), timeout=30)
        try:
            assert await sweepers[1].sweep(older_than=timedelta(minutes=1), workspace_id=tenant.id) == 0
        finally:
            second_done.set()
        assert await sweeping == 40
        async with first.connect() as conn:
            left = await conn.scalar(
                select(func.count()).where(events.c.workspace_id == tenant.id, events.c.routed_at.is_(None))
            )
        assert left == 0
        # The lease is free again: the next sweep, by either process, finds nothing left.
        assert await sweepers[1].sweep(older_than=timedelta(minutes=1), workspace_id=tenant.id) == 0
        async with leases.exclusive(second, SWEEP_LEASE) as held:
            assert held
    finally:
        await first.dispose()
        await second.dispose()


async def test_a_lease_held_by_one_process_is_refused_to_another_until_released(
    database_urls: dict[str, str | None],
) -> None:
    url = database_urls["postgresql"]
    if url is None:
        pytest.skip(str(database_urls["postgresql_reason"]))
    first, second = Store(url), Store(url)
    try:
        async with leases.exclusive(first, "test-lease") as held:
            assert held
            async with leases.exclusive(second, "test-lease") as other:
                assert not other
            async with leases.exclusive(second, "another-lease") as unrelated:
                assert unrelated
        async with leases.exclusive(second, "test-lease") as after:
            assert after
    finally:
        await first.dispose()
        await second.dispose()
