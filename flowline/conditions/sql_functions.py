"""Deterministic Python functions SQLite calls while running compiled conditions.

They call the in-memory evaluator's own code, so the meaning cannot drift between the two.
Registered on every SQLite connection by flowline/store/database.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flowline.clock import zone
from flowline.conditions.evaluate import _date, _moment
from flowline.conditions.property_filter import plain_number


def date_holds(kind: Any, raw: Any, zone_name: Any, op: str, expected: Any, now_iso: str) -> int:
    """Whether a date attribute (``kind`` as sql.py names JSON types) passes ``op``."""
    if kind != "string" or not isinstance(raw, str):
        return 0
    tz = zone(zone_name if isinstance(zone_name, str) else None)
    moment = _moment(raw, tz)
    return int(moment is not None and _date(op, moment, expected, datetime.fromisoformat(now_iso), tz))


def number(raw: Any) -> float | None:
    """A numeric string as a number (see property_filter.NUMERIC_TEXT), else NULL."""
    return plain_number(raw) if isinstance(raw, str) else None


def register(dbapi_connection: Any) -> None:
    dbapi_connection.create_function("flowline_date_holds", 6, date_holds, deterministic=True)
    dbapi_connection.create_function("flowline_number", 1, number, deterministic=True)
