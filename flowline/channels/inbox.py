"""Reading and consuming in-app messages, and the events they raise.

Reading is idempotent; the first read raises ``message_opened`` (channel in_app) and sets the
ledger's opened_at. Consuming redeems a consumable message (a reward) exactly once and raises
``message_consumed`` with the message's data. Journeys can wait for both. The message's change
and its event are written in one transaction, then the event is routed (if routing fails, the
sweeper routes it later): never a read without its event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.channels.feedback import EventIngest
from flowline.store import deliveries, events, inbox
from flowline.store.database import Store


class NotConsumable(Exception):
    pass


class AlreadyConsumed(Exception):
    pass


async def _event(
    conn: AsyncConnection, message: dict[str, Any], kind: str, at: datetime, **extra: Any
) -> dict[str, Any]:
    """The event row of ``kind`` (opened, consumed) about ``message``, with its send's details."""
    delivery = (
        None
        if message["delivery_id"] is None
        else await deliveries.get_delivery(conn, message["delivery_id"])
    )
    properties: dict[str, Any] = {"message_id": message["id"], "channel": "in_app"}
    if delivery is not None:
        properties |= {k: delivery[k] for k in ("flow_id", "version", "step_id", "journey_id")}
        properties["delivery_id"] = delivery["id"]
    # Ids like feedback's ({delivery_id}:opened): a repeat is stored once.
    event_id = f"{message['delivery_id']}:{kind}" if delivery is not None else f"inbox:{message['id']}:{kind}"
    return {
        "id": event_id,
        "profile_id": message["profile_id"],
        "name": f"message_{kind}",
        "timestamp": at,
        "properties": properties | extra,
    }


async def read_message(
    store: Store, launcher: EventIngest, workspace_id: str, message_id: str, at: datetime
) -> dict[str, Any]:
    """Mark the message read; its row after. Raises LookupError when the workspace has no such message."""
    async with store.begin() as conn:
        first = await inbox.mark_read(conn, workspace_id, message_id, at)
        message = await inbox.get_message(conn, workspace_id, message_id)
        if message is None:
            raise LookupError(message_id)
        if not first:
            return message
        if message["delivery_id"] is not None:
            await deliveries.record_feedback(conn, message["delivery_id"], "opened", at)
        event = await _event(conn, message, "opened", at)
        await events.insert_events(store, conn, workspace_id, [event])
    await launcher.ingest(workspace_id, [event], stored_here=True)
    return message


async def consume_message(
    store: Store, launcher: EventIngest, workspace_id: str, message_id: str, at: datetime
) -> dict[str, Any]:
    """Redeem a consumable message once; its row after.

    Raises LookupError (no such message in the workspace), NotConsumable, AlreadyConsumed. The
    conditional update decides between concurrent consumes: exactly one wins.
    """
    async with store.begin() as conn:
        message = await inbox.get_message(conn, workspace_id, message_id)
        if message is None:
            raise LookupError(message_id)
        if not inbox.is_consumable(message["data"]):
            raise NotConsumable(message_id)
        if not await inbox.mark_consumed(conn, workspace_id, message_id, at):
            raise AlreadyConsumed(message_id)
        message = await inbox.get_message(conn, workspace_id, message_id)
        assert message is not None
        event = await _event(conn, message, "consumed", at, data=message["data"])
        await events.insert_events(store, conn, workspace_id, [event])
    await launcher.ingest(workspace_id, [event], stored_here=True)
    return message
