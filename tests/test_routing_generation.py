"""The workspace's routing generation: each process caches the flows an event can start (and
whether the workspace has segments), and a publish, stop, drain or segment save through another
process is obeyed by the next event it stores (flowline/store/flows.py, launch/routing.py).

"Another process" here is a second JourneyLauncher on the same database (its caches are its own);
tests/test_two_apis.py does the same with two real API processes. On SQLite and PostgreSQL, with
how the read keeps a publish from committing in the middle of an event transaction on each."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.testing import WorkflowEnvironment

from flowline.journey import STOP_SIGNAL
from flowline.store import flows
from flowline.store.database import Store, utcnow
from flowline.store.migrate import alembic_config, upgrade
from flowline.store.tables import events, journeys
from launch.journey_start import BatchEntry, EntryRefused, claim_journey
from launch.routing import JourneyLauncher
from tests.conftest import Tenant

ORDERS: dict[str, Any] = {
    "id": "orders",
    "name": "Orders",
    "trigger": {"type": "event", "event": "ordered"},
    "settings": {"reentry": "concurrent"},
    "steps": [{"id": "done", "type": "exit"}],
}


def event(name: str, person: str) -> dict[str, Any]:
    return {
        "id": f"{name}-{person}-{uuid.uuid4().hex[:6]}",
        "profile_id": person,
        "name": name,
        "timestamp": utcnow(),
        "properties": {},
    }


async def generation(store: Store, workspace_id: str) -> int:
    async with store.begin() as conn:
        return await flows.routing_generation(conn, workspace_id)


async def ok(response: httpx.Response) -> None:
    assert response.status_code in (200, 201), response.text


async def test_publish_stop_drain_and_segment_saves_move_the_generation(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    seen = [await generation(store, tenant.id)]
    await ok(await api.put("/v1/flows/orders", json=ORDERS))
    assert await generation(store, tenant.id) == seen[-1], "a draft routes nothing"
    for step in ("publish", "stop", "publish", "drain"):
        await ok(await api.post(f"/v1/flows/orders/{step}"))
        seen.append(await generation(store, tenant.id))
    segment = {"name": "Pros", "rule": {"attribute": "plan", "op": "is", "value": "pro"}}
    await ok(await api.put("/v1/segments/pros", json=segment))
    seen.append(await generation(store, tenant.id))
    assert seen == sorted(set(seen)), seen
    # Refused changes move nothing.
    assert (await api.post("/v1/flows/orders/drain")).status_code == 409
    assert await generation(store, tenant.id) == seen[-1]


async def test_another_process_routes_by_flows_published_and_stopped_here_at_once(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    # The other process caches for a minute: only the generation can tell it anything.
    other = JourneyLauncher(store, temporal.client, task_queue, flow_cache_seconds=60)
    assert (await other.ingest(tenant.id, [event("ordered", "p0")])).journeys == []  # warm, no flow
    await ok(await api.put("/v1/flows/orders", json=ORDERS))
    await ok(await api.post("/v1/flows/orders/publish"))
    assert len((await other.ingest(tenant.id, [event("ordered", "p1")])).journeys) == 1

    async with store.connect() as conn:
        running = await flows.current_version(conn, tenant.id, "orders")
    assert running is not None
    await ok(await api.post("/v1/flows/orders/stop"))
    assert (await other.ingest(tenant.id, [event("ordered", "p2")])).journeys == []
    # An API start (or add_to_flow) with the flow read before the stop is refused too.
    with pytest.raises(EntryRefused, match="'orders' is stopped"):
        await other.start(tenant.id, running, "p2", entry="api:late")

    await ok(await api.post("/v1/flows/orders/publish"))
    assert len((await other.ingest(tenant.id, [event("ordered", "p3")])).journeys) == 1
    await ok(await api.post("/v1/flows/orders/drain"))
    assert (await other.ingest(tenant.id, [event("ordered", "p4")])).journeys == []


async def test_a_scheduled_run_in_flight_claims_nothing_once_its_flow_is_stopped_or_drained(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    """An audience or date run reads its flow when it begins and claims page after page: a stop or
    drain answered in between (through any process) ends its entries at the next page."""
    await ok(await api.put("/v1/flows/orders", json=ORDERS))
    await ok(await api.post("/v1/flows/orders/publish"))
    async with store.connect() as conn:
        running = await flows.current_version(conn, tenant.id, "orders")
    assert running is not None
    run = JourneyLauncher(store, temporal.client, task_queue, flow_cache_seconds=60)
    first = await run.start_batch(tenant.id, running, [BatchEntry("p1", "run:1")])
    assert len(first) == 1
    for end in ("drain", "stop"):
        await ok(await api.post("/v1/flows/orders/publish"))
        await ok(await api.post(f"/v1/flows/orders/{end}"))
        assert await run.start_batch(tenant.id, running, [BatchEntry(f"p-{end}", f"run:{end}")]) == []
    async with store.connect() as conn:
        claimed = await conn.scalar(
            select(sa.func.count()).select_from(journeys).where(journeys.c.workspace_id == tenant.id)
        )
    assert claimed == 1


async def test_another_process_evaluates_a_segment_saved_here_for_its_next_events(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    other = JourneyLauncher(store, temporal.client, task_queue, flow_cache_seconds=60)
    await other.ingest(tenant.id, [event("visited", "ada")])  # warm: "no segments"
    buyers = {"name": "Buyers", "rule": {"event": "bought", "happened": True, "within": "9d"}}
    await ok(await api.put("/v1/segments/buyers", json=buyers))
    await other.ingest(tenant.id, [event("bought", "ada")])
    async with store.connect() as conn:
        entered = await conn.scalar(
            select(events.c.profile_id).where(
                events.c.workspace_id == tenant.id, events.c.name == "segment_entered"
            )
        )
    assert entered == "ada"


async def test_a_journey_claimed_before_a_stop_and_started_after_its_signals_is_stopped(
    api: httpx.AsyncClient,
    store: Store,
    tenant: Tenant,
    temporal: WorkflowEnvironment,
    task_queue: str,
    worker: None,
) -> None:
    """The claim of an ingest commits, then a stop commits and signals the journeys in flight
    (this one is not started yet), then the ingest starts it: it is stopped all the same."""
    slow = {**ORDERS, "steps": [{"id": "rest", "type": "pause", "for": "1d"}, {"id": "done", "type": "exit"}]}
    await ok(await api.put("/v1/flows/orders", json=slow))
    await ok(await api.post("/v1/flows/orders/publish"))
    await ok(await api.put("/v1/profiles/ada", json={"attributes": {}}))
    async with store.connect() as conn:
        running = await flows.current_version(conn, tenant.id, "orders")
    assert running is not None
    launcher = JourneyLauncher(store, temporal.client, task_queue)
    async with store.begin() as conn:  # step 1 of an ingest
        claim, _ = await claim_journey(store, conn, tenant.id, running, "ada", entry="event:e-1")
    assert claim is not None
    stopped = await api.post("/v1/flows/orders/stop")
    assert stopped.json()["journeys_stopped"] == 0, "not started yet: the signal missed it"
    await launcher._route(tenant.id, [], [claim])  # step 2: the start
    # The launcher told it: the stop is in its history once the task in progress is done. (How
    # the journey takes a stop is the interpreter's, not asserted here: a stop that meets a local
    # activity in flight fails a journey today, a defect of its own.)
    handle = temporal.client.get_workflow_handle(claim.journey_id)
    for _ in range(500):
        history = await handle.fetch_history()
        signals = [
            e.workflow_execution_signaled_event_attributes.signal_name
            for e in history.events
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        if signals:
            break
        await asyncio.sleep(0.01)
    assert signals == [STOP_SIGNAL]


async def test_on_postgresql_a_publish_and_an_event_transaction_never_overlap(
    store: Store, tenant: Tenant
) -> None:
    """An event transaction that read the generation holds a publish (or stop) off until it ends;
    a publish in progress holds the event transaction's read until it commits, which then reads
    the new generation. So the flows it reads next are those running when its events commit."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite has one writer: transactions never overlap there")
    before = await generation(store, tenant.id)

    async with store.begin() as ingest:
        assert await flows.routing_generation(ingest, tenant.id) == before
        with pytest.raises(DBAPIError) as held_off:
            async with store.begin() as publish:
                await publish.execute(text("SET LOCAL lock_timeout = '100ms'"))
                await flows.bump_routing_generation(publish, tenant.id)
        assert isinstance(held_off.value.orig, psycopg.errors.LockNotAvailable)
    assert await generation(store, tenant.id) == before

    async with store.begin() as publish:
        await flows.bump_routing_generation(publish, tenant.id)
        async with store.connect() as reader:
            pid = await reader.scalar(text("SELECT pg_backend_pid()"))
            read = asyncio.create_task(_read_in_transaction(reader, tenant.id))
            async with store.connect() as watcher:
                # Wait until the reader waits for the publish's lock (not a timed wait).
                while not await watcher.scalar(
                    text("SELECT cardinality(pg_blocking_pids(:pid)) > 0"), {"pid": pid}
                ):
                    assert not read.done(), "the event transaction read past a publish in progress"
                    await asyncio.sleep(0.01)
            assert not read.done()
            await publish.commit()
            assert await read == before + 1


async def test_on_sqlite_the_read_holds_off_every_other_writer(store: Store, tenant: Tenant) -> None:
    """SQLite's driver begins a transaction at its first write, so a plain read first would see
    a publish another process commits before the events are written: the read is a write."""
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL: see the test above")
    other = Store(str(store.url))  # another process's engine (its own connections and queue)
    try:
        before = await generation(store, tenant.id)
        async with store.begin() as ingest:
            assert await flows.routing_generation(ingest, tenant.id) == before
            with pytest.raises(DBAPIError, match="database is locked"):
                async with other.begin() as publish:
                    await publish.execute(text("PRAGMA busy_timeout = 100"))
                    await flows.bump_routing_generation(publish, tenant.id)
        async with other.begin() as publish:
            await flows.bump_routing_generation(publish, tenant.id)
        assert await generation(store, tenant.id) == before + 1
    finally:
        await other.dispose()


async def _read_in_transaction(conn: AsyncConnection, workspace_id: str) -> int:
    """In the transaction ``conn`` began already (its pid was read in it), then committed."""
    found = await flows.routing_generation(conn, workspace_id)
    await conn.commit()
    return found


def test_migration_0019_starts_existing_workspaces_at_zero_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "0018")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO workspaces (id, name, webhook_secret, created_at) "
                "VALUES ('w', 'w', 's', '2026-01-01')"
            )
        )
    upgrade(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT routing_generation FROM workspaces")).scalar_one() == 0
    command.downgrade(alembic_config(url), "0018")
    with engine.connect() as conn:
        assert "routing_generation" not in {c["name"] for c in sa.inspect(conn).get_columns("workspaces")}
    engine.dispose()
