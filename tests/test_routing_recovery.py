"""Events whose routing did not finish are routed later: by a resend, or by the sweeper."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.flow.steps.waiting import PROFILE_CHANGED
from flowline.flow.triggers import SEGMENT_ENTERED, SEGMENT_EXITED
from flowline.store.database import Store, utcnow
from flowline.store.events import ENGINE_EVENTS, JOURNEY_EVENTS
from flowline.store.tables import events, journeys
from launch.journey_start import JourneyStartFailed
from launch.routing import JourneyLauncher
from tests.conftest import Tenant, finish
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
