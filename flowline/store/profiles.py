"""Profiles: the people journeys are about."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import DateTime, String, bindparam, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.json_values import nulled
from flowline.store.database import Store, one_of, utcnow
from flowline.store.tables import profiles


def merge_attributes(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Merge upsert: given attributes replace, ``null`` erases, the rest stay (a NaN or Infinity
    stored before the store refused them becomes null: it could not be written back)."""
    merged = dict(nulled(current))
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return merged


def changed_attributes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{attribute: {"from": old, "to": new}} for every attribute whose value differs (None: absent)."""
    return {
        name: {"from": before.get(name), "to": after.get(name)}
        for name in sorted(set(before) | set(after))
        # JSON tells 1 from true; Python's == does not.
        if before.get(name) != after.get(name) or type(before.get(name)) is not type(after.get(name))
    }


async def get_profile(
    conn: AsyncConnection, workspace_id: str, profile_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    """The profile's row (None: there is none). ``lock``: share-locked (FOR SHARE on PostgreSQL)
    until the transaction ends, as ``profile_exists`` does: an erasure waits for it, so the
    answer holds for the rest of the transaction."""
    query = select(profiles).where(profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id)
    if lock:
        query = query.with_for_update(read=True)
    row = (await conn.execute(query)).first()
    return None if row is None else dict(row._mapping)


Contact = Literal["email", "phone"]


def normal_contact(kind: Contact, value: str) -> str:
    """The form contacts are compared in: emails ignore case, both ignore surrounding blanks."""
    value = value.strip()
    return value.lower() if kind == "email" else value


def contact_profile_id(workspace_id: str, kind: Contact, value: str) -> str:
    """The id of a profile created for a contact: the same contact always gets the same id (so two
    concurrent creations make one profile), and no personal data shows in ids."""
    raw = "\x1f".join((workspace_id, kind, normal_contact(kind, value))).encode()
    return "p-" + base64.b32encode(hashlib.sha256(raw).digest()).decode().lower().rstrip("=")[:24]


async def find_by_contact(conn: AsyncConnection, workspace_id: str, kind: Contact, value: str) -> str | None:
    """The id of the (oldest) profile whose ``email`` or ``phone`` attribute is ``value``."""
    stored = profiles.c.attributes[kind].as_string()
    stored = func.lower(func.trim(stored)) if kind == "email" else func.trim(stored)
    query = (
        select(profiles.c.id)
        .where(profiles.c.workspace_id == workspace_id, stored == normal_contact(kind, value))
        .order_by(profiles.c.created_at, profiles.c.id)
        .limit(1)
    )
    found = await conn.scalar(query)
    return None if found is None else str(found)


async def upsert_profile(
    store: Store, conn: AsyncConnection, workspace_id: str, profile_id: str, changes: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Merge ``changes`` into the profile, creating it if needed; returns (row, created). Writes no
    event: changes people make go through flowline.store.profile_changes."""
    now = utcnow()
    created = await ensure_profiles(store, conn, workspace_id, [profile_id], now=now)
    # Lock the row (PostgreSQL) so that two concurrent merges do not lose each other's changes.
    query = select(profiles.c.attributes).where(
        profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id
    )
    if store.dialect == "postgresql":
        query = query.with_for_update()
    current = (await conn.execute(query)).scalar_one()
    await conn.execute(
        profiles.update()
        .where(profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id)
        .values(attributes=merge_attributes(current, changes), updated_at=now)
    )
    row = await get_profile(conn, workspace_id, profile_id)
    assert row is not None
    return row, bool(created)


# PostgreSQL: the ids as one array, so the statement's text is the same for any number of them
# (psycopg parses a long multi-row VALUES anew every time).
_NEW_PROFILES = text(
    "INSERT INTO profiles (workspace_id, id, attributes, tags, do_not_contact, created_at, updated_at)"
    " SELECT :workspace_id, new.id, CAST('{}' AS jsonb), CAST('[]' AS jsonb), CAST('[]' AS jsonb),"
    " :now, :now FROM unnest(:ids) AS new(id)"
    " ON CONFLICT DO NOTHING RETURNING id"
).bindparams(
    bindparam("now", type_=DateTime(timezone=True)), bindparam("ids", type_=postgresql.ARRAY(String))
)


async def ensure_profiles(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    profile_ids: Iterable[str],
    now: datetime | None = None,
    *,
    read_first: bool = False,
) -> set[str]:
    """Create empty profiles for ids not seen before (events may name new people); returns the new ids.

    It writes first, which takes SQLite's write lock at once: read-modify-write callers
    (upsert_profile) rely on that. ``read_first`` (a batch of events, whose people are mostly known):
    one read finds the known ids and only the others are written, if any. For one person the
    read is skipped: the INSERT ... ON CONFLICT DO NOTHING alone answers in one statement, where
    a read costs one for a known person and two for a new one.
    """
    ids = sorted(set(profile_ids))
    if read_first and len(ids) > 1:
        known = select(profiles.c.id).where(
            profiles.c.workspace_id == workspace_id, one_of(store.dialect, profiles.c.id, ids)
        )
        ids = sorted(set(ids) - {str(r) for r in (await conn.execute(known)).scalars()})
    if not ids:
        return set()
    # A statement compiled once, the rows as executemany (a multi-row VALUES would be compiled
    # anew for every call).
    now = now or utcnow()
    if store.dialect == "postgresql":
        parameters = {"workspace_id": workspace_id, "ids": ids, "now": now}
        return {str(r) for r in (await conn.execute(_NEW_PROFILES, parameters)).scalars()}
    rows = [
        {
            "workspace_id": workspace_id,
            "id": i,
            "attributes": {},
            "tags": [],
            "do_not_contact": [],
            "created_at": now,
            "updated_at": now,
        }
        for i in ids
    ]
    statement = store.insert(profiles).on_conflict_do_nothing().returning(profiles.c.id)
    return {str(r) for r in (await conn.execute(statement, rows)).scalars()}


async def profile_exists(conn: AsyncConnection, workspace_id: str, profile_id: str) -> bool:
    """Whether the profile exists, before writing an event about the person.

    Locked (FOR SHARE on PostgreSQL): an erasure in flight either waits for this transaction,
    and then deletes its event too, or commits first, and then the profile is gone. SQLite
    serializes the two writers anyway."""
    query = (
        select(profiles.c.id)
        .where(profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id)
        .with_for_update(read=True)
    )
    return (await conn.execute(query)).first() is not None


async def attributes_of(
    conn: AsyncConnection, workspace_id: str, profile_ids: Collection[str]
) -> dict[str, dict[str, Any]]:
    """The attributes of each of these profiles that exists, by id (one query)."""
    if not profile_ids:
        return {}
    query = select(profiles.c.id, profiles.c.attributes).where(
        profiles.c.workspace_id == workspace_id,
        one_of(conn.dialect.name, profiles.c.id, sorted(profile_ids)),
    )
    return {str(r.id): dict(r.attributes) for r in await conn.execute(query)}


async def referrer_of(conn: AsyncConnection, workspace_id: str, profile_id: str) -> str | None:
    """Who referred the person (None: nobody, or no such person)."""
    query = select(profiles.c.referrer_id).where(
        profiles.c.workspace_id == workspace_id, profiles.c.id == profile_id
    )
    found = (await conn.execute(query)).scalar_one_or_none()
    return None if found is None else str(found)
