"""API keys: each names its workspace and a scope; only a SHA-256 of the secret is stored.

Scopes (docs/keys.md): ``read`` may only read (GET), ``write`` may do everything in its workspace
but manage keys, ``admin`` may also create, list and revoke keys. A request reads its key's row by
the hash (a unique index) every time, so a revoked key is refused at once by every process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store.database import utcnow
from flowline.store.tables import api_keys, workspaces

KEY_PREFIX = "fl_"
Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """A key as listed: everything but the secret, which is never stored."""

    id: str
    workspace_id: str
    name: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedKey:
    record: KeyRecord
    secret: str  # shown this once


_COLUMNS = (
    api_keys.c.id,
    api_keys.c.workspace_id,
    api_keys.c.name,
    api_keys.c.scope,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
)


def _record(row: Any) -> KeyRecord:  # a Row of _COLUMNS
    scope = str(row.scope)
    return KeyRecord(
        id=str(row.id),
        workspace_id=str(row.workspace_id),
        name=str(row.name),
        scope=scope if scope in SCOPES else "read",  # an unknown value grants the least
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


async def create_key(conn: AsyncConnection, workspace_id: str, name: str, scope: Scope) -> CreatedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    record = KeyRecord(
        id=secrets.token_hex(8),
        workspace_id=workspace_id,
        name=name,
        scope=scope,
        created_at=utcnow(),
        last_used_at=None,
        revoked_at=None,
    )
    await conn.execute(
        api_keys.insert().values(
            id=record.id,
            workspace_id=workspace_id,
            key_hash=hash_key(secret),
            name=name,
            scope=scope,
            created_at=record.created_at,
        )
    )
    return CreatedKey(record, secret)


# Built once: every request runs it, and building a statement costs more than its cache lookup.
_ACTIVE_KEY = select(*_COLUMNS).where(
    api_keys.c.key_hash == bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)


async def active_key(conn: AsyncConnection, secret: str) -> KeyRecord | None:
    """The unrevoked key with this secret (one lookup on the unique index of its hash)."""
    row = (await conn.execute(_ACTIVE_KEY, {"key_hash": hash_key(secret)})).one_or_none()
    return None if row is None else _record(row)


async def list_keys(conn: AsyncConnection, workspace_id: str) -> list[KeyRecord]:
    rows = await conn.execute(
        select(*_COLUMNS)
        .where(api_keys.c.workspace_id == workspace_id)
        .order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return [_record(row) for row in rows]


async def get_key(conn: AsyncConnection, workspace_id: str, key_id: str) -> KeyRecord | None:
    row = (
        await conn.execute(
            select(*_COLUMNS).where(api_keys.c.workspace_id == workspace_id, api_keys.c.id == key_id)
        )
    ).one_or_none()
    return None if row is None else _record(row)


async def lock_workspace(conn: AsyncConnection, workspace_id: str) -> None:
    """Serialise the key changes of a workspace (PostgreSQL: its row; SQLite has one writer)."""
    await conn.execute(select(workspaces.c.id).where(workspaces.c.id == workspace_id).with_for_update())


async def active_admin_keys(conn: AsyncConnection, workspace_id: str) -> int:
    found = await conn.scalar(
        select(func.count())
        .select_from(api_keys)
        .where(
            api_keys.c.workspace_id == workspace_id,
            api_keys.c.scope == "admin",
            api_keys.c.revoked_at.is_(None),
        )
    )
    return int(found or 0)


async def revoke(conn: AsyncConnection, workspace_id: str, key_id: str, at: datetime) -> None:
    await conn.execute(
        api_keys.update()
        .where(
            api_keys.c.workspace_id == workspace_id, api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)
        )
        .values(revoked_at=at)
    )


async def record_use(conn: AsyncConnection, key_id: str, at: datetime, every: timedelta) -> bool:
    """Set the key's last use to ``at`` unless it was set less than ``every`` before (True: set)."""
    result = await conn.execute(
        api_keys.update()
        .where(
            api_keys.c.id == key_id,
            or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < at - every),
        )
        .values(last_used_at=at)
    )
    return bool(result.rowcount)
