"""The delivery ledger (one row per message per recipient per step visit) and the in-app inbox."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store import push_sends
from flowline.store.database import Store, utcnow
from flowline.store.tables import deliveries, inbox_messages


def delivery_key(journey_id: str, step_id: str, visit: int, recipient_id: str) -> str:
    return f"{journey_id}/{step_id}/{visit}/{recipient_id}"


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient from one visit of a step: the unit the ledger counts once."""

    workspace_id: str
    journey_id: str
    step_id: str
    visit: int
    recipient_id: str
    channel: str
    flow_id: str | None = None
    version: int | None = None
    address: str | None = None
    sender: str | None = None

    @property
    def key(self) -> str:
        return delivery_key(self.journey_id, self.step_id, self.visit, self.recipient_id)


async def find_delivery(conn: AsyncConnection, key: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(deliveries).where(deliveries.c.idempotency_key == key))).first()
    return None if row is None else dict(row._mapping)


def _ledger_row(delivery: Delivery, status: str, now: datetime, detail: str | None) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "idempotency_key": delivery.key,
        "status": status,
        "detail": detail,
        "created_at": now,
        "sent_at": now if status == "sent" else None,
        **asdict(delivery),
    }


async def _insert(
    store: Store,
    conn: AsyncConnection,
    delivery: Delivery,
    status: str,
    now: datetime,
    detail: str | None = None,
) -> str | None:
    """Insert the ledger row; its new id, or None when the key was there already."""
    statement = store.insert(deliveries).on_conflict_do_nothing().returning(deliveries.c.id)
    inserted = (
        await conn.execute(statement, _ledger_row(delivery, status, now, detail))
    ).scalar_one_or_none()
    return None if inserted is None else str(inserted)


async def _insert_row(
    store: Store,
    conn: AsyncConnection,
    delivery: Delivery,
    status: str,
    now: datetime,
    detail: str | None = None,
) -> dict[str, Any] | None:
    """``_insert`` returning the whole row as stored (no read after the INSERT), None when the
    key was there already."""
    statement = store.insert(deliveries).on_conflict_do_nothing().returning(*deliveries.c)
    inserted = (await conn.execute(statement, _ledger_row(delivery, status, now, detail))).first()
    return None if inserted is None else dict(inserted._mapping)


async def open_delivery(
    store: Store, conn: AsyncConnection, delivery: Delivery, now: datetime | None = None
) -> tuple[dict[str, Any], bool]:
    """The ledger row of ``delivery``, created 'pending' if absent; returns (row, created)."""
    row = await _insert_row(store, conn, delivery, "pending", now or utcnow())
    if row is not None:
        return row, True
    row = await find_delivery(conn, delivery.key)
    assert row is not None
    return row, False


async def skip_delivery(
    store: Store, conn: AsyncConnection, delivery: Delivery, reason: str, now: datetime
) -> dict[str, Any]:
    """Record that a rule left the recipient out (once: a retry finds the row)."""
    row = await _insert_row(store, conn, delivery, "skipped", now, detail=reason)
    if row is None:
        row = await find_delivery(conn, delivery.key)
    assert row is not None
    return row


async def recent_sends(
    conn: AsyncConnection, workspace_id: str, recipient_id: str, channel: str, since: datetime
) -> int:
    """Messages on ``channel`` to one person since ``since``, from every flow (frequency caps).
    Pending ones count: they are being sent."""
    query = select(func.count()).where(
        deliveries.c.workspace_id == workspace_id,
        deliveries.c.recipient_id == recipient_id,
        deliveries.c.channel == channel,
        deliveries.c.status.in_(("sent", "pending")),
        deliveries.c.created_at >= since,
    )
    return int(await conn.scalar(query) or 0)


async def deliver_in_app(
    store: Store,
    conn: AsyncConnection,
    delivery: Delivery,
    *,
    title: str,
    body: str,
    data: dict[str, Any],
    now: datetime | None = None,
) -> tuple[str, bool]:
    """Ledger row and inbox message in one go; a second call for ``delivery`` adds nothing.

    Returns (delivery id, whether this call delivered). Call it inside one transaction, so the
    message exists exactly when its ledger row does.
    """
    now = now or utcnow()
    inserted = await _insert(store, conn, delivery, "sent", now)
    if inserted is None:
        existing = await conn.scalar(
            select(deliveries.c.id).where(deliveries.c.idempotency_key == delivery.key)
        )
        return str(existing), False
    await add_inbox_message(
        conn,
        workspace_id=delivery.workspace_id,
        profile_id=delivery.recipient_id,
        delivery_id=inserted,
        title=title,
        body=body,
        data=data,
        created_at=now,
    )
    return inserted, True


async def close_delivery(
    conn: AsyncConnection,
    delivery_id: str,
    status: str,
    detail: str | None = None,
    *,
    provider_message_id: str | None = None,
    at: datetime | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "detail": detail}
    if status == "sent":
        values["sent_at"] = at or utcnow()
    if provider_message_id is not None:
        values["provider_message_id"] = provider_message_id
    await conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(**values))


async def add_inbox_message(
    conn: AsyncConnection,
    *,
    workspace_id: str,
    profile_id: str,
    delivery_id: str,
    title: str,
    body: str,
    data: dict[str, Any],
    created_at: datetime | None = None,
) -> str:
    message_id = uuid.uuid4().hex
    await conn.execute(
        inbox_messages.insert().values(
            id=message_id,
            workspace_id=workspace_id,
            profile_id=profile_id,
            delivery_id=delivery_id,
            title=title,
            body=body,
            data=data,
            created_at=created_at or utcnow(),
        )
    )
    return message_id


async def list_inbox(
    conn: AsyncConnection, workspace_id: str, profile_id: str, limit: int = 100, *, unread: bool = False
) -> list[dict[str, Any]]:
    """Newest first; ``unread``: only messages not read yet."""
    query = select(inbox_messages).where(
        inbox_messages.c.workspace_id == workspace_id, inbox_messages.c.profile_id == profile_id
    )
    if unread:
        query = query.where(inbox_messages.c.read_at.is_(None))
    rows = await conn.execute(
        query.order_by(inbox_messages.c.created_at.desc(), inbox_messages.c.id).limit(limit)
    )
    return [dict(r._mapping) for r in rows]


# Feedback kinds and the ledger column holding the first time each happened.
FEEDBACK_COLUMNS = {
    "delivered": deliveries.c.delivered_at,
    "failed": deliveries.c.failed_at,
    "opened": deliveries.c.opened_at,
    "clicked": deliveries.c.clicked_at,
    "bounced": deliveries.c.bounced_at,
    "unsubscribed": deliveries.c.unsubscribed_at,
}


async def get_delivery(conn: AsyncConnection, delivery_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(deliveries).where(deliveries.c.id == delivery_id))).first()
    return None if row is None else dict(row._mapping)


async def delivery_by_provider_id(
    conn: AsyncConnection, channel: str, provider_message_id: str, workspace_id: str | None = None
) -> dict[str, Any] | None:
    """The ledger row a provider's delivery report names (index (channel, provider_message_id));
    a push delivery's row keeps its first device's id, the others are found in push_sends."""
    query = select(deliveries).where(
        deliveries.c.channel == channel, deliveries.c.provider_message_id == provider_message_id
    )
    if workspace_id is not None:
        query = query.where(deliveries.c.workspace_id == workspace_id)
    row = (await conn.execute(query.limit(1))).first()
    if row is None and channel == "push":
        delivery_id = await push_sends.delivery_id_of_message(conn, provider_message_id, workspace_id)
        return None if delivery_id is None else await get_delivery(conn, delivery_id)
    return None if row is None else dict(row._mapping)


async def record_feedback(conn: AsyncConnection, delivery_id: str, kind: str, at: datetime) -> bool:
    """Set the column of ``kind`` (delivered_at, opened_at ...) unless it is set; True the first time."""
    column = FEEDBACK_COLUMNS.get(kind)
    if column is None:
        return False
    result = await conn.execute(
        deliveries.update().where(deliveries.c.id == delivery_id, column.is_(None)).values({column: at})
    )
    return bool(result.rowcount)


async def note_provider_message_id(conn: AsyncConnection, delivery_id: str, provider_message_id: str) -> None:
    """Keep the provider's id when a report names it before the send recorded it."""
    await conn.execute(
        deliveries.update()
        .where(deliveries.c.id == delivery_id, deliveries.c.provider_message_id.is_(None))
        .values(provider_message_id=provider_message_id)
    )
