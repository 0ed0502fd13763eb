"""A small in-process cache whose entries expire, for lookups on every request (the flows an
event can trigger; API keys are read afresh, docs/keys.md). Each process keeps its own: a change
made through another process is seen once the entry expires, so keep the time short, or store a
version read with the value and compare it (the flows: JourneyLauncher.triggerable_flows)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(
        self, seconds: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ):
        self.seconds = seconds
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # crude, but bounded; a full cache only costs lookups
        self._entries[key] = (self._clock() + self.seconds, value)

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)
