"""Secrets in settings the API shows (channel providers, destinations): never shown, and kept
when a client sends the mask back in a PUT of the settings it read."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
# Request headers (of custom elements) whose values are credentials: shown as the mask, kept when
# a PUT sends the mask back, stored sealed (flowline/store/elements.py).
_SECRET_HEADER = re.compile(r"auth|key|token|secret|password|signature|cookie|session", re.IGNORECASE)


def secret_headers(headers: Iterable[str]) -> list[str]:
    """The names among ``headers`` that credentials travel under."""
    return [name for name in headers if _SECRET_HEADER.search(name)]


NOTHING_TO_KEEP = f"{MASK!r} keeps a stored secret; none is stored"


def mask(shown: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """``shown`` (changed in place) with each secret that is set replaced by the mask."""
    for name in names:
        if shown.get(name) is not None:
            shown[name] = MASK
    return shown


def kept_secrets(
    given: Mapping[str, Any], stored: object | None, names: Iterable[str], path: str
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The stored secrets to put where ``given`` sends the mask back, and a (path, message) fault
    for each mask with no secret to keep. ``stored``: the stored settings of the same kind (same
    provider or type), else None."""
    kept: dict[str, Any] = {}
    faults: list[tuple[str, str]] = []
    for name in names:
        if given.get(name) != MASK:
            continue
        secret = getattr(stored, name, None)
        if secret is None:
            faults.append((f"{path}.{name}", NOTHING_TO_KEEP))
        else:
            kept[name] = secret
    return kept, faults
