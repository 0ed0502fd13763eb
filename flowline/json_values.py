"""JSON values as Flowline keeps them: finite numbers only.

Python's ``json`` reads ``NaN``, ``Infinity`` and numbers beyond a double (``1e400`` -> inf) without
complaint, but they are not JSON (RFC 8259): SQLite's JSON functions call such a text malformed and
PostgreSQL refuses it. So a non-finite number is refused where it arrives (the API, a step) and the
store never writes one (``dumps``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any


def member_path(path: str, key: str) -> str:
    """``$.a`` + ``b`` -> ``$.a.b``; keys that are not plain names are quoted: ``$.a["b c"]``."""
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def non_finite_paths(value: Any, path: str = "$") -> Iterator[str]:
    """The path of every NaN / ±Infinity inside ``value`` (dicts, lists and tuples walked)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, float):
            if not math.isfinite(node):
                yield where
        elif isinstance(node, dict):
            stack.extend((v, member_path(where, str(k))) for k, v in reversed(node.items()))
        elif isinstance(node, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(node))))


def is_finite(value: Any) -> bool:
    return next(non_finite_paths(value), None) is None


def non_finite_error(value: Any, path: str = "$") -> str | None:
    """Why ``value`` cannot be kept (naming where its NaN / Infinity sit below ``path``), or None."""
    found = list(non_finite_paths(value, path))
    if not found:
        return None
    where = "" if found == [path] else f" at {', '.join(found[:5])}{', ...' if len(found) > 5 else ''}"
    return f"NaN or Infinity (not a finite number){where}"


def nulled(value: Any) -> Any:
    """``value`` with each NaN / ±Infinity made null, as the repair of issue 12 does: what SQLite may
    still hold from before the store refused them, read back so that writing it again cannot fail."""
    return value if is_finite(value) else _nulled(value)


def _nulled(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nulled(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nulled(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """JSON text for the store; ValueError on a non-finite number instead of writing ``NaN``."""
    return json.dumps(value, allow_nan=False)


def without_non_finite(value: Any) -> tuple[Any, int]:
    """``value`` with every NaN / ±Infinity made null, everything else kept as it was (key order
    and list positions included), and how many were made null. For repairing stored documents."""
    if isinstance(value, float):
        return (value, 0) if math.isfinite(value) else (None, 1)
    if isinstance(value, dict):
        repaired: dict[Any, Any] = {}
        count = 0
        for key, item in value.items():
            repaired[key], found = without_non_finite(item)
            count += found
        return repaired, count
    if isinstance(value, list):
        items: list[Any] = []
        count = 0
        for item in value:
            kept, found = without_non_finite(item)
            items.append(kept)
            count += found
        return items, count
    return value, 0
