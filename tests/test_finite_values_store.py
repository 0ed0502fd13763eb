"""The store never writes a non-finite number, on SQLite and PostgreSQL (the ``store`` fixture runs
each test on both): the write raises and its transaction leaves nothing behind."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text

from flowline.store import events, profiles, segments
from flowline.store import profile_changes as changes
from flowline.store.database import Store
from flowline.store.tables import events as events_table
from flowline.store.tables import profiles as profiles_table
from tests.conftest import Tenant

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NON_FINITE = [math.nan, math.inf, -math.inf, float("1e400")]


def _refused_as_not_json(error: BaseException) -> bool:
    """json_values.dumps's ValueError, raised as is or wrapped by SQLAlchemy (StatementError.orig)."""
    cause = getattr(error, "orig", None) or error
    return isinstance(cause, ValueError) and "not JSON compliant" in str(cause)


async def _profile_rows(store: Store, tenant: Tenant) -> list[dict[str, Any]]:
    async with store.connect() as conn:
        query = select(profiles_table.c.id, profiles_table.c.attributes).where(
            profiles_table.c.workspace_id == tenant.id
        )
        return [dict(r._mapping) for r in await conn.execute(query)]


@pytest.mark.parametrize("number", NON_FINITE, ids=["nan", "inf", "-inf", "1e400"])
async def test_a_profile_write_with_a_non_finite_number_raises_and_rolls_back(
    store: Store, tenant: Tenant, number: float
) -> None:
    async with store.begin() as conn:
        await profiles.upsert_profile(store, conn, tenant.id, "kept", {"score": 1})
    with pytest.raises(Exception) as raised:
        async with store.begin() as conn:
            # A valid write first: the failing one must take it back with it.
            await profiles.upsert_profile(store, conn, tenant.id, "new", {"plan": "pro"})
            await profiles.upsert_profile(store, conn, tenant.id, "kept", {"deep": {"x": [1, number]}})
    assert _refused_as_not_json(raised.value), repr(raised.value)
    assert await _profile_rows(store, tenant) == [{"id": "kept", "attributes": {"score": 1}}]


async def test_an_event_batch_with_a_non_finite_property_raises_and_stores_nothing(
    store: Store, tenant: Tenant
) -> None:
    """PostgreSQL sends a batch as one JSON document written by hand (events._insert_from_json)."""
    batch = [
        {"id": "ok", "profile_id": "p", "name": "viewed", "timestamp": T0, "properties": {"n": 1}},
        {"id": "bad", "profile_id": "p", "name": "viewed", "timestamp": T0, "properties": {"n": math.nan}},
    ]
    with pytest.raises(Exception) as raised:
        async with store.begin() as conn:
            await events.insert_events(store, conn, tenant.id, batch)
    assert _refused_as_not_json(raised.value), repr(raised.value)
    async with store.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(events_table).where(events_table.c.workspace_id == tenant.id)
        )
    assert count == 0


async def test_a_segment_rule_with_a_non_finite_value_is_not_stored(store: Store, tenant: Tenant) -> None:
    rule = {"attribute": "score", "op": "greater_than", "value": math.inf}
    with pytest.raises(Exception) as raised:
        async with store.begin() as conn:
            await segments.put_segment(store, conn, tenant.id, "high", "High", rule)
    assert _refused_as_not_json(raised.value), repr(raised.value)
    async with store.connect() as conn:
        assert await segments.get_segment(conn, tenant.id, "high") is None


async def test_the_stored_text_is_json_every_database_reads(store: Store, tenant: Tenant) -> None:
    """What the store does write stays valid JSON for the database's own JSON functions."""
    async with store.begin() as conn:
        await profiles.upsert_profile(store, conn, tenant.id, "p", {"score": 1.5, "big": 10**30})
    function = "json_extract(attributes, '$.score')" if store.dialect == "sqlite" else "attributes->>'score'"
    async with store.connect() as conn:
        found = await conn.scalar(
            text(f"SELECT {function} FROM profiles WHERE workspace_id = :w AND id = 'p'"), {"w": tenant.id}
        )
    assert float(found) == 1.5


async def _poison(store: Store, tenant: Tenant, profile_id: str) -> None:
    """What SQLite may hold from before the store refused non-finite numbers (PostgreSQL's JSONB
    never took them)."""
    async with store.begin() as conn:
        await profiles.upsert_profile(store, conn, tenant.id, profile_id, {})
        await conn.execute(
            text("UPDATE profiles SET attributes = :poison WHERE workspace_id = :w AND id = :p"),
            {"poison": '{"a": NaN, "deep": [1, -Infinity], "keep": "x"}', "w": tenant.id, "p": profile_id},
        )


async def test_a_profile_holding_nan_from_before_still_takes_changes(store: Store, tenant: Tenant) -> None:
    """Without this, every merge into such a profile would fail for good (PUT /v1/profiles a 500,
    a profile step a day of retries) until the repair ran: the old values are written back as null."""
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL's JSONB never held NaN or Infinity")
    await _poison(store, tenant, "api")
    async with store.begin() as conn:
        row, _ = await profiles.upsert_profile(store, conn, tenant.id, "api", {"b": 2})
    assert row["attributes"] == {"a": None, "deep": [1, None], "keep": "x", "b": 2}

    await _poison(store, tenant, "flow")
    origin = changes.Origin(flow_id="f", journey_id="j-1", step_id="s", visit=1)
    async with store.begin() as conn:
        altered = await changes.change_attributes(
            store, conn, tenant.id, "flow", {"b": 2, "keep": "x"}, origin
        )
    assert altered == {"b": {"from": None, "to": 2}}
    async with store.connect() as conn:
        stored = await profiles.get_profile(conn, tenant.id, "flow")
        event = (
            await conn.execute(
                select(events_table.c.properties).where(
                    events_table.c.workspace_id == tenant.id,
                    events_table.c.id == origin.event_id("profile_changed", "flow"),
                )
            )
        ).scalar_one()
    assert stored is not None and stored["attributes"] == {"a": None, "deep": [1, None], "keep": "x", "b": 2}
    assert event["changed"] == {"b": {"from": None, "to": 2}}
