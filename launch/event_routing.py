"""Events to journeys in flight: each event reaches exactly the journeys of its profile whose flow
listens to its name (stop_when, goal, wait_for_event, wait_for_change), as a signal.

Goals are also settled here, in the database: a conversion counts when the goal event comes
within the goal's window after entry, even if the journey has ended by then.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client

from flowline.durations import LONGEST_WAIT
from flowline.flow.document import FlowDocument
from flowline.journey import TriggerEvent
from flowline.store import flows, journeys
from flowline.store.database import utcnow
from launch.signals import SignalNotTaken, signal_journey
from workflows.journey import JourneyWorkflow

log = logging.getLogger(__name__)


class RoutingFailed(RuntimeError):
    """Temporal did not take a signal (unreachable, refusing): the caller rolls back and retries."""


@dataclass(frozen=True)
class ProfileEvent:
    profile_id: str
    event: TriggerEvent


@dataclass
class Routed:
    # journey id -> ids of the events it was signalled, in order
    signalled: dict[str, list[str]] = field(default_factory=dict)
    converted: list[str] = field(default_factory=list)


class EventRouter:
    def __init__(self, client: Client, *, cached_versions: int = 2_000) -> None:
        self.client = client
        # Published versions never change: their documents are cached for good (bounded).
        self._documents: OrderedDict[tuple[str, str, int], FlowDocument] = OrderedDict()
        self._cached_versions = cached_versions

    async def heard(
        self, conn: AsyncConnection, workspace_id: str, rows: Sequence[Mapping[str, Any]]
    ) -> set[str]:
        """The ids of those events (rows with ``id``, ``profile_id`` and ``name``) that a journey of
        their profile stored now may hear: in flight and listening to the name, or still able to
        convert on it. ``route`` would do nothing with the others. A superset: a journey's own
        trigger event and the ``where`` of goals and waits are not looked at."""
        if not rows:
            return set()
        candidates = await journeys.journeys_of_profiles(
            conn, workspace_id, {r["profile_id"] for r in rows}, unconverted_since=utcnow() - LONGEST_WAIT
        )
        if not candidates:
            return set()
        documents = await self._documents_for(
            conn, workspace_id, {(j["flow_id"], j["version"]) for j in candidates}
        )
        names: dict[str, set[str]] = defaultdict(set)
        for journey in candidates:
            document = documents.get((journey["flow_id"], journey["version"]))
            if document is not None:
                names[journey["profile_id"]] |= document.listened_events()
        return {r["id"] for r in rows if r["name"] in names.get(r["profile_id"], ())}

    async def route(self, conn: AsyncConnection, workspace_id: str, items: Sequence[ProfileEvent]) -> Routed:
        """Signal the events to the journeys that listen, and record goal conversions, in the
        caller's transaction. Events go to each journey in the order given."""
        routed = Routed()
        if not items:
            return routed
        now = utcnow()
        candidates = await journeys.journeys_of_profiles(
            conn, workspace_id, {i.profile_id for i in items}, unconverted_since=now - LONGEST_WAIT
        )
        if not candidates:
            return routed
        documents = await self._documents_for(
            conn, workspace_id, {(j["flow_id"], j["version"]) for j in candidates}
        )
        # Once per version, not once per event and journey.
        listened = {key: document.listened_events() for key, document in documents.items()}
        by_profile = defaultdict(list)
        for journey in candidates:
            by_profile[journey["profile_id"]].append(journey)

        # A journey an event of this batch started hears only the events after that one.
        position = {item.event.id: index for index, item in enumerate(items)}
        outbox: dict[str, list[TriggerEvent]] = defaultdict(list)
        conversions: list[tuple[str, TriggerEvent]] = []
        for index, item in enumerate(items):
            event = item.event
            for journey in by_profile.get(item.profile_id, ()):
                document = documents.get((journey["flow_id"], journey["version"]))
                if document is None or index <= position.get(journey["trigger_event_id"], -1):
                    continue
                if self._converts(document, journey, event):
                    conversions.append((str(journey["id"]), event))
                key = (journey["flow_id"], journey["version"])
                if journey["status"] == "running" and event.name in listened[key]:
                    outbox[journey["id"]].append(event)
        await asyncio.gather(*(self._signal(jid, events) for jid, events in outbox.items()))
        routed.signalled = {jid: [e.id for e in events] for jid, events in outbox.items()}
        # Writes last: on SQLite the write lock is not held while Temporal answers the signals.
        for jid, event in conversions:
            if await journeys.record_conversion(conn, jid, event.timestamp, event.id):
                routed.converted.append(jid)
        return routed

    @staticmethod
    def _converts(document: FlowDocument, journey: dict[str, object], event: TriggerEvent) -> bool:
        """Whether ``event`` is the journey's first goal event within the goal's window."""
        goal = document.settings.goal
        started = journey["started_at"]
        if goal is None or journey["converted_at"] is not None or not isinstance(started, datetime):
            return False
        if not (started <= event.timestamp <= started + goal.within):
            return False
        if not goal.matches(event.name, event.properties):
            return False
        journey["converted_at"] = event.timestamp  # a later event of the batch does not convert it again
        return True

    async def _signal(self, journey_id: str, events: list[TriggerEvent]) -> None:
        for event in events:
            try:
                if not await signal_journey(self.client, journey_id, JourneyWorkflow.event, event):
                    # It ended meanwhile (its record still said running): nothing to tell it.
                    return
            except SignalNotTaken as error:
                raise RoutingFailed(
                    f"Temporal did not take event {event.id} for {journey_id}: {error.error}"
                ) from error

    async def _documents_for(
        self, conn: AsyncConnection, workspace_id: str, keys: set[tuple[str, int]]
    ) -> dict[tuple[str, int], FlowDocument]:
        found: dict[tuple[str, int], FlowDocument] = {}
        missing = set()
        for flow_id, version in keys:
            cached = self._documents.get((workspace_id, flow_id, version))
            if cached is None:
                missing.add((flow_id, version))
            else:
                found[(flow_id, version)] = cached
        if missing:
            loaded = await flows.version_documents(conn, workspace_id, missing)
            for (flow_id, version), document in loaded.items():
                self._documents[(workspace_id, flow_id, version)] = document
                found[(flow_id, version)] = document
            while len(self._documents) > self._cached_versions:
                self._documents.popitem(last=False)
        return found
