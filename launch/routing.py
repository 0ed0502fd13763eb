"""Routing events: an event becomes journeys of the flows it triggers, and signals to the
journeys in flight that listen (launch/event_routing.py). ``JourneyLauncher`` is the one entry
point of the client side: it also starts the entries that name their people (the API,
add_to_flow, scheduled runs: launch/journey_start.py).

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
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client

from flowline import metrics
from flowline.flow.trigger_match import admits, trigger_event
from flowline.flow.triggers import EventTrigger, ProfileChangeTrigger, SegmentEntryTrigger
from flowline.journey import JourneyInput, JourneyLimits, TriggerEvent
from flowline.store import events as events_store
from flowline.store import leases
from flowline.store.database import Store, utcnow
from flowline.store.flows import (
    PublishedFlow,
    event_triggered_flows,
    routing_generation,
)
from flowline.store.profiles import ensure_profiles
from flowline.store.trigger_gate import trigger_admits
from flowline.ttl_cache import TtlCache
from launch.changes_behind import ChangesBehind
from launch.event_routing import EventRouter, ProfileEvent, Routed, RoutingFailed
from launch.journey_start import (
    BatchEntry,
    JourneyStartFailed,
    claim_journey,
    start_batch,
    start_entry,
    start_journey,
    stop_if_stopped,
)
from launch.segment_watch import SegmentWatch

log = logging.getLogger(__name__)
# The lease of the sweep (flowline/store/leases.py): one sweeping process at a time.
SWEEP_LEASE = "sweep-unrouted-events"
# An event sent again while unrouted is routed by the resend only once the process that stored
# it had this long to route it (or at once if its routing failed): the same event sent to two
# APIs at once is routed by one of them, not both.
RESEND_GRACE = timedelta(seconds=10)


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
        # Changes an import stored, routed after its answer (route_profiles, one at a time).
        self.behind = ChangesBehind(self.route_profiles, self.after_data_change)
        self.resend_grace = RESEND_GRACE

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
        """``start_entry`` with this launcher's store, client and task queue."""
        return await start_entry(
            self.store,
            self.client,
            self.task_queue,
            workspace_id,
            flow,
            profile_id,
            entry=entry,
            variables=variables,
            limits=limits,
        )

    async def start_batch(
        self,
        workspace_id: str,
        flow: PublishedFlow,
        entries: Sequence[BatchEntry],
        *,
        concurrency: int = 50,
        gate: asyncio.Semaphore | None = None,
    ) -> list[str]:
        """``start_batch`` with this launcher's store, client and task queue."""
        return await start_batch(
            self.store,
            self.client,
            self.task_queue,
            workspace_id,
            flow,
            entries,
            concurrency=concurrency,
            gate=gate,
        )

    async def ingest(
        self, workspace_id: str, rows: list[dict[str, Any]], *, stored_here: bool = False
    ) -> IngestResult:
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
        unrouted: the same events sent again, or the sweeper (``sweep``), route them. An unrouted
        event sent again within ``resend_grace`` of its first storing is left to the process that
        stored it (it may be routing it now), unless that routing failed. ``stored_here``: the
        caller stored these events itself, in its own transaction, and routes them now (no grace).
        An event triggers flows until it is routed; a journey's id derives from its event, so a second
        attempt finds its claim and starts the same journey, never another one.
        """
        result = IngestResult()
        if not rows:
            return result
        people = {r["profile_id"] for r in rows}
        # PostgreSQL, a batch of several people: the people first, in a transaction of their own:
        # a new profile's row stays locked until its transaction ends, and another batch naming
        # the same person would wait for the whole store-and-claim transaction. With one person
        # that wait is the same whichever transaction creates the profile (each later lock of
        # the transaction concerns that person), so it joins the events' transaction: one commit
        # fewer per event. (SQLite locks the whole file for any write: always one transaction.)
        apart = self.store.dialect == "postgresql" and len(people) > 1
        if apart:
            async with self.store.begin() as conn:
                await ensure_profiles(self.store, conn, workspace_id, people, read_first=True)
        async with self.store.begin() as conn:
            flows = await self._open_flows(conn, workspace_id)
            if not apart:
                await ensure_profiles(self.store, conn, workspace_id, people, read_first=True)
            quiet, listened = await self._quiet(conn, workspace_id, flows, rows)
            result.stored = await events_store.insert_events(
                self.store, conn, workspace_id, rows, routed=quiet
            )
            # Events sent before whose routing did not finish are routed now (as stored then),
            # unless the process that stored them may be routing them right now.
            earlier = [r["id"] for r in rows if r["id"] not in result.stored]
            pending = [r for r in rows if r["id"] in result.stored and r["id"] not in quiet]
            retried = await events_store.unrouted_by_id(
                conn,
                workspace_id,
                earlier,
                settled_before=None if stored_here else utcnow() - self.resend_grace,
            )
            pending += retried
            listened |= {r["id"] for r in retried}
            claims = await self._claims(conn, workspace_id, flows, pending, result)
        # Stored from here on, whether or not their routing below succeeds.
        metrics.EVENTS_INGESTED.labels("stored").inc(len(result.stored))
        metrics.EVENTS_INGESTED.labels("duplicate").inc(len(rows) - len(result.stored))
        try:
            await self._route(workspace_id, pending, claims, listened=listened)
        except JourneyStartFailed:
            # The events stay unrouted; sent again, they are routed at once (no grace).
            async with self.store.begin() as conn:
                ids = [r["id"] for r in pending]
                await events_store.record_routing_failure(self.store, conn, workspace_id, ids)
            raise
        result.journeys = [c.journey_id for c in claims]
        await self.after_data_change(
            workspace_id, {r["profile_id"] for r in rows}, event_names={r["name"] for r in rows}
        )
        return result

    async def quiet(
        self, conn: AsyncConnection, workspace_id: str, rows: Sequence[dict[str, Any]]
    ) -> set[str]:
        """Of these events about to be stored, the ids of those no flow and no journey in flight
        concerns (``_quiet``): stored routed, they cost no routing (most of an import's changes)."""
        flows = await self._open_flows(conn, workspace_id)
        return (await self._quiet(conn, workspace_id, flows, rows))[0]

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
        the only router of those an activity writes). Returns how many events it routed: 0 when
        another process sweeps now (one sweep at a time across the processes of a database)."""
        async with leases.exclusive(self.store, SWEEP_LEASE) as held:
            if not held:
                return 0  # another process sweeps now: its sweep routes these events
            return await self._sweep(older_than, engine_older_than, limit, workspace_id)

    async def _sweep(
        self,
        older_than: timedelta,
        engine_older_than: timedelta | None,
        limit: int,
        workspace_id: str | None,
    ) -> int:
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
        # The claims' flow_entered events: one INSERT for all of them, after the claims.
        entered = events_store.SystemEvents(workspace_id)
        for row in rows:
            event = _event(row)
            for flow in self.targets(flows, event):
                trigger = flow.document.trigger
                assert isinstance(trigger, EventTrigger | ProfileChangeTrigger | SegmentEntryTrigger)
                if not await trigger_admits(conn, workspace_id, trigger, row["profile_id"], event, utcnow()):
                    continue
                entry = f"event:{event.id}"
                claim, _fresh = await claim_journey(
                    self.store,
                    conn,
                    workspace_id,
                    flow,
                    row["profile_id"],
                    entry=entry,
                    event=event,
                    entered=entered,
                )
                if claim is None:
                    result.refused.append((event.id, flow.flow_id))
                else:
                    claims.append(claim)
        await entered.write(conn)
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
        if not rows:
            await stop_if_stopped(self.store, self.client, workspace_id, claims)
            return
        heard = rows if listened is None else [r for r in rows if r["id"] in listened]
        async with self.store.begin() as conn:
            # The stop check of the journeys just started reads in this transaction, before its
            # writes (on SQLite the write lock is not held yet): one transaction fewer per event.
            await stop_if_stopped(self.store, self.client, workspace_id, claims, conn=conn)
            # The journeys in flight that listen (the ones just started included).
            if heard:
                await self.route_to_journeys(conn, workspace_id, heard)
            await events_store.mark_routed(conn, workspace_id, [r["id"] for r in rows])

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
