"""Many profiles merged at once (an import): one read, one insert and one update per batch, in the
caller's transaction.

Each entry is merged as PUT /v1/profiles/{id} merges (flowline.store.profiles.merge_attributes)
and gets an outcome: ``created``, ``updated`` or ``unchanged``. ``change_events`` are the
``profile_changed`` events of the changes, as a PUT writes them, for the caller to store (and
route, through the one change-routing path).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import DateTime, String, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline import json_values
from flowline.flow.steps.waiting import PROFILE_CHANGED
from flowline.json_values import nulled
from flowline.store.database import Store, one_of, utcnow
from flowline.store.profiles import changed_attributes, contact_profile_id, merge_attributes, normal_contact
from flowline.store.tables import profiles

Outcome = Literal["created", "updated", "unchanged"]
# Every entry of a batch is matched one way: by the profile's id, or by its email attribute.
Match = Literal["id", "email"]


@dataclass
class BatchEntry:
    """One valid entry: the profile's id (None when matched by email) and the attribute changes
    (null erases)."""

    profile_id: str | None
    attributes: dict[str, Any]


@dataclass
class EntryResult:
    profile_id: str
    outcome: Outcome
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)


async def _stored(
    store: Store, conn: AsyncConnection, workspace_id: str, ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The attributes of those of ``ids`` that exist, locked (PostgreSQL) until the transaction
    ends, so a concurrent PUT waits instead of losing its change or ours."""
    if not ids:
        return {}
    query = select(profiles.c.id, profiles.c.attributes).where(
        profiles.c.workspace_id == workspace_id, one_of(store.dialect, profiles.c.id, ids)
    )
    if store.dialect == "postgresql":
        query = query.with_for_update()
    return {str(r.id): nulled(dict(r.attributes)) for r in await conn.execute(query)}


async def ids_by_email(
    store: Store, conn: AsyncConnection, workspace_id: str, emails: Sequence[str]
) -> dict[str, str]:
    """normal email -> the id of the oldest profile with that email (as find_by_contact compares)."""
    wanted = sorted({normal_contact("email", e) for e in emails})
    if not wanted:
        return {}
    stored = func.lower(func.trim(profiles.c.attributes["email"].as_string()), type_=String)
    query = (
        select(profiles.c.id, stored.label("email"))
        .where(profiles.c.workspace_id == workspace_id, one_of(store.dialect, stored, wanted))
        .order_by(profiles.c.created_at.desc(), profiles.c.id.desc())
    )
    # Oldest last, so it wins.
    return {str(r.email): str(r.id) for r in await conn.execute(query)}


async def resolve_ids(
    store: Store, conn: AsyncConnection, workspace_id: str, entries: Sequence[BatchEntry], match: Match
) -> list[str]:
    """The profile id of each entry. By email: the profile that has it, else the entry's own id,
    else the id derived from the email (contact_profile_id: the same email, the same new id)."""
    if match == "id":
        return [e.profile_id or "" for e in entries]
    emails = [str(e.attributes["email"]) for e in entries]
    found = await ids_by_email(store, conn, workspace_id, emails)
    ids = []
    for entry, email in zip(entries, emails, strict=True):
        known = found.get(normal_contact("email", email))
        ids.append(known or entry.profile_id or contact_profile_id(workspace_id, "email", email))
    return ids


# PostgreSQL: the batch as one JSON document (as flowline.store.events inserts events), so the
# statement's text is the same for every batch and one string carries the rows.
_INSERT_PG = text(
    "INSERT INTO profiles (workspace_id, id, attributes, tags, do_not_contact, created_at, updated_at)"
    " SELECT :workspace_id, r.id, r.attributes, CAST('[]' AS jsonb), CAST('[]' AS jsonb), :now, :now"
    " FROM json_to_recordset(CAST(:rows AS json)) AS r(id text, attributes jsonb)"
    " ON CONFLICT DO NOTHING RETURNING id"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))
_UPDATE_PG = text(
    "UPDATE profiles SET attributes = r.attributes, updated_at = :now"
    " FROM json_to_recordset(CAST(:rows AS json)) AS r(id text, attributes jsonb)"
    " WHERE profiles.workspace_id = :workspace_id AND profiles.id = r.id"
).bindparams(bindparam("now", type_=DateTime(timezone=True)))


async def _write(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    new: dict[str, dict[str, Any]],
    changed: dict[str, dict[str, Any]],
    now: datetime,
) -> set[str]:
    """Insert ``new`` and update ``changed`` (id -> attributes); returns the ids inserted (a
    profile created meanwhile by another writer is not)."""
    inserted: set[str] = set()
    if store.dialect == "postgresql":
        base = {"workspace_id": workspace_id, "now": now}
        if new:
            document = json_values.dumps([{"id": i, "attributes": a} for i, a in new.items()])
            found = await conn.execute(_INSERT_PG, base | {"rows": document})
            inserted = {str(r) for r in found.scalars()}
        if changed:
            document = json_values.dumps([{"id": i, "attributes": a} for i, a in changed.items()])
            await conn.execute(_UPDATE_PG, base | {"rows": document})
        return inserted
    # SQLite: the driver's own executemany over prepared rows (one JSON text per row; the time as
    # SQLAlchemy's DateTime stores it on SQLite), without SQLAlchemy's per-row processing.
    stamp = now.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if new:
        rows = [(workspace_id, i, json_values.dumps(a), stamp, stamp) for i, a in new.items()]
        found = await conn.exec_driver_sql(_INSERT_SQLITE, rows)
        if found.rowcount == len(rows):
            inserted = set(new)
        else:  # created meanwhile by another writer (not with SQLite's one writer; stay exact)
            query = select(profiles.c.id).where(
                profiles.c.workspace_id == workspace_id,
                profiles.c.id.in_(list(new)),
                profiles.c.created_at == now,
            )
            inserted = {str(r) for r in (await conn.execute(query)).scalars()}
    if changed:
        updates = [(json_values.dumps(a), stamp, workspace_id, i) for i, a in changed.items()]
        await conn.exec_driver_sql(_UPDATE_SQLITE, updates)
    return inserted


_INSERT_SQLITE = (
    "INSERT INTO profiles (workspace_id, id, attributes, tags, do_not_contact, created_at, updated_at)"
    " VALUES (?, ?, ?, '[]', '[]', ?, ?) ON CONFLICT DO NOTHING"
)
_UPDATE_SQLITE = "UPDATE profiles SET attributes = ?, updated_at = ? WHERE workspace_id = ? AND id = ?"


def plan(
    stored: dict[str, dict[str, Any]], ids: Sequence[str], entries: Sequence[BatchEntry]
) -> tuple[list[EntryResult], dict[str, dict[str, Any]], set[str]]:
    """Each entry merged in order (an id twice in a batch: the second sees the first); returns the
    results, the final attributes of every profile touched, and the ids that are new."""
    state = dict(stored)
    new: set[str] = set()
    touched: dict[str, dict[str, Any]] = {}
    results = []
    for profile_id, entry in zip(ids, entries, strict=True):
        created = profile_id not in state
        if created:  # most of an import: what merge and compare would give, for a tenth of it
            merged = {k: v for k, v in entry.attributes.items() if v is not None}
            altered = {k: {"from": None, "to": merged[k]} for k in sorted(merged)}
        else:
            current = state[profile_id]
            merged = merge_attributes(current, entry.attributes)
            altered = changed_attributes(current, merged)
        if created:
            new.add(profile_id)
        state[profile_id] = merged
        if created or altered:
            touched[profile_id] = merged
        # An id seen earlier in the batch as new is still "created" for the database, but this
        # entry changes a profile the batch holds: updated (or unchanged).
        outcome: Outcome = "created" if created else ("updated" if altered else "unchanged")
        results.append(EntryResult(profile_id, outcome, altered))
    return results, touched, new


async def merge_batch(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    entries: Sequence[BatchEntry],
    *,
    match: Match = "id",
    write: bool = True,
) -> list[EntryResult]:
    """Merge every entry; ``write`` False: the outcomes only (a dry run), nothing written. The
    caller records the changes (``change_events``)."""
    ids = await resolve_ids(store, conn, workspace_id, entries, match)
    stored = await _stored(store, conn, workspace_id, sorted(set(ids)))
    results, touched, new = plan(stored, ids, entries)
    if not write or not touched:
        return results
    now = utcnow()
    inserted = await _write(
        store,
        conn,
        workspace_id,
        {i: touched[i] for i in new},
        {i: a for i, a in touched.items() if i not in new},
        now,
    )
    if inserted != new:
        # Created by another writer between our read and our insert: merge into what it stored.
        raced = sorted(new - inserted)
        again = await _stored(store, conn, workspace_id, raced)
        redo = [(n, i, e) for n, (i, e) in enumerate(zip(ids, entries, strict=True)) if i in again]
        redone, touched_again, _ = plan(again, [i for _, i, _ in redo], [e for _, _, e in redo])
        await _write(store, conn, workspace_id, {}, touched_again, now)
        for (n, _, _), result in zip(redo, redone, strict=True):
            results[n] = result
    return results


def change_events(results: Sequence[EntryResult]) -> list[dict[str, Any]]:
    """The profile_changed event of each created or changed profile, as a PUT writes it."""
    now = utcnow()
    # Ids that sort by time: appended at the end of the events' primary key instead of scattered
    # through it (a million random ids made every insert a cache miss).
    prefix = f"{PROFILE_CHANGED}-i{time.time_ns():016x}{secrets.token_hex(4)}"
    return [
        {
            "id": f"{prefix}{n:04x}",
            "profile_id": r.profile_id,
            "name": PROFILE_CHANGED,
            "timestamp": now,
            "properties": {"changed": r.changed, "source": "import"},
        }
        for n, r in enumerate(r for r in results if r.changed)
    ]
