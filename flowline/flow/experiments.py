"""Stable, weighted assignment of people to the variants of a split (A/B tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def bucket(*parts: str) -> float:
    """A number in [0, 1) that depends only on ``parts``, spread evenly (SHA-256)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(branches: Sequence[tuple[str, float]], *, flow_id: str, step_id: str, profile_id: str) -> str:
    """The branch of ``branches`` (name, weight) this person takes; the same every time.

    Keyed by flow, step and profile (not version or journey), so re-entering, or a newer version
    of the flow, keeps a person in the variant they saw before.
    """
    total = sum(weight for _, weight in branches)
    point = bucket(flow_id, step_id, profile_id) * total
    for name, weight in branches:
        point -= weight
        if point < 0:
            return name
    return branches[-1][0]
