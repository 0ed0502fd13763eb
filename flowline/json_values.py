"""JSON values as Flowline keeps them: finite numbers only.

Python's ``json`` reads ``NaN``, ``Infinity`` and numbers beyond a double (``1e400`` -> inf) without
complaint, but they are not JSON (RFC 8259): SQLite's JSON functions call such a text malformed and
PostgreSQL refuses it. So a non-finite number is refused where it arrives (the API, a step) and the
store never writes one (``dumps``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

NUL = "\x00"


def member_path(path: str, key: str) -> str:
    """``$.a`` + ``b`` -> ``$.a.b``; keys that are not plain names are quoted: ``$.a["b c"]``."""
    if key.isidentifier():
        return f"{path}.{key}"
    # Escaped only when it must be: a lone surrogate could not be sent back in a JSON answer.
    return f"{path}[{json.dumps(key, ensure_ascii=_not_utf8(key))}]"


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
    return value if is_finite(value) else without_non_finite(value)[0]


def dumps(value: Any) -> str:
    """JSON text for the store; ValueError on a non-finite number instead of writing ``NaN``."""
    return json.dumps(value, allow_nan=False)


# ---------------------------------------------------------------- bodies a client sends

# Integers of 1,024 bits may overflow a double: SQLite reads such a number as Infinity (what
# 1e400 is refused for), and comparing it with a float raises OverflowError.
_DOUBLE_MAX_BITS = 1024


def _beyond_double(number: int) -> bool:
    """An integer no double holds: float() overflows from 2**1024 - 2**970 (rounding) on."""
    if number.bit_length() < _DOUBLE_MAX_BITS:
        return False
    try:
        float(number)
    except OverflowError:
        return True
    return False


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]')


@dataclass(frozen=True)
class JsonLimits:
    """What one JSON value a client sends may hold (docs/api.md#limits)."""

    max_depth: int = 32  # containers inside containers, the outermost counted
    max_string: int = 100_000  # characters of a string
    max_key: int = 256  # characters of an object key
    max_values: int = 1_000_000  # values walked: YAML aliases can repeat a subtree without bytes
    max_faults: int = 100  # faults reported (the rest are dropped, the answer stays small)


class JsonFault(NamedTuple):
    path: str
    message: str


class JsonUnreadable(ValueError):
    """A body that parses as JSON only past a limit; ``faults`` say where."""

    def __init__(self, faults: list[JsonFault]) -> None:
        super().__init__("; ".join(f"{f.path}: {f.message}" for f in faults))
        self.faults = faults


class _OutOfRange:
    """An integer literal Python refuses to read (more than 4,300 digits)."""


_OUT_OF_RANGE = _OutOfRange()


class _BadKey(NamedTuple):
    """value_faults' marker for a key it refuses."""

    reason: str


def _int_or_marker(text: str) -> int | _OutOfRange:
    try:
        return int(text)
    except ValueError:
        return _OUT_OF_RANGE


def loads(text: str | bytes, limits: JsonLimits = JsonLimits()) -> Any:
    """JSON as Python's ``json`` reads it, but never a RecursionError or a bare ValueError.

    ``json.JSONDecodeError`` (and UnicodeDecodeError) stay for text that is not JSON. Nesting too
    deep for Python's parser (about 1,000 levels) raises ``JsonUnreadable`` with the path; an
    integer of more than 4,300 digits (``int()`` refuses it) is read as a marker that
    ``value_faults`` reports with the others.
    """
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except RecursionError:
        raise _too_deep(text, limits) from None
    except ValueError:
        pass  # only int() raises a plain ValueError here: read again marking such numbers
    try:
        return json.loads(text, parse_int=_int_or_marker)
    except RecursionError:  # nesting after the number
        raise _too_deep(text, limits) from None


def _too_deep(text: str | bytes, limits: JsonLimits) -> JsonUnreadable:
    source = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return JsonUnreadable([JsonFault(_too_deep_path(source, limits.max_depth), _deep(limits))])


def _deep(limits: JsonLimits) -> str:
    return f"nested deeper than {limits.max_depth} levels"


def _too_deep_path(text: str, max_depth: int) -> str:
    """The path of the first container at depth ``max_depth + 1``, found by scanning tokens (no
    recursion, so it works where ``json.loads`` ran out of stack)."""
    frames: list[list[Any]] = []  # [is_object, key or index, expecting a key]
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            if len(frames) == max_depth:
                path = "$"
                for is_object, label, _ in frames:
                    path = member_path(path, str(label)) if is_object else f"{path}[{label}]"
                return path
            frames.append([token == "{", "" if token == "{" else 0, token == "{"])
        elif token in "]}":
            if frames:
                frames.pop()
        elif not frames:
            continue
        elif token == ",":
            if frames[-1][0]:
                frames[-1][2] = True
            else:
                frames[-1][1] += 1
        elif token == ":":
            frames[-1][2] = False
        elif frames[-1][0] and frames[-1][2]:
            try:
                frames[-1][1] = json.loads(token)
            except ValueError:
                frames[-1][1] = token[1:-1]
    return "$"


def value_faults(
    value: Any, limits: JsonLimits = JsonLimits(), path: str = "$", depth: int = 0
) -> list[JsonFault]:
    """Every place where ``value`` breaks a limit: numbers that are not finite or overflow a
    double, strings and keys too long, containers nested too deep (``depth``: the containers
    around ``value`` in its document). Iterative: no depth is too deep for it, and it stops after
    ``limits.max_values`` values."""
    if not _may_break(value, limits, depth):
        return []
    faults: list[JsonFault] = []
    stack: list[tuple[Any, str, int]] = [(value, path, depth)]
    walked = 0
    while stack and len(faults) < limits.max_faults:
        node, where, depth = stack.pop()
        walked += 1
        if walked > limits.max_values:
            faults.append(JsonFault(path, f"more than {limits.max_values} values"))
            break
        if isinstance(node, float):
            if not math.isfinite(node):
                faults.append(JsonFault(where, "not a finite number (NaN, Infinity, beyond ±1.8e308)"))
        elif isinstance(node, int):
            if _beyond_double(node):
                faults.append(JsonFault(where, "a number beyond the range of a double (±1.8e308)"))
        elif isinstance(node, str):
            reason = text_fault(node, limits.max_string)
            if reason is not None:
                faults.append(JsonFault(where, f"a string {reason}"))
        elif isinstance(node, _OutOfRange):
            faults.append(JsonFault(where, "a number beyond the range of a double (±1.8e308)"))
        elif isinstance(node, _BadKey):
            faults.append(JsonFault(where, f"a key {node.reason}"))
        elif isinstance(node, dict | list | tuple):
            if depth >= limits.max_depth:
                faults.append(JsonFault(where, _deep(limits)))
                continue
            if isinstance(node, dict):
                children = []
                for key, child in node.items():
                    at = member_path(where, str(key))
                    reason = text_fault(str(key), limits.max_key)
                    if reason is not None:  # reported in document order, before its value
                        children.append((_BadKey(reason), at, depth))
                    children.append((child, at, depth + 1))
            else:
                children = [(child, f"{where}[{i}]", depth + 1) for i, child in enumerate(node)]
            stack.extend(reversed(children))
    return faults[: limits.max_faults]


def _leaf_breaks(leaf: Any, limits: JsonLimits) -> bool:
    kind = type(leaf)
    if kind is str:
        return text_fault(leaf, limits.max_string) is not None
    if kind is float:
        return not math.isfinite(leaf)
    if kind is int:
        return _beyond_double(leaf)
    return kind is _OutOfRange


def _may_break(value: Any, limits: JsonLimits, depth: int) -> bool:
    """Whether ``value`` breaks a limit, without the paths: the usual body breaks none, and this
    walk, building no path and pushing no leaf, costs a fraction of ``value_faults``' (an event
    batch is walked on every ingest: 1,000 events of 20 values, about 8 ms)."""
    if type(value) not in _CONTAINERS:
        return _leaf_breaks(value, limits)
    max_string, max_key, isfinite = limits.max_string, limits.max_key, math.isfinite
    stack: list[tuple[Any, int]] = [(value, depth)]
    walked = 0
    while stack:
        node, level = stack.pop()
        if level >= limits.max_depth:
            return True
        walked += len(node)
        if walked > limits.max_values:
            return True
        if type(node) is dict:
            if node and _keys_break(node, max_key):
                return True
            children = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is str:
                if len(child) > max_string or "\x00" in child or (not child.isascii() and _not_utf8(child)):
                    return True
            elif kind in _CONTAINERS:
                stack.append((child, level + 1))
            elif kind is float:
                if not isfinite(child):
                    return True
            elif kind is int:
                if child.bit_length() >= _DOUBLE_MAX_BITS and _beyond_double(child):
                    return True
            elif child is not None and kind is not bool and _leaf_breaks(child, limits):
                return True
    return False


_CONTAINERS = frozenset({dict, list, tuple})


def _keys_break(node: dict[Any, Any], max_key: int) -> bool:
    """Whether a key of ``node`` breaks a limit: its keys checked at once, in C, where they can be."""
    try:
        keys = "".join(node)
    except TypeError:  # keys that are not strings (YAML): one by one
        return any(text_fault(str(key), max_key) is not None for key in node)
    return bool(max(map(len, node)) > max_key or "\x00" in keys or (not keys.isascii() and _not_utf8(keys)))


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def text_fault(text: str, max_length: int) -> str | None:
    """Why a string (a value or a key) cannot be kept, or None. JSON's ``\\ud800`` escapes make
    lone surrogates, which UTF-8 (SQLite's text, every JSON encoder downstream) cannot carry;
    PostgreSQL refuses U+0000 in text and jsonb."""
    if len(text) > max_length:
        return f"longer than {max_length} characters"
    if "\x00" in text:
        return "with the character U+0000, which cannot be stored"
    if not text.isascii() and _not_utf8(text):
        return "with a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
    return None


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
