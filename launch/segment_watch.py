"""Keeping segment membership current as data changes: after new events or profile changes, the
workspace's segments are re-evaluated for the profiles concerned (JourneyLauncher calls this once
per ingest; the segment events it writes are routed without coming back here, so segment events
cannot loop).

Whether a workspace has segments is cached, so a workspace without segments pays a cache lookup
only. When it has some, they are read again for each evaluation: a rule changed in another process
is not evaluated in its old form (which would make people leave and enter again). Saving a segment
bumps the workspace's routing generation (flowline/store/flows.py), which the ingest reads: a
segment created through another process is evaluated for the next events stored after it. Without
a generation (none known) the cache's TTL bounds it, and the clock (workflows/segment_clock.py)
catches up on anything missed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

from flowline.conditions.evaluate import evaluate, needs
from flowline.conditions.facts import ProfileFacts
from flowline.conditions.rules import Condition
from flowline.store import segment_members
from flowline.store.database import Store
from flowline.ttl_cache import TtlCache

log = logging.getLogger(__name__)


class SegmentWatch:
    def __init__(self, store: Store, *, cache_seconds: float = 5.0) -> None:
        self.store = store
        # workspace id -> (the routing generation it was read at, whether it has any segment)
        self._any: TtlCache[str, tuple[int | None, bool]] = TtlCache(cache_seconds)

    async def has_segments(self, workspace_id: str, generation: int | None = None) -> bool:
        """``generation``: the workspace's routing generation the caller read (None: unknown);
        an answer cached at another one is read again."""
        cached = self._any.get(workspace_id)
        if cached is not None and (generation is None or cached[0] == generation):
            return cached[1]
        async with self.store.connect() as conn:
            found = bool(await segment_members.saved_segments(conn, workspace_id))
        self._any.put(workspace_id, (generation, found))
        return found

    def changed(self, workspace_id: str) -> None:
        """Call after saving a segment, so this process evaluates it at once."""
        self._any.invalidate(workspace_id)

    async def reevaluate(
        self,
        workspace_id: str,
        profile_ids: Collection[str],
        now: datetime,
        event_names: Collection[str] | None = None,
        generation: int | None = None,
    ) -> list[dict[str, Any]]:
        """Re-evaluate the workspace's segments for ``profile_ids``, each in a transaction of its
        own; the segment_entered / segment_exited events written (unrouted). ``event_names``: the
        new data is only events of these names (an ingest), so segments whose answer they cannot
        change are skipped (``may_change``); None: anything may have changed. ``generation``: as
        for ``has_segments``."""
        if not profile_ids or not await self.has_segments(workspace_id, generation):
            return []
        async with self.store.connect() as conn:
            found = await segment_members.saved_segments(conn, workspace_id)
        written: list[dict[str, Any]] = []
        for segment in found:
            if event_names is not None and not may_change(segment.rule, event_names, now):
                continue
            try:
                written += await segment_members.update_membership(self.store, segment, now, profile_ids)
            except Exception:
                # One failing rule must not fail the ingest that stored the data; the clock retries.
                log.exception("segment %s of %s not re-evaluated", segment.segment_id, workspace_id)
        return written


_NEW_PROFILE = ProfileFacts()


def may_change(rule: Condition, event_names: Collection[str], now: datetime) -> bool:
    """Whether new events of ``event_names`` can change who ``rule`` holds for. Events change no
    attribute, tag or do-not-contact entry, so for a known profile only the events the rule counts
    matter, and flow conditions (the ingest may have started journeys). A profile the ingest
    created is an empty one plus these events: it matters only if the rule holds for an empty
    profile."""
    needed = needs([rule])
    if needed.flows or not needed.events.isdisjoint(event_names):
        return True
    try:
        return bool(evaluate(rule, _NEW_PROFILE, now))
    except Exception:  # unsure: evaluate in SQL
        return True
