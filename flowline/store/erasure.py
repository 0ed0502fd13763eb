"""Erasing a person (right to be forgotten): every row that holds their data, in one transaction.

Journey records stay, as ids only (flow, version, profile id, status, steps, times), so flow
statistics keep counting them; deliveries stay likewise, their free-text ``detail`` and the
``address`` sent to cleared (and the device tokens their pushes reached, push_sends, deleted);
export records keep their outcome with their data cleared, and those not sent yet never are.
The caller stops the person's running journeys first (their workflows hold the rest of the data
until Temporal's retention removes the histories).
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store import export_records, push_sends
from flowline.store.tables import (
    conversations,
    deliveries,
    events,
    inbox_messages,
    journeys,
    profile_friends,
    profiles,
    push_tokens,
    segment_members,
)


async def running_journeys(conn: AsyncConnection, workspace_id: str, profile_id: str) -> list[str]:
    query = (
        select(journeys.c.id)
        .where(
            journeys.c.workspace_id == workspace_id,
            journeys.c.profile_id == profile_id,
            journeys.c.status == "running",
        )
        .order_by(journeys.c.id)
    )
    return [str(i) for i in (await conn.execute(query)).scalars()]


async def erase_profile(conn: AsyncConnection, workspace_id: str, profile_id: str) -> bool:
    """Delete the person's profile and personal data; False when there was no profile."""
    deleted = await conn.execute(
        profiles.delete().where(profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id)
    )
    if deleted.rowcount == 0:
        return False
    for table in (events, inbox_messages, conversations, push_tokens, segment_members):
        await conn.execute(
            table.delete().where(table.c.workspace_id == workspace_id, table.c.profile_id == profile_id)
        )
    await conn.execute(
        profile_friends.delete().where(
            profile_friends.c.workspace_id == workspace_id,
            or_(profile_friends.c.profile_id == profile_id, profile_friends.c.friend_id == profile_id),
        )
    )
    # Others who named this person as referrer no longer point at a profile that is gone.
    await conn.execute(
        profiles.update()
        .where(profiles.c.workspace_id == workspace_id, profiles.c.referrer_id == profile_id)
        .values(referrer_id=None)
    )
    await conn.execute(
        deliveries.update()
        .where(deliveries.c.workspace_id == workspace_id, deliveries.c.recipient_id == profile_id)
        .values(detail=None, address=None)
    )
    await push_sends.forget_devices(conn, workspace_id, profile_id)
    await export_records.forget_person(conn, workspace_id, profile_id)
    return True
