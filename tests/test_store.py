"""The store on SQLite and PostgreSQL (the ``store`` fixture runs each test on both)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, select

from flowline.flow.validation import parse_flow
from flowline.journey import JourneyEnd, JourneyRef
from flowline.store import deliveries, events, flows, journeys, profiles, tables, workspaces
from flowline.store.database import Store
from flowline.store.tables import metadata
from tests.conftest import Tenant, new_tenant

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_migrations_create_every_table_of_the_schema(store: Store) -> None:
    async with store.connect() as conn:
        names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert set(metadata.tables) <= names
    assert "alembic_version" in names


async def test_migrations_create_every_column_of_the_schema(store: Store) -> None:
    """The models and the Alembic chain describe the same columns (a forgotten migration fails)."""

    def columns(sync: object) -> dict[str, set[str]]:
        inspector = inspect(sync)
        return {t: {c["name"] for c in inspector.get_columns(t)} for t in metadata.tables}

    async with store.connect() as conn:
        found = await conn.run_sync(columns)
    assert found == {name: {c.name for c in table.columns} for name, table in metadata.tables.items()}


async def test_api_keys_are_stored_hashed_and_map_to_their_workspace(store: Store) -> None:
    tenant = await new_tenant(store)
    async with store.connect() as conn:
        assert await workspaces.workspace_for_key(conn, tenant.key) == tenant.id
        assert await workspaces.workspace_for_key(conn, tenant.key + "x") is None
        stored = (await conn.execute(select(tables.api_keys.c.key_hash))).scalars().all()
    assert tenant.key not in stored
    assert workspaces.hash_key(tenant.key) in stored


async def test_profile_upsert_merges_and_null_erases(store: Store, tenant: Tenant) -> None:
    async with store.begin() as conn:
        row, created = await profiles.upsert_profile(store, conn, tenant.id, "p1", {"a": 1, "b": "x"})
        assert created and row["attributes"] == {"a": 1, "b": "x"}
        row, created = await profiles.upsert_profile(store, conn, tenant.id, "p1", {"b": None, "c": [1, 2]})
    assert not created
    assert row["attributes"] == {"a": 1, "c": [1, 2]}
    assert row["created_at"].tzinfo is not None


async def test_concurrent_merges_lose_nothing(store: Store, tenant: Tenant) -> None:
    async def merge(i: int) -> None:
        async with store.begin() as conn:
            await profiles.upsert_profile(store, conn, tenant.id, "busy", {f"k{i}": i})

    await asyncio.gather(*(merge(i) for i in range(10)))
    async with store.connect() as conn:
        row = await profiles.get_profile(conn, tenant.id, "busy")
    assert row is not None and row["attributes"] == {f"k{i}": i for i in range(10)}


async def test_events_are_stored_once_per_id(store: Store, tenant: Tenant) -> None:
    batch = [
        {"id": f"e{i}", "profile_id": "p", "name": "n", "timestamp": T0, "properties": {"i": i}}
        for i in range(3)
    ]
    async with store.begin() as conn:
        assert await events.insert_events(store, conn, tenant.id, batch) == {"e0", "e1", "e2"}
        assert await events.insert_events(store, conn, tenant.id, [*batch[1:], {**batch[0], "id": "e3"}]) == {
            "e3"
        }
    other = await new_tenant(store)
    async with store.begin() as conn:
        # Ids are per workspace: another workspace's e0 is another event.
        assert await events.insert_events(store, conn, other.id, batch[:1]) == {"e0"}


async def test_publishing_numbers_versions_and_keeps_them_immutable(store: Store, tenant: Tenant) -> None:
    doc = {
        "id": "f1",
        "name": "F",
        "trigger": {"type": "event", "event": "go"},
        "steps": [{"id": "a", "type": "exit"}],
    }
    async with store.begin() as conn:
        await flows.save_draft(store, conn, tenant.id, parse_flow(doc))
        assert await flows.publish(conn, tenant.id, "f1", parse_flow(doc)) == 1
        changed = parse_flow({**doc, "name": "F2"})
        await flows.save_draft(store, conn, tenant.id, changed)
        assert await flows.publish(conn, tenant.id, "f1", changed) == 2
    async with store.connect() as conn:
        versions = await flows.list_versions(conn, tenant.id, "f1")
        triggered = await flows.event_triggered_flows(conn, tenant.id)
        elsewhere = await flows.event_triggered_flows(conn, (await new_tenant(store)).id)
    assert [v["version"] for v in versions] == [1, 2]
    assert [(f.flow_id, f.version, f.document.name) for f in triggered] == [("f1", 2, "F2")]
    assert elsewhere == []


async def _claim(store: Store, tenant: Tenant, jid: str, lock: str) -> bool:
    jid = f"{tenant.id}-{jid}"  # journey ids are global (they are workflow ids)
    async with store.begin() as conn:
        return await journeys.claim_entry(
            store,
            conn,
            journey_id=jid,
            workspace_id=tenant.id,
            flow_id="f",
            version=1,
            profile_id="p",
            lock=lock,
            trigger_event_id=None,
            started_at=T0,
        )


async def _end(store: Store, tenant: Tenant, jid: str) -> None:
    jid = f"{tenant.id}-{jid}"
    ref = JourneyRef(journey_id=jid, workspace_id=tenant.id, flow_id="f", version=1, profile_id="p")
    async with store.begin() as conn:
        await journeys.record_end(
            conn, JourneyEnd(journey=ref, status="completed", last_step="x", exit_reason="done", ended_at=T0)
        )


async def test_reentry_after_exit_holds_one_running_journey(store: Store, tenant: Tenant) -> None:
    lock = journeys.entry_lock("after_exit", "ignored")
    assert await _claim(store, tenant, "j1", lock)
    assert not await _claim(store, tenant, "j2", lock)
    assert not await _claim(store, tenant, "j1", lock), "the same journey id never starts twice"
    await _end(store, tenant, "j1")
    assert await _claim(store, tenant, "j2", lock)


async def test_reentry_never_holds_for_good(store: Store, tenant: Tenant) -> None:
    lock = journeys.entry_lock("never", "x")
    assert await _claim(store, tenant, "j1", lock)
    await _end(store, tenant, "j1")
    assert not await _claim(store, tenant, "j2", lock)


async def test_reentry_concurrent_is_per_entry_key(store: Store, tenant: Tenant) -> None:
    assert await _claim(store, tenant, "j1", journeys.entry_lock("concurrent", "order-1"))
    assert await _claim(store, tenant, "j2", journeys.entry_lock("concurrent", "order-2"))
    assert not await _claim(store, tenant, "j3", journeys.entry_lock("concurrent", "order-1"))


async def test_concurrent_claims_let_exactly_one_in(store: Store, tenant: Tenant) -> None:
    lock = journeys.entry_lock("never", "x")
    results = await asyncio.gather(*(_claim(store, tenant, f"j{i}", lock) for i in range(20)))
    assert sum(results) == 1


async def test_delivery_ledger_opens_once_per_key(store: Store, tenant: Tenant) -> None:
    delivery = deliveries.Delivery(
        workspace_id=tenant.id, journey_id="j", step_id="s", visit=1, recipient_id="p", channel="webhook"
    )
    opened = []
    for _ in range(2):
        async with store.begin() as conn:
            opened.append(await deliveries.open_delivery(store, conn, delivery))
    (first, created_first), (second, created_second) = opened
    assert created_first and not created_second
    assert first["id"] == second["id"] and first["status"] == "pending"
    async with store.begin() as conn:
        await deliveries.close_delivery(conn, first["id"], "sent")
        row = await deliveries.find_delivery(conn, delivery.key)
    assert row is not None and row["status"] == "sent"
    assert row["sent_at"] - row["created_at"] < timedelta(minutes=1)


async def test_in_app_delivery_writes_one_message_per_delivery(store: Store, tenant: Tenant) -> None:
    delivery = deliveries.Delivery(
        workspace_id=tenant.id, journey_id="j2", step_id="s", visit=1, recipient_id="p", channel="in_app"
    )
    results = []
    for _ in range(2):
        async with store.begin() as conn:
            results.append(
                await deliveries.deliver_in_app(store, conn, delivery, title="t", body="b", data={})
            )
    assert [delivered for _, delivered in results] == [True, False]
    assert results[0][0] == results[1][0]
    async with store.connect() as conn:
        inbox = await deliveries.list_inbox(conn, tenant.id, "p")
    assert [(m["title"], m["body"], m["delivery_id"]) for m in inbox] == [("t", "b", results[0][0])]
