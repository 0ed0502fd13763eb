"""Pydantic error locations as JSON paths into the document the client sent.

Pydantic's locations name more than the document holds: the tag of a discriminated union (a
step's ``type``, a channel's ``provider``, a condition's ``Attribute``) and the member of a plain
union (``str``, ``SendNext``, ``function-after[...]``). A fault's path must only name keys and
indexes of the document (plus, for a missing field, that field), so locations are walked through
the document itself: what it holds is named, what it does not is a label and skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flowline.json_values import member_path

# Keys whose value a discriminated union puts into locations, in the order unions nest (a send
# step: its ``type``, then its ``channel``). A tag can also be a key of the same mapping (an
# ``event`` trigger is ``{type: event, event: ...}``), so it is matched before the keys.
TAG_KEYS = ("type", "channel", "provider")


def document_path(document: Any, loc: Sequence[int | str], *, last_is_key: bool = False) -> str:
    """The JSON path of ``loc`` in ``document``; ``last_is_key``: the last part is a key, never a
    tag (pydantic's ``missing`` and ``extra_forbidden`` errors), named even when the document
    lacks it."""
    path, node = "$", document
    tags = _tags(node)
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if part in tags and not (last and last_is_key):
            tags.remove(str(part))
            continue
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            path, node = f"{path}[{part}]", node[part]
        elif isinstance(part, str) and isinstance(node, dict) and part in node:
            path, node = member_path(path, part), node[part]
        elif last and last_is_key:
            return member_path(path, str(part))
        else:
            # Not in the document: pydantic only walks into what it was given, so this is a
            # union's tag or member name, never data.
            continue
        tags = _tags(node)
    return path


def error_path(document: Any, error: Mapping[str, Any], prefix: int = 0) -> str:
    """The path of one pydantic error (``ValidationError.errors()`` item); the first ``prefix``
    parts of its location are not in the document (FastAPI's ``body``)."""
    loc = tuple(error.get("loc", ()))[prefix:]
    return document_path(document, loc, last_is_key=error.get("type") in _KEY_ERRORS)


# Errors about a key itself: a missing field, an unknown one.
_KEY_ERRORS = frozenset({"missing", "extra_forbidden"})


def _tags(node: Any) -> list[str]:
    if not isinstance(node, dict):
        return []
    return [node[key] for key in TAG_KEYS if isinstance(node.get(key), str)]
