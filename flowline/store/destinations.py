"""A workspace's export destinations: one row each, its settings as the type's model JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.destinations.settings import (
    SECRET_FIELDS,
    CleverTapDestination,
    Destination,
    WebhookDestination,
)
from flowline.flow.document import FlowDocument
from flowline.flow.steps import ExportStep
from flowline.flow.validation import FlowFault
from flowline.secret_box import SecretBox
from flowline.store.database import Store, secret_box, utcnow
from flowline.store.tables import destinations

_SETTINGS: TypeAdapter[CleverTapDestination | WebhookDestination] = TypeAdapter(Destination)


@dataclass(frozen=True)
class StoredDestination:
    destination_id: str
    settings: CleverTapDestination | WebhookDestination
    created_at: datetime
    updated_at: datetime


def _row(box: SecretBox, row: object) -> StoredDestination:
    values = row._mapping  # type: ignore[attr-defined]
    settings = _SETTINGS.validate_python(open_settings(box, values["type"], values["settings"]))
    return StoredDestination(values["id"], settings, values["created_at"], values["updated_at"])


def open_settings(box: SecretBox, kind: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A destination's stored settings with its secrets opened (flowline/secret_box.py)."""
    return box.open_fields(stored, SECRET_FIELDS.get(kind, ()))


def seal_settings(box: SecretBox, kind: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A destination's settings with its secrets sealed under the newest key (opened first: a
    value sealed under an older key is sealed again)."""
    names = SECRET_FIELDS.get(kind, ())
    return box.seal_fields(box.open_fields(stored, names), names)


async def put_destination(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    destination_id: str,
    settings: CleverTapDestination | WebhookDestination,
) -> StoredDestination:
    """Create or replace the destination; answers it as stored."""
    now = utcnow()
    value = seal_settings(secret_box(conn), settings.type, settings.model_dump(mode="json"))
    statement = store.insert(destinations).values(
        workspace_id=workspace_id,
        id=destination_id,
        type=settings.type,
        settings=value,
        created_at=now,
        updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=[destinations.c.workspace_id, destinations.c.id],
        set_={"type": settings.type, "settings": value, "updated_at": now},
    )
    await conn.execute(statement)
    found = await get_destination(conn, workspace_id, destination_id)
    assert found is not None  # written just now, in this transaction
    return found


async def get_destination(
    conn: AsyncConnection, workspace_id: str, destination_id: str
) -> StoredDestination | None:
    row = (
        await conn.execute(
            select(destinations).where(
                destinations.c.workspace_id == workspace_id, destinations.c.id == destination_id
            )
        )
    ).first()
    return None if row is None else _row(secret_box(conn), row)


async def list_destinations(conn: AsyncConnection, workspace_id: str) -> list[StoredDestination]:
    rows = await conn.execute(
        select(destinations).where(destinations.c.workspace_id == workspace_id).order_by(destinations.c.id)
    )
    box = secret_box(conn)
    return [_row(box, r) for r in rows]


async def delete_destination(conn: AsyncConnection, workspace_id: str, destination_id: str) -> bool:
    """Delete the destination; False when there was none."""
    result = await conn.execute(
        delete(destinations).where(
            destinations.c.workspace_id == workspace_id, destinations.c.id == destination_id
        )
    )
    return bool(result.rowcount)


async def destination_faults(
    conn: AsyncConnection, workspace_id: str, document: FlowDocument
) -> list[FlowFault]:
    """The destinations a flow's export steps name that do not exist, each with its path."""
    named = [
        (f"$.steps[{index}].destination", step.destination)
        for index, step in enumerate(document.steps)
        if isinstance(step, ExportStep)
    ]
    if not named:
        return []
    query = select(destinations.c.id).where(
        destinations.c.workspace_id == workspace_id, destinations.c.id.in_({d for _, d in named})
    )
    found = set((await conn.execute(query)).scalars())
    return [FlowFault(path, f"no destination {name!r}") for path, name in named if name not in found]
