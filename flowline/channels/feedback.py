"""What happened to a message after it was sent, as channel events journeys can wait for.

Open pixels, click redirects, unsubscribe links and provider delivery reports all end here:
the first occurrence of each kind sets the delivery's ``{kind}_at`` column, and the feedback
becomes an ordinary event (``message_opened``, ...) of the recipient, stored and routed through
the journey launcher like any event, so ``wait_for_event`` steps, triggers and segments see it.
Event ids derive from the delivery (and the URL for clicks), so a pixel loaded twice or a report
delivered twice is one event.

``message_sent`` is the send's own: written by the send activity in the transaction that closes
the ledger row 'sent' (record_sent), and routed by the sweeper like the engine's other events.
A ``bounced`` report also puts the channel on the person's do-not-contact list.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store import deliveries as ledger
from flowline.store.database import Store
from flowline.store.events import MESSAGE_SENT, SystemEvents
from flowline.store.profile_changes import Origin, change_do_not_contact
from flowline.store.profiles import get_profile, profile_exists

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
    """What feedback needs of launch.routing.JourneyLauncher (the domain core does not import
    the Temporal side)."""

    async def ingest(
        self, workspace_id: str, rows: list[dict[str, Any]], *, stored_here: bool = False
    ) -> Ingested: ...

    async def route_profiles(self, workspace_id: str, profile_ids: Sequence[str]) -> None: ...


# Channels whose sends are a person's message (notify_internal's and webhooks are not).
PERSONAL_CHANNELS = frozenset({"email", "sms", "push", "in_app"})


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


def sent_event_id(delivery_id: str) -> str:
    return f"{delivery_id}:sent"


async def record_sent(
    conn: AsyncConnection,
    delivery: dict[str, Any],
    at: datetime,
    *,
    into: SystemEvents | None = None,
    person_exists: bool | None = None,
) -> bool:
    """Write ``message_sent`` for a ledger row just closed 'sent'; True when written now.

    Call it in the transaction that closes the row: a retried activity finds the row closed (and
    the event with it), or closes it again and writes the same event id, which is kept once.
    Stored unrouted, for the sweeper (as flow_exited). Nothing for a message that is not a
    person's (notify_internal's recipients are addresses) or for an erased person.

    ``person_exists``: whether the recipient's profile exists, when the caller read it under lock
    in this transaction (else it is read here). ``into``: the event is gathered into a batch the
    caller writes later in the transaction (then True means it is to be written).
    """
    if delivery["channel"] not in PERSONAL_CHANNELS:
        return False
    ws, person = delivery["workspace_id"], delivery["recipient_id"]
    if person_exists is None:
        person_exists = await profile_exists(conn, ws, person)
    if not person_exists:
        return False
    sent = into or SystemEvents(ws)
    sent.add(
        event_id=sent_event_id(delivery["id"]),
        profile_id=person,
        name=MESSAGE_SENT,
        timestamp=at,
        properties=feedback_properties(delivery, {}),
    )
    return True if into is not None else bool(await sent.write(conn))


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
    when it had one) in the same transaction; the first ``bounced`` report of a delivery adds one
    for the channel from every sender (the address is what failed, whoever sends to it).
    ``workspace_id``, when given, must be the delivery's: a caller that knows the workspace cannot
    touch another's deliveries. False for an unknown delivery. Routing the event may raise the
    launcher's JourneyStartFailed: the event is stored, and the same call again (or the sweeper)
    routes it.
    """
    async with store.begin() as conn:
        delivery = await ledger.get_delivery(conn, delivery_id)
        if delivery is None or (workspace_id is not None and delivery["workspace_id"] != workspace_id):
            return False
        ws, person = delivery["workspace_id"], delivery["recipient_id"]
        first = await ledger.record_feedback(conn, delivery_id, kind, at)
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
        elif kind == "bounced" and first:
            # Only the first report: a bounce reported again after the person's address was fixed
            # (and the entry removed) must not block them anew. Reports do not tell soft bounces
            # from hard ones (a provider or relay reports only the final, hard, outcome as
            # 'bounced'), so every bounce counts.
            changed = await change_do_not_contact(
                store,
                conn,
                ws,
                person,
                Origin(source="bounce", flow_id=delivery["flow_id"]),
                action="add",
                channel=delivery["channel"],
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
