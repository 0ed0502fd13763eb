"""Durations as flow documents write them: ``30s``, ``15m``, ``4h``, ``7d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
DURATION_PATTERN = r"^\d+[smhdw]$"


def parse_duration(value: object) -> timedelta:
    """Accept ``"7d"`` (and an already parsed timedelta, so models round-trip)."""
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is a string such as '30s', '15m', '4h', '7d' or '2w'")
    match = _PATTERN.match(value)
    if match is None:
        raise ValueError(f"'{value}' is not a duration such as '30s', '15m', '4h', '7d' or '2w'")
    amount, unit = int(match.group(1)), match.group(2)
    try:
        return timedelta(seconds=amount * _UNITS[unit])
    except OverflowError:
        # Past timedelta's range (about 2.7 million years): a fault, not a crash.
        raise ValueError(f"'{value}' is too long a duration") from None


def format_duration(value: timedelta) -> str:
    """The largest unit up to days that divides it exactly (weeks read as days: ``2w`` -> ``14d``)."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]


# A wait (pause, event or date wait, timeout, goal window, a flow's max_duration) lasts at most this.
LONGEST_WAIT = timedelta(days=5 * 366)


def _bounded(value: timedelta) -> timedelta:
    if not timedelta(seconds=1) <= value <= LONGEST_WAIT:
        raise ValueError("a wait lasts from 1s to 5 years")
    return value


# Bounded like every wait: a 0s wait would not wait at all (and a loop through it would spin).
WaitDuration = Annotated[Duration, AfterValidator(_bounded)]


def duration_default(value: timedelta) -> Any:
    """A field default whose JSON Schema shows it as the document writes it (``10s``): pydantic
    would show the timedelta as ISO 8601 (``PT10S``), which the field's own pattern refuses."""
    return Field(default=value, json_schema_extra={"default": format_duration(value)})
