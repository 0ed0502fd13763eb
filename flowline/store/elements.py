"""Declarative custom elements: immutable versions, one row each (flowline/elements/)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.elements.definition import DeclarativeElement
from flowline.secret_box import SecretBox
from flowline.secrets import secret_headers
from flowline.store.database import secret_box, utcnow
from flowline.store.tables import element_versions

_T = element_versions


@dataclass(frozen=True)
class StoredElement:
    element_id: str
    version: int
    definition: DeclarativeElement
    created_at: datetime
    # When its first version was made.
    first_created_at: datetime


def _element(box: SecretBox, values: object, first: datetime) -> StoredElement:
    row = values._mapping  # type: ignore[attr-defined]
    definition = DeclarativeElement.model_validate(open_definition(box, row["definition"]))
    return StoredElement(row["element_id"], row["version"], definition, row["created_at"], first)


def _with_headers(
    stored: Mapping[str, Any], change: Callable[[Mapping[str, Any], list[str]], dict[str, Any]]
) -> dict[str, Any]:
    request = stored.get("request")
    headers = request.get("headers") if isinstance(request, Mapping) else None
    if not isinstance(request, Mapping) or not isinstance(headers, Mapping):
        return dict(stored)
    return {**stored, "request": {**request, "headers": change(headers, secret_headers(headers))}}


def open_definition(box: SecretBox, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored definition with the values of its credential headers opened (flowline/secret_box.py)."""
    return _with_headers(stored, box.open_fields)


def seal_definition(box: SecretBox, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A definition with the values of its credential headers sealed under the newest key
    (opened first: a value sealed under an older key is sealed again)."""
    return _with_headers(
        stored, lambda headers, names: box.seal_fields(box.open_fields(headers, names), names)
    )


def definition_secrets(stored: Mapping[str, Any]) -> list[Any]:
    """The credential header values of a stored definition, as stored (sealed or in clear)."""
    request = stored.get("request")
    headers = request.get("headers") if isinstance(request, Mapping) else None
    if not isinstance(headers, Mapping):
        return []
    return [headers[name] for name in secret_headers(headers) if headers[name] is not None]


async def _first_created(conn: AsyncConnection, workspace_id: str, element_id: str) -> datetime | None:
    query = select(func.min(_T.c.created_at)).where(
        _T.c.workspace_id == workspace_id, _T.c.element_id == element_id
    )
    first: datetime | None = (await conn.execute(query)).scalar_one_or_none()
    return first


async def get_element(
    conn: AsyncConnection,
    workspace_id: str,
    element_id: str,
    *,
    version: int | None = None,
    as_of: datetime | None = None,
) -> StoredElement | None:
    """The newest version; ``version``: that one; ``as_of``: the newest made at or before it (the
    first one when every version is younger)."""
    query = select(_T).where(_T.c.workspace_id == workspace_id, _T.c.element_id == element_id)
    if version is not None:
        query = query.where(_T.c.version == version)
    newest = query.order_by(_T.c.version.desc()).limit(1)
    row = None
    if as_of is not None:
        row = (await conn.execute(newest.where(_T.c.created_at <= as_of))).first()
        if row is None:
            row = (await conn.execute(query.order_by(_T.c.version).limit(1))).first()
    else:
        row = (await conn.execute(newest)).first()
    if row is None:
        return None
    first = await _first_created(conn, workspace_id, element_id)
    assert first is not None
    return _element(secret_box(conn), row, first)


async def put_element(
    conn: AsyncConnection, workspace_id: str, element_id: str, definition: DeclarativeElement
) -> StoredElement:
    """Add a version when ``definition`` differs from the newest (a PUT of the same is no edit)."""
    current = await get_element(conn, workspace_id, element_id)
    value = definition.model_dump(mode="json", by_alias=True, exclude_defaults=False)
    if current is not None and current.definition.model_dump(mode="json", by_alias=True) == value:
        return current
    version = 1 if current is None else current.version + 1
    await conn.execute(
        _T.insert().values(
            workspace_id=workspace_id,
            element_id=element_id,
            version=version,
            definition=seal_definition(secret_box(conn), value),
            created_at=utcnow(),
        )
    )
    found = await get_element(conn, workspace_id, element_id)
    assert found is not None  # written just now, in this transaction
    return found


async def list_elements(conn: AsyncConnection, workspace_id: str) -> list[StoredElement]:
    """The newest version of each element, by id."""
    newest = (
        select(
            _T.c.element_id,
            func.max(_T.c.version).label("version"),
            func.min(_T.c.created_at).label("first"),
        )
        .where(_T.c.workspace_id == workspace_id)
        .group_by(_T.c.element_id)
        .subquery()
    )
    query = (
        select(_T, newest.c.first)
        .join(newest, (_T.c.element_id == newest.c.element_id) & (_T.c.version == newest.c.version))
        .where(_T.c.workspace_id == workspace_id)
        .order_by(_T.c.element_id)
    )
    box = secret_box(conn)
    return [_element(box, row, row.first) for row in await conn.execute(query)]


async def element_ids(conn: AsyncConnection, workspace_id: str, ids: set[str]) -> dict[str, StoredElement]:
    """The newest version of each of ``ids`` that exists."""
    found = {}
    for element_id in sorted(ids):
        stored = await get_element(conn, workspace_id, element_id)
        if stored is not None:
            found[element_id] = stored
    return found


async def delete_element(conn: AsyncConnection, workspace_id: str, element_id: str) -> bool:
    """Delete every version; False when there was none."""
    result = await conn.execute(
        delete(_T).where(_T.c.workspace_id == workspace_id, _T.c.element_id == element_id)
    )
    return bool(result.rowcount)
