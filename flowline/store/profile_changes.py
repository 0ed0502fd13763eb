"""Changes to a person (attributes, tags, do-not-contact, referrer, friends), each with the
system event that tells about it, written in the caller's transaction.

A flow step's change is exactly-once: its event id is derived from journey, step, visit and
profile, and a change whose event is already stored was made by an earlier attempt of the same
step, so a retried activity changes and stores nothing twice (even a non-idempotent change such
as a counter increment). The profile row is locked first (PostgreSQL), so that two attempts
running at once see each other's event.

System events are stored with ``routed_at`` NULL: the caller routes them to the journeys that
listen once the change is made (JourneyLauncher.route_profiles).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.flow.steps.waiting import PROFILE_CHANGED as PROFILE_CHANGED
from flowline.json_values import nulled
from flowline.store.database import Store, utcnow
from flowline.store.event_exports import export_events
from flowline.store.profiles import changed_attributes, ensure_profiles, merge_attributes
from flowline.store.tables import events, profile_friends, profiles

TAGS_CHANGED = "tags_changed"
DO_NOT_CONTACT_CHANGED = "do_not_contact_changed"
REFERRER_CHANGED = "referrer_changed"
FRIENDS_CHANGED = "friends_changed"

# Every channel / every sender in a do-not-contact entry.
ALL_CHANNELS = "all"


@dataclass(frozen=True)
class Origin:
    """Who makes a change. A flow step names its journey visit, which makes the change's events
    deterministic; without a journey (an API call, a test) each call is a change of its own."""

    source: str = "flow"
    flow_id: str | None = None
    journey_id: str | None = None
    step_id: str | None = None
    visit: int | None = None

    def event_id(self, name: str, profile_id: str) -> str:
        if self.journey_id is None:
            return f"{name}-{uuid.uuid4().hex}"
        raw = "\x1f".join(
            (self.journey_id, self.step_id or "", str(self.visit or 0), profile_id, name)
        ).encode()
        digest = base64.b32encode(hashlib.sha256(raw).digest()).decode().lower().rstrip("=")
        return f"{name}-{digest[:32]}"

    def properties(self) -> dict[str, Any]:
        found = {"flow_id": self.flow_id, "journey_id": self.journey_id, "step_id": self.step_id}
        return {"source": self.source, **{k: v for k, v in found.items() if v is not None}}


# ---------------------------------------------------------------- rows and events


async def lock_profile(
    store: Store, conn: AsyncConnection, workspace_id: str, profile_id: str
) -> dict[str, Any]:
    """The profile's row, created empty if missing, locked for the rest of the transaction."""
    await ensure_profiles(store, conn, workspace_id, [profile_id])
    query = select(profiles).where(profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id)
    if store.dialect == "postgresql":
        query = query.with_for_update()
    return dict((await conn.execute(query)).one()._mapping)


async def already_made(
    conn: AsyncConnection, workspace_id: str, origin: Origin, name: str, profile_id: str
) -> bool:
    """Whether an earlier attempt of the same step made this change (its event is stored)."""
    if origin.journey_id is None:
        return False
    event_id = origin.event_id(name, profile_id)
    query = select(exists().where(events.c.workspace_id == workspace_id, events.c.id == event_id))
    return bool(await conn.scalar(query))


async def write_event(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    profile_id: str,
    origin: Origin,
    name: str,
    properties: dict[str, Any],
) -> None:
    now = utcnow()
    row = {
        "workspace_id": workspace_id,
        "id": origin.event_id(name, profile_id),
        "profile_id": profile_id,
        "name": name,
        "timestamp": now,
        "properties": {**properties, **origin.properties()},
        "received_at": now,
        # NULL until the caller routes it (JourneyLauncher.route_profiles).
        "routed_at": None,
    }
    await conn.execute(store.insert(events).on_conflict_do_nothing(), row)
    await export_events(conn, workspace_id, [row])


async def _update_profile(conn: AsyncConnection, workspace_id: str, profile_id: str, **values: Any) -> None:
    await conn.execute(
        profiles.update()
        .where(profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id)
        .values(**values, updated_at=utcnow())
    )


# ---------------------------------------------------------------- attributes


async def change_attributes(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    profile_id: str,
    changes: dict[str, Any],
    origin: Origin,
) -> dict[str, dict[str, Any]]:
    """Merge ``changes`` into the profile's attributes (null erases); returns what changed."""
    row = await lock_profile(store, conn, workspace_id, profile_id)
    if await already_made(conn, workspace_id, origin, PROFILE_CHANGED, profile_id):
        return {}
    # A NaN / Infinity stored before the store refused them is compared (and written back) as null.
    current: dict[str, Any] = nulled(row["attributes"])
    merged = merge_attributes(current, changes)
    altered = changed_attributes(current, merged)
    if not altered:
        return {}
    await _update_profile(conn, workspace_id, profile_id, attributes=merged)
    await write_event(store, conn, workspace_id, profile_id, origin, PROFILE_CHANGED, {"changed": altered})
    return altered


# ---------------------------------------------------------------- tags


async def change_tags(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    profile_id: str,
    origin: Origin,
    *,
    add: list[str] | tuple[str, ...] = (),
    remove: list[str] | tuple[str, ...] = (),
) -> dict[str, list[str]]:
    """Add and remove tags (kept sorted and unique); returns {"added": [...], "removed": [...]},
    empty when nothing changed."""
    row = await lock_profile(store, conn, workspace_id, profile_id)
    if await already_made(conn, workspace_id, origin, TAGS_CHANGED, profile_id):
        return {}
    current = set(row["tags"])
    added = sorted(set(add) - current)
    removed = sorted((current & set(remove)) - set(add))
    if not added and not removed:
        return {}
    tags = sorted((current | set(added)) - set(removed))
    await _update_profile(conn, workspace_id, profile_id, tags=tags)
    change = {"added": added, "removed": removed, "tags": tags}
    await write_event(store, conn, workspace_id, profile_id, origin, TAGS_CHANGED, change)
    return {"added": added, "removed": removed}


# ---------------------------------------------------------------- do not contact


def _entry_key(entry: dict[str, Any]) -> tuple[str, str]:
    return entry["channel"], entry.get("sender") or ""


def blocks(entries: list[dict[str, Any]], channel: str, sender: str | None = None) -> bool:
    """Whether do-not-contact ``entries`` forbid a message on ``channel`` from ``sender``."""
    return any(e["channel"] in (channel, ALL_CHANNELS) and e.get("sender") in (None, sender) for e in entries)


async def change_do_not_contact(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    profile_id: str,
    origin: Origin,
    *,
    action: str,
    channel: str,
    senders: list[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``add``: an entry for ``channel`` and each of ``senders`` (None: every sender).
    ``remove``: the entries on ``channel`` (``all``: on any channel) from ``senders`` (None: from
    any sender). An entry for every channel or sender is not narrowed by removing a part of it.
    Returns {"added": [...], "removed": [...]}, empty when nothing changed."""
    row = await lock_profile(store, conn, workspace_id, profile_id)
    if await already_made(conn, workspace_id, origin, DO_NOT_CONTACT_CHANGED, profile_id):
        return {}
    current: list[dict[str, Any]] = list(row["do_not_contact"])
    present = {_entry_key(e) for e in current}
    if action == "add":
        chosen: list[str | None] = list(senders) if senders else [None]
        wanted = [{"channel": channel, "sender": sender} for sender in chosen]
        added = [e for e in wanted if _entry_key(e) not in present]
        removed: list[dict[str, Any]] = []
        kept = current + added
    elif action == "remove":
        added = []

        def matches(e: dict[str, Any]) -> bool:
            same_channel = channel == ALL_CHANNELS or e["channel"] == channel
            return same_channel and (senders is None or e.get("sender") in senders)

        removed = [e for e in current if matches(e)]
        kept = [e for e in current if not matches(e)]
    else:
        raise ValueError(f"unknown do-not-contact action {action!r}")
    if not added and not removed:
        return {}
    entries = sorted(({"channel": c, "sender": s or None} for c, s in map(_entry_key, kept)), key=_entry_key)
    await _update_profile(conn, workspace_id, profile_id, do_not_contact=entries)
    change = {"added": added, "removed": removed, "entries": entries}
    await write_event(store, conn, workspace_id, profile_id, origin, DO_NOT_CONTACT_CHANGED, change)
    return {"added": added, "removed": removed}


# ---------------------------------------------------------------- referrer and friends


async def set_referrer(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    profile_id: str,
    referrer_id: str | None,
    origin: Origin,
) -> bool:
    """Set (None: clear) who referred the person; the referrer's profile is created if missing."""
    if referrer_id == profile_id:
        raise ValueError("a person cannot refer themselves")
    row = await lock_profile(store, conn, workspace_id, profile_id)
    if row["referrer_id"] == referrer_id or await already_made(
        conn, workspace_id, origin, REFERRER_CHANGED, profile_id
    ):
        return False
    if referrer_id is not None:
        await ensure_profiles(store, conn, workspace_id, [referrer_id])
    await _update_profile(conn, workspace_id, profile_id, referrer_id=referrer_id)
    change = {"from": row["referrer_id"], "to": referrer_id}
    await write_event(store, conn, workspace_id, profile_id, origin, REFERRER_CHANGED, change)
    return True


async def change_friends(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    profile_id: str,
    origin: Origin,
    *,
    add: list[str] | tuple[str, ...] = (),
    remove: list[str] | tuple[str, ...] = (),
) -> dict[str, list[str]]:
    """Friendship is mutual: both directions are stored, so either side finds the other.
    Returns {"added": [...], "removed": [...]} for ``profile_id``, empty when nothing changed."""
    await lock_profile(store, conn, workspace_id, profile_id)
    if await already_made(conn, workspace_id, origin, FRIENDS_CHANGED, profile_id):
        return {}
    current = set(await friends_of(conn, workspace_id, profile_id))
    added = sorted(set(add) - current - {profile_id})
    removed = sorted((current & set(remove)) - set(add))
    if not added and not removed:
        return {}
    now = utcnow()
    if added:
        await ensure_profiles(store, conn, workspace_id, added, now=now)
        pairs = [(profile_id, f) for f in added] + [(f, profile_id) for f in added]
        rows = [
            {"workspace_id": workspace_id, "profile_id": a, "friend_id": b, "created_at": now}
            for a, b in pairs
        ]
        await conn.execute(store.insert(profile_friends).on_conflict_do_nothing(), rows)
    for friend in removed:
        for a, b in ((profile_id, friend), (friend, profile_id)):
            await conn.execute(
                profile_friends.delete().where(
                    profile_friends.c.workspace_id == workspace_id,
                    profile_friends.c.profile_id == a,
                    profile_friends.c.friend_id == b,
                )
            )
    change = {"added": added, "removed": removed}
    await write_event(store, conn, workspace_id, profile_id, origin, FRIENDS_CHANGED, change)
    return change


async def friends_of(conn: AsyncConnection, workspace_id: str, profile_id: str) -> list[str]:
    query = (
        select(profile_friends.c.friend_id)
        .where(profile_friends.c.workspace_id == workspace_id, profile_friends.c.profile_id == profile_id)
        .order_by(profile_friends.c.friend_id)
    )
    return [str(f) for f in (await conn.execute(query)).scalars()]


async def resolve_targets(
    conn: AsyncConnection, workspace_id: str, profile_id: str, target: str
) -> list[str]:
    """The profile ids ``target`` (self, referrer, friends) names for the person; maybe none."""
    if target == "self":
        return [profile_id]
    if target == "referrer":
        referrer = await conn.scalar(
            select(profiles.c.referrer_id).where(
                profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id
            )
        )
        return [] if referrer is None else [str(referrer)]
    if target == "friends":
        return await friends_of(conn, workspace_id, profile_id)
    raise ValueError(f"unknown target {target!r}")
