"""Reading and consuming in-app messages, and the events they raise.

Reading is idempotent and raises ``message_opened`` (channel in_app) the first time, through the
feedback path when the message came from a send (so the ledger's opened_at is set too).
Consuming redeems a consumable message (a reward) exactly once and raises ``message_consumed``
with the message's data. Journeys can wait for both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowline.channels.feedback import EventIngest, channel_event, record_feedback
from flowline.store import deliveries, inbox
from flowline.store.database import Store


class NotConsumable(Exception):
    pass


class AlreadyConsumed(Exception):
    pass


def _own_event(message: dict[str, Any], name: str, event: str, at: datetime, **extra: Any) -> dict[str, Any]:
    """An event about a message that no send recorded (added to the inbox directly)."""
    properties = {"message_id": message["id"], "channel": "in_app", **extra}
    return {
        "id": event,
        "profile_id": message["profile_id"],
        "name": name,
        "timestamp": at,
        "properties": properties,
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
    if first:
        if message["delivery_id"] is not None:
            await record_feedback(
                store, launcher, delivery_id=message["delivery_id"], kind="opened", at=at, detail=None
            )
        else:
            event = _own_event(message, "message_opened", f"inbox:{message_id}:opened", at)
            await launcher.ingest(workspace_id, [event])
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
        delivery = (
            None
            if message["delivery_id"] is None
            else await deliveries.get_delivery(conn, message["delivery_id"])
        )
    extra = {"message_id": message_id, "data": message["data"]}
    if delivery is not None:
        event = channel_event(delivery, "message_consumed", f"{delivery['id']}:consumed", at, **extra)
    else:
        event = _own_event(
            message, "message_consumed", f"inbox:{message_id}:consumed", at, data=message["data"]
        )
    await launcher.ingest(workspace_id, [event])
    return message
