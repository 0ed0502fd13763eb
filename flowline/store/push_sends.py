"""The devices a push delivery reached (table push_sends), one row per device token.

FCM takes no idempotency key, so the ledger's pending row alone cannot stop a retried send from
messaging again the devices an earlier attempt reached. Each device's row is committed right
after FCM accepts its message, before the next device is tried: a retry, or a re-run after the
worker died between devices, sends only to the devices without a row. (A worker dying between
FCM's answer and this write can still repeat that one device: no key makes it impossible.)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store.database import Store
from flowline.store.tables import deliveries, push_sends


async def sent_devices(conn: AsyncConnection, delivery_id: str) -> dict[str, str | None]:
    """Token -> provider message id (None when FCM named none) of each device already sent."""
    rows = await conn.execute(
        select(push_sends.c.token, push_sends.c.provider_message_id).where(
            push_sends.c.delivery_id == delivery_id
        )
    )
    return {str(token): message_id for token, message_id in rows}


async def record_device_send(
    store: Store,
    conn: AsyncConnection,
    delivery_id: str,
    token: str,
    provider_message_id: str | None,
    at: datetime,
) -> None:
    row = {
        "delivery_id": delivery_id,
        "token": token,
        "provider_message_id": provider_message_id,
        "sent_at": at,
    }
    await conn.execute(store.insert(push_sends).on_conflict_do_nothing(), row)


async def delivery_id_of_message(
    conn: AsyncConnection, provider_message_id: str, workspace_id: str | None = None
) -> str | None:
    """The push delivery one device's message belongs to (delivery reports name any device's)."""
    query = (
        select(push_sends.c.delivery_id)
        .join(deliveries, deliveries.c.id == push_sends.c.delivery_id)
        .where(push_sends.c.provider_message_id == provider_message_id)
    )
    if workspace_id is not None:
        query = query.where(deliveries.c.workspace_id == workspace_id)
    found = await conn.scalar(query.limit(1))
    return None if found is None else str(found)


async def forget_devices(conn: AsyncConnection, workspace_id: str, recipient_id: str) -> None:
    """Erasure: the person's device tokens go; the ledger rows stay (as ids only)."""
    theirs = select(deliveries.c.id).where(
        deliveries.c.workspace_id == workspace_id, deliveries.c.recipient_id == recipient_id
    )
    await conn.execute(push_sends.delete().where(push_sends.c.delivery_id.in_(theirs)))
