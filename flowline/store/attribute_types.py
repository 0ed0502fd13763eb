"""Custom attributes declared per workspace, and the check of values against their types.

Undeclared attributes stay free-form; ``null`` (erase) is allowed for every type.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal, get_args

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.json_values import member_path
from flowline.store.database import Store, utcnow
from flowline.store.tables import attribute_types

AttributeType = Literal["boolean", "text", "number", "date", "list"]
ATTRIBUTE_TYPES: tuple[str, ...] = get_args(AttributeType)


def _is_date(value: Any) -> bool:
    """An ISO date (2026-05-01) or date-time (2026-05-01T09:30:00+02:00) string."""
    if not isinstance(value, str):
        return False
    for parse in (date.fromisoformat, datetime.fromisoformat):
        try:
            parse(value)
        except ValueError:
            continue
        return True
    return False


def fits(kind: str, value: Any) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "text":
        return isinstance(value, str)
    if kind == "number":
        # JSON tells true from 1; Python's bool is an int.
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "date":
        return _is_date(value)
    if kind == "list":
        return isinstance(value, list)
    raise ValueError(f"unknown attribute type {kind!r}")


_EXPECTED = {
    "boolean": "true or false",
    "text": "a string",
    "number": "a number",
    "date": "an ISO date or date-time string",
    "list": "a list",
}


# Contact data: messages are sent to them, so they are text unless the workspace says otherwise.
CONTACT_ATTRIBUTES = {"email": "text", "phone": "text"}


def attribute_faults(
    declared: dict[str, str], values: dict[str, Any], path: str = "$.attributes"
) -> list[tuple[str, str]]:
    """(path, message) for every value that does not fit its declared type; ``path``: where the
    attributes are in the request."""
    declared = CONTACT_ATTRIBUTES | declared
    return [
        (member_path(path, name), f"{name!r} is declared {kind}: expected {_EXPECTED[kind]}")
        for name, value in values.items()
        if value is not None and (kind := declared.get(name)) is not None and not fits(kind, value)
    ]


# An address mail can be sent to: one @, no blanks, a dot in the domain. (Stricter checks refuse
# addresses that work; a looser one lets typos like "ada@example" or "ada example.com" in.)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def email_fault(value: Any) -> str | None:
    """Why ``value`` is not an email address (None: it is one)."""
    if not isinstance(value, str) or _EMAIL.fullmatch(value.strip()) is None:
        return f"{value!r} is not an email address"
    return None


async def declared_types(conn: AsyncConnection, workspace_id: str) -> dict[str, str]:
    query = (
        select(attribute_types.c.name, attribute_types.c.type)
        .where(attribute_types.c.workspace_id == workspace_id)
        .order_by(attribute_types.c.name)
    )
    return {str(r.name): str(r.type) for r in await conn.execute(query)}


async def declare(store: Store, conn: AsyncConnection, workspace_id: str, name: str, kind: str) -> None:
    """Declare (or re-declare) an attribute's type. Values already stored are not rewritten."""
    if kind not in ATTRIBUTE_TYPES:
        raise ValueError(f"unknown attribute type {kind!r}")
    row = {"workspace_id": workspace_id, "name": name, "type": kind, "updated_at": utcnow()}
    statement = store.insert(attribute_types).on_conflict_do_update(
        index_elements=["workspace_id", "name"], set_={"type": kind, "updated_at": row["updated_at"]}
    )
    await conn.execute(statement, row)
