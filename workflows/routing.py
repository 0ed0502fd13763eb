"""Starting journeys: an event (or an API call) becomes journeys of the flows it triggers.

Re-entry rules are enforced by the journeys table's unique ``entry_lock`` in the same
transaction that starts the workflow, so concurrent duplicates cannot both get in; the
journey id derives from the entry (the triggering event's id), so a retried event finds its
journey already started instead of starting a second one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from flowline.conditions import matches_all
from flowline.flow.model import EventTrigger
from flowline.journey import JourneyInput, TriggerEvent, journey_id
from flowline.store import events as events_store
from flowline.store import journeys
from flowline.store.database import Store, utcnow
from flowline.store.flows import PublishedFlow, event_triggered_flows
from flowline.ttl_cache import TtlCache
from workflows import search_attributes as sa
from workflows.journey import JourneyWorkflow

log = logging.getLogger(__name__)


@dataclass
class RoutingResult:
    journeys: list[str] = field(default_factory=list)
    # (event id, flow id) pairs the re-entry rule kept out.
    refused: list[tuple[str, str]] = field(default_factory=list)


class JourneyLauncher:
    def __init__(
        self, store: Store, client: Client, task_queue: str, *, flow_cache_seconds: float = 5.0
    ) -> None:
        self.store = store
        self.client = client
        self.task_queue = task_queue
        self._flows: TtlCache[str, list[PublishedFlow]] = TtlCache(flow_cache_seconds)

    async def triggerable_flows(self, workspace_id: str) -> list[PublishedFlow]:
        cached = self._flows.get(workspace_id)
        if cached is None:
            async with self.store.connect() as conn:
                cached = await event_triggered_flows(conn, workspace_id)
            self._flows.put(workspace_id, cached)
        return cached

    def flows_changed(self, workspace_id: str) -> None:
        """Call after publishing (or stopping) a flow, so this process routes by it at once."""
        self._flows.invalidate(workspace_id)

    async def start(
        self,
        workspace_id: str,
        flow: PublishedFlow,
        profile_id: str,
        *,
        entry: str,
        event: TriggerEvent | None = None,
        variables: dict[str, Any] | None = None,
        mark_routed: bool = False,
    ) -> str | None:
        """Start one journey; None when the flow's re-entry rule refuses it.

        ``mark_routed``: this is the event's last journey to start, so its routing is done when
        this transaction commits (saves a transaction per event).
        """
        document = flow.document
        settings = document.settings
        entry_key = entry
        if settings.entry_key and event is not None and settings.entry_key in event.properties:
            entry_key = str(event.properties[settings.entry_key])
        jid = journey_id(workspace_id, flow.flow_id, profile_id, entry)
        async with self.store.begin() as conn:
            claimed = await journeys.claim_entry(
                self.store,
                conn,
                journey_id=jid,
                workspace_id=workspace_id,
                flow_id=flow.flow_id,
                version=flow.version,
                profile_id=profile_id,
                lock=journeys.entry_lock(settings.reentry, entry_key),
                trigger_event_id=event.id if event else None,
                started_at=utcnow(),
            )
            if mark_routed and event is not None:
                await events_store.mark_routed(conn, workspace_id, [event.id], utcnow())
            if not claimed:
                return None
            journey = JourneyInput(
                journey_id=jid,
                workspace_id=workspace_id,
                flow=document,
                version=flow.version,
                profile_id=profile_id,
                event=event,
                variables=variables or {},
            )
            try:
                await self.client.start_workflow(
                    JourneyWorkflow.run,
                    journey,
                    id=jid,
                    task_queue=self.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(sa.WORKSPACE_ID, workspace_id),
                            SearchAttributePair(sa.FLOW_ID, flow.flow_id),
                            SearchAttributePair(sa.FLOW_VERSION, flow.version),
                            SearchAttributePair(sa.PROFILE_ID, profile_id),
                            SearchAttributePair(sa.STEP_ID, document.steps[0].id),
                        ]
                    ),
                )
            except WorkflowAlreadyStartedError:
                # An earlier attempt started it and then lost its transaction: same journey.
                log.info("journey %s was already started", jid)
        return jid

    @staticmethod
    def targets(flows: list[PublishedFlow], event: TriggerEvent) -> list[PublishedFlow]:
        """The flows whose trigger ``event`` satisfies."""
        found = []
        for flow in flows:
            trigger = flow.document.trigger
            if (
                isinstance(trigger, EventTrigger)
                and trigger.event == event.name
                and matches_all(trigger.where, event.properties)
            ):
                found.append(flow)
        return found

    async def route_events(
        self, workspace_id: str, events: list[TriggerEvent], profile_ids: list[str]
    ) -> RoutingResult:
        """Start the journeys that ``events`` trigger (``profile_ids[i]`` is whose event i is)."""
        result = RoutingResult()
        if not events:
            return result
        flows = await self.triggerable_flows(workspace_id)
        unmatched: list[str] = []
        for event, profile_id in zip(events, profile_ids, strict=True):
            targets = self.targets(flows, event)
            if not targets:
                unmatched.append(event.id)
            for index, flow in enumerate(targets):
                started = await self.start(
                    workspace_id,
                    flow,
                    profile_id,
                    entry=f"event:{event.id}",
                    event=event,
                    mark_routed=index == len(targets) - 1,
                )
                if started is None:
                    result.refused.append((event.id, flow.flow_id))
                else:
                    result.journeys.append(started)
        if unmatched:
            async with self.store.begin() as conn:
                await events_store.mark_routed(conn, workspace_id, unmatched, utcnow())
        return result
