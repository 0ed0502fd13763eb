"""Starting journeys: an event (or an API call) becomes journeys of the flows it triggers.

Re-entry rules are enforced by the journeys table's unique ``entry_lock`` in the same
transaction that starts the workflow, so concurrent duplicates cannot both get in; the
journey id derives from the entry (the triggering event's id), so a retried event finds its
journey already started instead of starting a second one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.service import RPCError

from flowline.flow.trigger_match import admits, trigger_event
from flowline.flow.triggers import EventTrigger, ProfileChangeTrigger, SegmentEntryTrigger
from flowline.flow.variables import variable_faults
from flowline.journey import STOP_SIGNAL, JourneyInput, JourneyLimits, StopRequest, TriggerEvent, journey_id
from flowline.store import events as events_store
from flowline.store import journeys
from flowline.store.database import Store, utcnow
from flowline.store.flows import (
    PublishedFlow,
    event_triggered_flows,
    flow_status,
    flow_statuses,
    routing_generation,
)
from flowline.store.profiles import ensure_profiles
from flowline.store.trigger_gate import trigger_admits
from flowline.ttl_cache import TtlCache
from workflows.event_routing import EventRouter, ProfileEvent, Routed, RoutingFailed
from workflows.journey_start import JourneyStartFailed as JourneyStartFailed
from workflows.journey_start import claim_journey, start_journey
from workflows.segment_watch import SegmentWatch

log = logging.getLogger(__name__)


class EntryRefused(ValueError):
    """The flow takes no entry now (start_at / end_at), or the given variables do not fit."""

    def __init__(self, reason: str, faults: list[tuple[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.faults = faults or []


@dataclass(frozen=True)
class BatchEntry:
    """One journey of ``JourneyLauncher.start_batch``: who, which entry (names the journey), and
    when it starts (None: now; a later instant: Temporal holds the start until then)."""

    profile_id: str
    entry: str
    start_at: datetime | None = None


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
        # workspace id -> (its routing generation, the flows an event can start at it)
        self._flows: TtlCache[str, tuple[int, list[PublishedFlow]]] = TtlCache(flow_cache_seconds)
        self.router = EventRouter(client)
        self.segments = SegmentWatch(store, cache_seconds=flow_cache_seconds)

    async def triggerable_flows(self, conn: AsyncConnection, workspace_id: str) -> list[PublishedFlow]:
        """The running flows an event can start, as of now, for the caller's transaction: one
        indexed read of the workspace's routing generation (which holds off any publish, stop or
        drain until the transaction ends: ``routing_generation``), and the flows read again only
        when it moved. So an event stored in this transaction is offered to exactly the flows
        running when it commits, whichever process published or stopped them."""
        generation = await routing_generation(conn, workspace_id)
        cached = self._flows.get(workspace_id)
        if cached is not None and cached[0] == generation:
            return cached[1]
        found = await event_triggered_flows(conn, workspace_id)
        self._flows.put(workspace_id, (generation, found))
        return found

    def known_generation(self, workspace_id: str) -> int | None:
        """The routing generation this process last read for the workspace (None: none cached)."""
        cached = self._flows.get(workspace_id)
        return None if cached is None else cached[0]

    def flows_changed(self, workspace_id: str) -> None:
        """Call after publishing (or stopping) a flow: this process forgets its flows at once
        (the others see the routing generation moved)."""
        self._flows.invalidate(workspace_id)

    def segments_changed(self, workspace_id: str) -> None:
        """Call after saving a segment, so this process keeps its membership at once."""
        self.segments.changed(workspace_id)

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
            # ``flow`` was read before this transaction: a stop or drain committed since (through
            # any process) closes it. The generation's lock holds off one in progress until the
            # claim commits: then the stop finds the journey in flight.
            await routing_generation(conn, workspace_id)
            status = await flow_status(conn, workspace_id, flow.flow_id)
            if status != "running":
                raise EntryRefused(f"flow {flow.flow_id!r} is {status or 'gone'}: it takes no new entries")
            claim, fresh = await claim_journey(
                self.store, conn, workspace_id, flow, profile_id, entry=entry, variables=variables
            )
            if claim is None:
                return None
        if limits is not None:
            claim.limits = limits
        # Started once the claim is committed (no transaction waits on Temporal).
        try:
            await start_journey(self.client, self.task_queue, claim)
        except JourneyStartFailed:
            if fresh:
                # Nobody may retry this entry: give the re-entry lock back.
                async with self.store.begin() as conn:
                    await journeys.forget_claim(conn, claim.journey_id)
            raise
        await self._stop_if_stopped(workspace_id, [claim])
        return claim.journey_id

    async def start_batch(
        self,
        workspace_id: str,
        flow: PublishedFlow,
        entries: Sequence[BatchEntry],
        *,
        concurrency: int = 50,
        gate: asyncio.Semaphore | None = None,
    ) -> list[str]:
        """Start the journeys of many entries of one flow (a scheduled audience or date run).

        One transaction claims them all (two statements; the re-entry rules as in ``start``), then
        at most ``concurrency`` starts are in flight, outside it (or as many as ``gate``, shared by
        batches that overlap). An entry an earlier attempt
        claimed is started again (Temporal finds it started: the same journey, never a second one),
        so a caller retries a failed batch by calling again with the same entries. Returns the ids
        of the journeys claimed now or before (none once the flow is stopped or draining, through
        any process); raises JourneyStartFailed after trying them all.
        """
        document, now = flow.document, utcnow()
        by_id: dict[str, BatchEntry] = {}
        for item in entries:
            by_id[journey_id(workspace_id, flow.flow_id, item.profile_id, item.entry)] = item
        rows = [
            {
                "journey_id": jid,
                "workspace_id": workspace_id,
                "flow_id": flow.flow_id,
                "version": flow.version,
                "profile_id": item.profile_id,
                "lock": journeys.entry_lock(document.settings.reentry, item.entry),
                "trigger_event_id": None,
                "started_at": max(item.start_at or now, now),
            }
            for jid, item in by_id.items()
        ]
        async with self.store.begin() as conn:
            # The run read its flow when it began: a stop or drain committed since (through any
            # process) ends its entries here, and one in progress waits for this claim (the
            # generation's lock), which it then finds in flight.
            await routing_generation(conn, workspace_id)
            if await flow_status(conn, workspace_id, flow.flow_id) != "running":
                return []
            claimed = await journeys.claim_entries(self.store, conn, rows)
            claimed |= await journeys.existing_journeys(conn, workspace_id, by_id.keys() - claimed)
        slots = gate or asyncio.Semaphore(concurrency)
        inputs = [
            JourneyInput(
                journey_id=jid,
                workspace_id=workspace_id,
                flow=document,
                version=flow.version,
                profile_id=item.profile_id,
            )
            for jid, item in by_id.items()
            if jid in claimed
        ]

        async def start(journey: JourneyInput) -> None:
            start_at = by_id[journey.journey_id].start_at
            delay = start_at - utcnow() if start_at is not None else None
            async with slots:
                await start_journey(self.client, self.task_queue, journey, start_delay=delay)

        outcomes = await asyncio.gather(*(start(j) for j in inputs), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise JourneyStartFailed(
                f"{len(failures)} of {len(inputs)} journeys did not start: {failures[0]}"
            )
        await self._stop_if_stopped(workspace_id, inputs)
        return [j.journey_id for j in inputs]

    async def ingest(self, workspace_id: str, rows: list[dict[str, Any]]) -> IngestResult:
        """Store events, start the journeys they trigger, and signal the journeys that listen.

        Three short steps, so that no transaction waits on Temporal (SQLite has a single writer):
        1. one transaction stores the events and claims their journeys, by the flows running
           as of its routing generation (``triggerable_flows``: whichever process changed them);
           events that concern no flow and no journey are stored routed (``_quiet``), the others
           unrouted;
        2. the journeys start, outside any transaction;
        3. one transaction signals the journeys in flight that listen, settles goals and marks the
           events routed.
        If Temporal refuses (JourneyStartFailed, the API's 503), the events stay stored but
        unrouted: the same events sent again, or the sweeper (``sweep``), route them. An event
        triggers flows until it is routed; a journey's id derives from its event, so a second
        attempt finds its claim and starts the same journey, never another one.
        """
        result = IngestResult()
        if not rows:
            return result
        people = {r["profile_id"] for r in rows}
        if self.store.dialect == "postgresql":
            # The people first, in a transaction of their own: a new profile's row stays locked
            # until its transaction ends, and another batch naming the same person waits for it.
            # (SQLite locks the whole file for any write: one transaction fewer is better there.)
            async with self.store.begin() as conn:
                await ensure_profiles(self.store, conn, workspace_id, people, read_first=True)
        async with self.store.begin() as conn:
            flows = await self._open_flows(conn, workspace_id)
            if self.store.dialect != "postgresql":
                await ensure_profiles(self.store, conn, workspace_id, people, read_first=True)
            quiet, listened = await self._quiet(conn, workspace_id, flows, rows)
            result.stored = await events_store.insert_events(
                self.store, conn, workspace_id, rows, routed=quiet
            )
            # Events sent before whose routing did not finish are routed now (as stored then).
            earlier = [r["id"] for r in rows if r["id"] not in result.stored]
            pending = [r for r in rows if r["id"] in result.stored and r["id"] not in quiet]
            retried = await events_store.unrouted_by_id(conn, workspace_id, earlier)
            pending += retried
            listened |= {r["id"] for r in retried}
            claims = await self._claims(conn, workspace_id, flows, pending, result)
        await self._route(workspace_id, pending, claims, listened=listened)
        result.journeys = [c.journey_id for c in claims]
        await self.after_data_change(
            workspace_id, {r["profile_id"] for r in rows}, event_names={r["name"] for r in rows}
        )
        return result

    async def _quiet(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        flows: list[PublishedFlow],
        rows: Sequence[dict[str, Any]],
    ) -> tuple[set[str], set[str]]:
        """Two sets of event ids. First, the events that concern no flow and no journey, stored
        routed at once: most of a stream, which then costs no second transaction. An event may
        start a journey (its trigger's name and ``where`` fit), or a journey of its profile in
        flight may hear it; then its profile's events stay unrouted until the journeys started.
        Second, of those, the ones a journey may hear: heard by one in flight, or an event after
        one that starts a journey of its profile. The others (an event that starts a journey and
        nothing else) are only marked routed once their journeys started: nobody to signal."""
        names = {trigger_event(f.document.trigger) for f in flows}
        starts = {r["id"] for r in rows if r["name"] in names and self.targets(flows, _event(r))}
        starting = {r["profile_id"] for r in rows if r["id"] in starts}
        heard = await self.router.heard(conn, workspace_id, rows)
        listened = set(heard)
        started: set[str] = set()
        for row in rows:
            if row["profile_id"] in started:
                listened.add(row["id"])
            if row["id"] in starts:
                started.add(row["profile_id"])
        quiet = {r["id"] for r in rows if r["profile_id"] not in starting and r["id"] not in heard}
        return quiet, listened

    async def route_profiles(self, workspace_id: str, profile_ids: Sequence[str]) -> None:
        """After a change to these profiles committed (PUT /v1/profiles, a profile step): their
        system events not routed yet start the flows they trigger (profile_change) and reach the
        journeys in flight; then their segments are re-evaluated. Raises JourneyStartFailed when
        Temporal refuses (the events stay unrouted: a retry or the sweeper routes them)."""
        async with self.store.connect() as conn:
            rows = await events_store.unrouted_events(conn, workspace_id, profile_ids)
        await self.dispatch(workspace_id, rows)
        await self.after_data_change(workspace_id, profile_ids)

    async def after_data_change(
        self, workspace_id: str, profile_ids: Collection[str], *, event_names: Collection[str] | None = None
    ) -> None:
        """The one hook after new data about these profiles: re-evaluate the workspace's segments
        for them (a cache lookup when it has none; with ``event_names``, only the segments such
        events can change) and route the segment_entered / segment_exited events written. Once
        per ingest: routing those events does not come back here."""
        written = await self.segments.reevaluate(
            workspace_id, profile_ids, utcnow(), event_names, generation=self.known_generation(workspace_id)
        )
        try:
            await self.dispatch(workspace_id, written)
        except JourneyStartFailed as error:
            # The membership stands; its events stay unrouted and the sweeper routes them.
            log.warning("segment events of %s not routed yet (the sweeper will): %s", workspace_id, error)

    async def dispatch(self, workspace_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Route events stored already (system events): start the journeys they trigger, signal
        the journeys in flight that listen, mark them routed."""
        if not rows:
            return
        async with self.store.begin() as conn:
            flows = await self._open_flows(conn, workspace_id)
            claims = await self._claims(conn, workspace_id, flows, rows, IngestResult())
        await self._route(workspace_id, rows, claims)

    async def sweep(
        self,
        *,
        older_than: timedelta,
        engine_older_than: timedelta | None = None,
        limit: int = 500,
        workspace_id: str | None = None,
    ) -> int:
        """Route events whose routing did not finish (Temporal refused, the process died between
        the steps of ``ingest``, an activity's system events): once they are ``older_than``, or
        ``engine_older_than`` for the events the engine writes (``ENGINE_EVENTS``: the sweeper is
        the only router of those an activity writes). Returns how many events it routed."""
        now = utcnow()
        engine_before = None if engine_older_than is None else now - engine_older_than
        async with self.store.connect() as conn:
            stale = await events_store.stale_unrouted(
                conn,
                before=now - older_than,
                engine_before=engine_before,
                limit=limit,
                workspace_id=workspace_id,
            )
        routed = 0
        by_workspace: dict[str, list[dict[str, Any]]] = {}
        for row in stale:
            by_workspace.setdefault(row["workspace_id"], []).append(row)
        for workspace, rows in by_workspace.items():
            async with self.store.begin() as conn:
                flows = await self._open_flows(conn, workspace)
                claims = await self._claims(conn, workspace, flows, rows, IngestResult())
            await self._route(workspace, rows, claims)
            routed += len(rows)
        return routed

    async def _open_flows(self, conn: AsyncConnection, workspace_id: str) -> list[PublishedFlow]:
        """``triggerable_flows`` that take entries now (their start_at / end_at window)."""
        now = utcnow()
        return [f for f in await self.triggerable_flows(conn, workspace_id) if f.closed_reason(now) is None]

    async def _claims(
        self,
        conn: AsyncConnection,
        workspace_id: str,
        flows: list[PublishedFlow],
        rows: Sequence[dict[str, Any]],
        result: IngestResult,
    ) -> list[JourneyInput]:
        claims = []
        for row in rows:
            event = _event(row)
            for flow in self.targets(flows, event):
                trigger = flow.document.trigger
                assert isinstance(trigger, EventTrigger | ProfileChangeTrigger | SegmentEntryTrigger)
                if not await trigger_admits(conn, workspace_id, trigger, row["profile_id"], event, utcnow()):
                    continue
                entry = f"event:{event.id}"
                claim, _fresh = await claim_journey(
                    self.store, conn, workspace_id, flow, row["profile_id"], entry=entry, event=event
                )
                if claim is None:
                    result.refused.append((event.id, flow.flow_id))
                else:
                    claims.append(claim)
        return claims

    async def _route(
        self,
        workspace_id: str,
        rows: Sequence[dict[str, Any]],
        claims: list[JourneyInput],
        *,
        listened: set[str] | None = None,
    ) -> None:
        """Steps 2 and 3 of ``ingest``. ``listened``: the only ``rows`` a journey may hear, when
        the caller knows (``_quiet``); the others are marked routed without a look."""
        await asyncio.gather(*(start_journey(self.client, self.task_queue, c) for c in claims))
        await self._stop_if_stopped(workspace_id, claims)
        if not rows:
            return
        heard = rows if listened is None else [r for r in rows if r["id"] in listened]
        async with self.store.begin() as conn:
            # The journeys in flight that listen (the ones just started included).
            if heard:
                await self.route_to_journeys(conn, workspace_id, heard)
            await events_store.mark_routed(conn, workspace_id, [r["id"] for r in rows])

    async def _stop_if_stopped(self, workspace_id: str, claims: Sequence[JourneyInput]) -> None:
        """Stop the journeys just started whose flow was stopped since they were claimed. Their
        claims committed before the stop did (the routing generation's lock), so they are in
        flight for it; but the stop's signal may have come before they started (and missed
        them). Read after the starts: either this sees the stop, or the stop signalled later."""
        if not claims:
            return
        async with self.store.connect() as conn:
            statuses = await flow_statuses(conn, workspace_id, {c.flow.id for c in claims})
        for late in [c.journey_id for c in claims if statuses.get(c.flow.id) == "stopped"]:
            try:
                await self.client.get_workflow_handle(late).signal(
                    STOP_SIGNAL, StopRequest(reason="flow stopped")
                )
            except RPCError:
                pass  # it ended already
            except RuntimeError as error:  # cannot connect: as a failed start, retried the same way
                raise JourneyStartFailed(f"Temporal did not take the stop of {late}: {error}") from error

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
        """The flows whose trigger ``event`` satisfies by itself (flowline/flow/trigger_match.py;
        the rest of the trigger reads the store: ``trigger_admits``). A flow's own flow_entered /
        flow_exited never start it again (that would loop)."""
        return [f for f in flows if admits(f.document.trigger, f.flow_id, event.name, event.properties)]


def _event(row: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(
        id=row["id"], name=row["name"], timestamp=row["timestamp"], properties=row["properties"]
    )
