"""Ledger rows and stored events for the feedback, report and inbox tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from flowline.store import deliveries
from flowline.store.database import Store
from flowline.store.profiles import ensure_profiles
from flowline.store.tables import events


def delivery(workspace_id: str, profile_id: str, channel: str, **extra: Any) -> deliveries.Delivery:
    return deliveries.Delivery(
        workspace_id=workspace_id,
        journey_id=f"j-{uuid.uuid4().hex[:12]}",
        step_id="send",
        visit=0,
        recipient_id=profile_id,
        channel=channel,
        flow_id="onboarding",
        version=3,
        **extra,
    )


async def open_delivery(store: Store, workspace_id: str, profile_id: str, channel: str, **extra: Any) -> str:
    """A pending ledger row of a send to ``profile_id`` (who exists); its id."""
    async with store.begin() as conn:
        await ensure_profiles(store, conn, workspace_id, [profile_id])
        row, _ = await deliveries.open_delivery(
            store, conn, delivery(workspace_id, profile_id, channel, **extra)
        )
    return str(row["id"])


async def in_app_message(
    store: Store, workspace_id: str, profile_id: str, data: dict[str, Any]
) -> tuple[str, str]:
    """An inbox message delivered as a send would; (delivery id, message id)."""
    async with store.begin() as conn:
        await ensure_profiles(store, conn, workspace_id, [profile_id])
        delivery_id, _ = await deliveries.deliver_in_app(
            store,
            conn,
            delivery(workspace_id, profile_id, "in_app"),
            title="Gift",
            body="A reward",
            data=data,
        )
        rows = await deliveries.list_inbox(conn, workspace_id, profile_id)
    return delivery_id, next(r["id"] for r in rows if r["delivery_id"] == delivery_id)


async def events_named(store: Store, workspace_id: str, name: str) -> list[dict[str, Any]]:
    async with store.connect() as conn:
        query = select(events).where(events.c.workspace_id == workspace_id, events.c.name == name)
        return [dict(r._mapping) for r in await conn.execute(query.order_by(events.c.id))]


async def delivery_row(store: Store, delivery_id: str) -> dict[str, Any]:
    async with store.connect() as conn:
        row = await deliveries.get_delivery(conn, delivery_id)
    assert row is not None
    return row
