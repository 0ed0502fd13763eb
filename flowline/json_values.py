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

NUL = "\x00"


def member_path(path: str, key: str) -> str:
    """``$.a`` + ``b`` -> ``$.a.b``; keys that are not plain names are quoted: ``$.a["b c"]``."""
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def nodes(value: Any, path: str = "$") -> Iterator[tuple[Any, str]]:
    """Every value inside ``value`` (itself included) with its path, in document order (dicts,
    lists and tuples walked; no recursion, so depth costs no stack)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        node, where = stack.pop()
        yield node, where
        if isinstance(node, dict):
            stack.extend((v, member_path(where, str(k))) for k, v in reversed(node.items()))
        elif isinstance(node, list | tuple):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(node))))


def non_finite_paths(value: Any, path: str = "$") -> Iterator[str]:
    """The path of every NaN / ±Infinity inside ``value`` (dicts, lists and tuples walked)."""
    for node, where in nodes(value, path):
        if isinstance(node, float) and not math.isfinite(node):
            yield where


def nul_paths(value: Any, path: str = "$") -> Iterator[str]:
    """The path of every string, and every member whose key, holds U+0000: valid JSON, but
    PostgreSQL's text and jsonb cannot hold it, so it is refused where it arrives on every store."""
    for node, where in nodes(value, path):
        if isinstance(node, str) and NUL in node:
            yield where
        elif isinstance(node, dict):
            yield from (member_path(where, str(k)) for k in node if NUL in str(k))


def is_finite(value: Any) -> bool:
    return next(non_finite_paths(value), None) is None


def dumps(value: Any) -> str:
    """JSON text for the store; ValueError on a non-finite number instead of writing ``NaN``."""
    return json.dumps(value, allow_nan=False)
