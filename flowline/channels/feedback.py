"""What happened to a message after it was sent, as channel events journeys can wait for.

Open pixels, click redirects, unsubscribe links and provider delivery reports all end here:
the first occurrence of each kind sets the delivery's ``{kind}_at`` column, and the feedback
becomes an ordinary event (``message_opened``, ...) of the recipient, stored and routed through
the journey launcher like any event, so ``wait_for_event`` steps, triggers and segments see it.
Event ids derive from the delivery (and the URL for clicks), so a pixel loaded twice or a report
delivered twice is one event.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from flowline.store import deliveries as ledger
from flowline.store.database import Store
from flowline.store.profile_changes import Origin, change_do_not_contact
from flowline.store.profiles import get_profile

log = logging.getLogger(__name__)

FeedbackKind = Literal["delivered", "opened", "clicked", "failed", "bounced", "unsubscribed"]
FEEDBACK_KINDS: tuple[FeedbackKind, ...] = (
    "delivered",
    "opened",
    "clicked",
    "failed",
    "bounced",
    "unsubscribed",
)


class Ingested(Protocol):
    stored: set[str]


class EventIngest(Protocol):
    """What feedback needs of workflows.routing.JourneyLauncher (the domain core does not import
    the Temporal side)."""

    async def ingest(self, workspace_id: str, rows: list[dict[str, Any]]) -> Ingested: ...

    async def route_profiles(self, workspace_id: str, profile_ids: Sequence[str]) -> None: ...


def event_name(kind: FeedbackKind) -> str:
    return f"message_{kind}"


def feedback_event_id(delivery_id: str, kind: FeedbackKind, detail: dict[str, Any]) -> str:
    """One event per delivery and kind; clicks: one per delivery and URL."""
    if kind == "clicked":
        url = str(detail.get("url", ""))
        return f"{delivery_id}:clicked:{hashlib.sha256(url.encode()).hexdigest()[:16]}"
    return f"{delivery_id}:{kind}"


def feedback_properties(delivery: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    """The event's properties: the delivery's coordinates win over anything in ``detail``."""
    own = {
        "delivery_id": delivery["id"],
        "channel": delivery["channel"],
        "flow_id": delivery["flow_id"],
        "version": delivery["version"],
        "step_id": delivery["step_id"],
        "journey_id": delivery["journey_id"],
    }
    return {**detail, **own}


async def record_feedback(
    store: Store,
    launcher: EventIngest,
    *,
    delivery_id: str,
    kind: FeedbackKind,
    at: datetime,
    detail: dict[str, Any],
    workspace_id: str | None = None,
) -> bool:
    """Record feedback about one delivery; True when it is news (its event was stored now).

    ``unsubscribed`` also adds a do-not-contact entry for the delivery's channel (only its sender
    when it had one) in the same transaction. ``workspace_id``, when given, must be the
    delivery's: a caller that knows the workspace cannot touch another's deliveries. False for an
    unknown delivery. Routing the event may raise the launcher's JourneyStartFailed: the event is
    stored, and the same call again (or the sweeper) routes it.
    """
    async with store.begin() as conn:
        delivery = await ledger.get_delivery(conn, delivery_id)
        if delivery is None or (workspace_id is not None and delivery["workspace_id"] != workspace_id):
            return False
        ws, person = delivery["workspace_id"], delivery["recipient_id"]
        await ledger.record_feedback(conn, delivery_id, kind, at)
        # An erased person keeps ledger rows as ids only: an event would bring the profile back.
        if await get_profile(conn, ws, person) is None:
            return False
        contact_changed = False
        if kind == "unsubscribed":
            changed = await change_do_not_contact(
                store,
                conn,
                ws,
                person,
                Origin(source="unsubscribe", flow_id=delivery["flow_id"]),
                action="add",
                channel=delivery["channel"],
                senders=[delivery["sender"]] if delivery["sender"] else None,
            )
            contact_changed = bool(changed)
    event_id = feedback_event_id(delivery_id, kind, detail)
    row = {
        "id": event_id,
        "profile_id": person,
        "name": event_name(kind),
        "timestamp": at,
        "properties": feedback_properties(delivery, detail),
    }
    if contact_changed:
        # The do_not_contact_changed event reaches the flows and journeys that listen.
        await launcher.route_profiles(ws, [person])
    result = await launcher.ingest(ws, [row])
    return event_id in result.stored
