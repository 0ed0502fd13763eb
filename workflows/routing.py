"""Starting journeys: an event (or an API call) becomes journeys of the flows it triggers.

Re-entry rules are enforced by the journeys table's unique ``entry_lock`` in the same
transaction that starts the workflow, so concurrent duplicates cannot both get in; the
journey id derives from the entry (the triggering event's id), so a retried event finds its
journey already started instead of starting a second one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from flowline.conditions import matches_all
from flowline.flow.model import EventTrigger
from flowline.flow.variables import variable_faults
from flowline.journey import JourneyInput, JourneyLimits, TriggerEvent, journey_id
from flowline.store import events as events_store
from flowline.store import journeys
from flowline.store.database import Store, utcnow
from flowline.store.flows import PublishedFlow, event_triggered_flows
from flowline.store.profiles import ensure_profiles
from flowline.ttl_cache import TtlCache
from workflows import search_attributes as sa
from workflows.event_routing import EventRouter, ProfileEvent, Routed, RoutingFailed
from workflows.journey import JourneyWorkflow

log = logging.getLogger(__name__)


class EntryRefused(ValueError):
    """The flow takes no entry now (start_at / end_at), or the given variables do not fit."""

    def __init__(self, reason: str, faults: list[tuple[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.faults = faults or []


class JourneyStartFailed(RuntimeError):
    """Temporal did not take a journey or an event for one (unreachable, refusing): the
    transaction was rolled back."""


@dataclass
class IngestResult:
    # Ids of the events stored now (the others were stored before).
    stored: set[str] = field(default_factory=set)
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
        self.router = EventRouter(client)

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
        variables: dict[str, Any] | None = None,
        limits: JourneyLimits | None = None,
    ) -> str | None:
        """Start one journey (an API call); None when the flow's re-entry rule refuses it.
        Raises EntryRefused outside the flow's entry window or for variables that do not fit."""
        reason = flow.closed_reason(utcnow())
        if reason is not None:
            raise EntryRefused(reason)
        faults = variable_faults(flow.document.settings, variables or {})
        if faults:
            raise EntryRefused("variables do not fit their declarations", faults)
        async with self.store.begin() as conn:
            claim = await self._claim(conn, workspace_id, flow, profile_id, entry=entry, variables=variables)
            if claim is None:
                return None
            if limits is not None:
                claim.limits = limits
            await self._start_workflow(claim)
        return claim.journey_id

    async def ingest(self, workspace_id: str, rows: list[dict[str, Any]]) -> IngestResult:
        """Store events and start the journeys they trigger, all in one transaction.

        Either everything is stored and every journey started, or nothing is stored and the caller
        gets the error: a retry then stores the events and starts the journeys. A journey whose
        workflow started before a failed commit is found again (its id derives from the event).
        Only events stored for the first time trigger flows.
        """
        result = IngestResult()
        if not rows:
            return result
        now = utcnow()
        flows = [f for f in await self.triggerable_flows(workspace_id) if f.closed_reason(now) is None]
        async with self.store.begin() as conn:
            await ensure_profiles(self.store, conn, workspace_id, {r["profile_id"] for r in rows})
            result.stored = await events_store.insert_events(
                self.store, conn, workspace_id, rows, routed_at=utcnow()
            )
            claims = []
            for row in rows:
                if row["id"] not in result.stored:
                    continue
                event = _event(row)
                for flow in self.targets(flows, event):
                    claim = await self._claim(
                        conn, workspace_id, flow, row["profile_id"], entry=f"event:{event.id}", event=event
                    )
                    if claim is None:
                        result.refused.append((event.id, flow.flow_id))
                    else:
                        claims.append(claim)
            await asyncio.gather(*(self._start_workflow(c) for c in claims))
            # Then the journeys in flight that listen (the ones just started included).
            await self.route_to_journeys(conn, workspace_id, [r for r in rows if r["id"] in result.stored])
        result.journeys = [c.journey_id for c in claims]
        return result

    async def route_pending(
        self, conn: AsyncConnection, workspace_id: str, profile_ids: Sequence[str]
    ) -> Routed:
        """Route the system events (profile changes and the like) of these profiles that are not
        routed yet, and mark them routed, in the caller's transaction."""
        rows = await events_store.unrouted_events(conn, workspace_id, profile_ids)
        routed = await self.route_to_journeys(conn, workspace_id, rows)
        await events_store.mark_routed(conn, workspace_id, [r["id"] for r in rows])
        return routed

    async def route_to_journeys(
        self, conn: AsyncConnection, workspace_id: str, rows: Sequence[dict[str, Any]]
    ) -> Routed:
        """Signal stored events to the journeys in flight that listen, and settle goals."""
        items = [
            ProfileEvent(
                r["profile_id"],
                TriggerEvent(
                    id=r["id"], name=r["name"], timestamp=r["timestamp"], properties=r["properties"]
                ),
            )
            for r in rows
        ]
        try:
            return await self.router.route(conn, workspace_id, items)
        except RoutingFailed as error:
            raise JourneyStartFailed(str(error)) from error

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

    async def _claim(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        flow: PublishedFlow,
        profile_id: str,
        *,
        entry: str,
        event: TriggerEvent | None = None,
        variables: dict[str, Any] | None = None,
    ) -> JourneyInput | None:
        """Record the journey unless it exists or the re-entry rule refuses it."""
        document = flow.document
        settings = document.settings
        entry_key = entry
        if settings.entry_key and event is not None and settings.entry_key in event.properties:
            entry_key = str(event.properties[settings.entry_key])
        jid = journey_id(workspace_id, flow.flow_id, profile_id, entry)
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
        if not claimed:
            return None
        return JourneyInput(
            journey_id=jid,
            workspace_id=workspace_id,
            flow=document,
            version=flow.version,
            profile_id=profile_id,
            event=event,
            variables=variables or {},
        )

    async def _start_workflow(self, journey: JourneyInput) -> None:
        try:
            await self.client.start_workflow(
                JourneyWorkflow.run,
                journey,
                id=journey.journey_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.WORKSPACE_ID, journey.workspace_id),
                        SearchAttributePair(sa.FLOW_ID, journey.flow.id),
                        SearchAttributePair(sa.FLOW_VERSION, journey.version),
                        SearchAttributePair(sa.PROFILE_ID, journey.profile_id),
                        SearchAttributePair(sa.STEP_ID, journey.flow.steps[0].id),
                    ]
                ),
            )
        except WorkflowAlreadyStartedError:
            # An earlier attempt started it and then lost its transaction: same journey.
            log.info("journey %s was already started", journey.journey_id)
        except (RPCError, RuntimeError) as error:  # the SDK raises RuntimeError when it cannot connect
            raise JourneyStartFailed(
                f"Temporal did not start journey {journey.journey_id}: {error}"
            ) from error


def _event(row: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(
        id=row["id"], name=row["name"], timestamp=row["timestamp"], properties=row["properties"]
    )
