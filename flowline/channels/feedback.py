"""Feedback on a sent message (delivered, opened, clicked, failed, bounced, unsubscribed) becomes
a channel event of the recipient, so journeys can wait for it (wait_for_event) and triggers and
segments see it.

One entry point for the tracking routes and the provider report routes. Event ids derive from
the delivery, so a repeated report is stored once; the first occurrence of each kind also sets
the ledger's matching ``*_at`` column.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal, Protocol

from flowline.store import deliveries, events, profiles
from flowline.store.database import Store

FeedbackKind = Literal["delivered", "opened", "clicked", "failed", "bounced", "unsubscribed"]
KINDS: tuple[FeedbackKind, ...] = ("delivered", "opened", "clicked", "failed", "bounced", "unsubscribed")


class EventIngest(Protocol):
    """What feedback needs of the JourneyLauncher (workflows/routing.py): store and route events."""

    async def ingest(self, workspace_id: str, rows: list[dict[str, Any]]) -> Any: ...


def event_id(delivery_id: str, kind: str, detail: str | None = None) -> str:
    if kind == "clicked":
        # One event per link: a second click on the same link is the same event.
        return f"{delivery_id}:clicked:{hashlib.sha256((detail or '').encode()).hexdigest()[:16]}"
    return f"{delivery_id}:{kind}"


def channel_event(
    delivery: dict[str, Any], name: str, event: str, at: datetime, **extra: Any
) -> dict[str, Any]:
    """An event row about ``delivery`` for JourneyLauncher.ingest."""
    properties = {
        "delivery_id": delivery["id"],
        "channel": delivery["channel"],
        "flow_id": delivery["flow_id"],
        "version": delivery["version"],
        "step_id": delivery["step_id"],
        "journey_id": delivery["journey_id"],
        **{k: v for k, v in extra.items() if v is not None},
    }
    return {
        "id": event,
        "profile_id": delivery["recipient_id"],
        "name": name,
        "timestamp": at,
        "properties": properties,
    }


async def record_feedback(
    store: Store, launcher: EventIngest, *, delivery_id: str, kind: str, at: datetime, detail: str | None
) -> bool:
    """Record feedback on a delivery; True when this is news (its event was not stored before).

    ``detail``: the URL of a click, the reason of a failure or bounce. Raises LookupError for an
    unknown delivery. The ledger column and the event are written in one transaction, then the
    event is routed to journeys (if that fails, the sweeper routes it later).
    """
    extra: dict[str, Any] = {"url": detail} if kind == "clicked" else {"reason": detail}
    async with store.begin() as conn:
        delivery = await deliveries.get_delivery(conn, delivery_id)
        if delivery is None:
            raise LookupError(f"no delivery {delivery_id!r}")
        await deliveries.record_feedback(conn, delivery_id, kind, at)
        # An erased person keeps ledger rows as ids only: an event would bring the profile back.
        if await profiles.get_profile(conn, delivery["workspace_id"], delivery["recipient_id"]) is None:
            return False
        row = channel_event(delivery, f"message_{kind}", event_id(delivery_id, kind, detail), at, **extra)
        stored = await events.insert_events(store, conn, delivery["workspace_id"], [row])
    await launcher.ingest(delivery["workspace_id"], [row])  # routes the stored event
    return row["id"] in stored
