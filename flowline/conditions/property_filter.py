"""Filters on an event's properties (``where`` of triggers, waits and event conditions).

Meanings: a missing property equals nothing (``is`` false, ``is_not`` true). ``is`` is JSON
equality, numbers compared as numbers (``true`` equals ``1``, as in Python). ``contains`` /
``starts_with`` / ``ends_with`` test strings (``contains`` also finds a value in a list, by the
equality of ``is``). Comparisons read numbers and numeric strings in
plain decimal notation (``NUMERIC_TEXT``: ``"50"``, ``"2.5"``, ``"1e3"``; not ``" 1"``, ``"inf"``
or ``"1_000"``). Empty: missing, null, ``""``, ``[]`` or ``{}``. ``property`` is dotted through
objects only (a numeric part never indexes a list).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, get_args

from pydantic import Field

from flowline.conditions.operators import FilterOp
from flowline.strict import Strict

_MISSING = object()


# A numeric string: plain decimal notation with an optional exponent, no spaces (not "inf",
# "nan" or "1_000"), so that SQL (flowline/conditions/sql.py) reads exactly the same numbers.
NUMERIC_TEXT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,2})?$"
_NUMERIC = re.compile(NUMERIC_TEXT)
# Longer numeric strings are not numbers: PostgreSQL's numeric takes at most 16,383 digits after
# the point, and a cast of a longer one failed the whole segment query (with the exponent's two
# digits, 16,000 characters always fit).
NUMERIC_TEXT_MAX = 16_000


def plain_number(value: Any) -> float | None:
    """A JSON number, or a numeric string (see NUMERIC_TEXT), as a float; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # an integer beyond a double: infinite, as SQLite reads it
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str) and len(value) <= NUMERIC_TEXT_MAX and _NUMERIC.fullmatch(value):
        return float(value)
    return None


_number = plain_number


def _compare(pred: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        a, b = _number(actual), _number(expected)
        return a is not None and b is not None and pred(a, b)

    return check


def _text(pred: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def check(actual: Any, expected: Any) -> bool:
        return isinstance(actual, str) and pred(actual, str(expected))

    return check


def _empty(value: Any) -> bool:
    return value is _MISSING or value is None or value == "" or value == [] or value == {}


def _equal(actual: Any, expected: Any) -> bool:
    if actual is _MISSING:
        return False
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None and not isinstance(actual, str) and not isinstance(expected, str):
        return a == b
    return bool(actual == expected)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "is": _equal,
    "is_not": lambda a, e: not _equal(a, e),
    "contains": lambda a, e: (isinstance(a, str) and str(e) in a) or (isinstance(a, list) and e in a),
    "starts_with": _text(str.startswith),
    "ends_with": _text(str.endswith),
    "less_than": _compare(lambda a, b: a < b),
    "less_than_or_equal": _compare(lambda a, b: a <= b),
    "greater_than": _compare(lambda a, b: a > b),
    "greater_than_or_equal": _compare(lambda a, b: a >= b),
    "is_empty": lambda a, _e: _empty(a),
    "is_not_empty": lambda a, _e: not _empty(a),
}
assert set(_OPS) == set(get_args(FilterOp)), "every operator needs an implementation"


class PropertyFilter(Strict):
    """``{property: total, op: greater_than, value: 0}``; ``property`` may be dotted (``item.sku``)."""

    # No double quote: SQLite's JSON paths cannot name such a key (flowline/conditions/sql.py).
    property: str = Field(min_length=1, pattern=r'^[^"]+$')
    op: FilterOp
    value: Any = None

    def matches(self, properties: Mapping[str, Any]) -> bool:
        actual: Any = properties
        for part in self.property.split("."):
            if isinstance(actual, Mapping) and part in actual:
                actual = actual[part]
            else:
                actual = _MISSING
                break
        return _OPS[self.op](actual, self.value)


def matches_all(filters: Sequence[PropertyFilter], properties: Mapping[str, Any]) -> bool:
    return all(f.matches(properties) for f in filters)
