"""Claiming a journey (its record under the re-entry rule) and starting its workflow: the two
halves every entry goes through, whether an event, the API, add_to_flow or a scheduled run; and
the entries that name their people directly (``start_entry``: the API and add_to_flow;
``start_batch``: a scheduled audience or date run). Events start theirs in launch/routing.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from flowline import metrics
from flowline.flow.variables import variable_faults
from flowline.journey import JourneyInput, JourneyLimits, StopRequest, TriggerEvent, journey_id
from flowline.store import journeys
from flowline.store.database import Store, utcnow
from flowline.store.events import SystemEvents
from flowline.store.flows import PublishedFlow, flow_status, flow_statuses, routing_generation
from launch.signals import SignalNotTaken, signal_journeys
from workflows import search_attributes as sa
from workflows.journey import JourneyWorkflow

log = logging.getLogger(__name__)


class JourneyStartFailed(RuntimeError):
    """Temporal did not take a journey or an event for one (unreachable, refusing): the
    transaction was rolled back."""


class EntryRefused(ValueError):
    """The flow takes no entry now (start_at / end_at), or the given variables do not fit."""

    def __init__(self, reason: str, faults: list[tuple[str, str]] | None = None) -> None:
        super().__init__(reason)
        self.faults = faults or []


@dataclass(frozen=True)
class BatchEntry:
    """One journey of ``start_batch``: who, which entry (names the journey), and
    when it starts (None: now; a later instant: Temporal holds the start until then)."""

    profile_id: str
    entry: str
    start_at: datetime | None = None


async def claim_journey(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    flow: PublishedFlow,
    profile_id: str,
    *,
    entry: str,
    event: TriggerEvent | None = None,
    variables: dict[str, Any] | None = None,
    entered: SystemEvents | None = None,
) -> tuple[JourneyInput | None, bool]:
    """Record the journey unless the re-entry rule refuses it: (its input, whether it was
    claimed now); a claim an earlier attempt of the same entry made is returned too.
    ``entered``: its ``flow_entered`` is gathered there, for the caller to write with the others
    of its transaction (``SystemEvents.write``)."""
    document = flow.document
    settings = document.settings
    entry_key = entry
    if settings.entry_key and event is not None and settings.entry_key in event.properties:
        entry_key = str(event.properties[settings.entry_key])
    jid = journey_id(workspace_id, flow.flow_id, profile_id, entry)
    claimed = await journeys.claim_entry(
        store,
        conn,
        journey_id=jid,
        workspace_id=workspace_id,
        flow_id=flow.flow_id,
        version=flow.version,
        profile_id=profile_id,
        lock=journeys.entry_lock(settings.reentry, entry_key),
        trigger_event_id=event.id if event else None,
        started_at=utcnow(),
        into=entered,
    )
    if not claimed and await journeys.get_journey(conn, workspace_id, jid) is None:
        return None, False  # the re-entry rule keeps the person out
    # Claimed now, or by an earlier attempt of the same entry that may not have started it.
    journey = JourneyInput(
        journey_id=jid,
        workspace_id=workspace_id,
        flow=document,
        version=flow.version,
        profile_id=profile_id,
        event=event,
        variables=variables or {},
    )
    return journey, claimed


async def start_journey(
    client: Client, task_queue: str, journey: JourneyInput, *, start_delay: timedelta | None = None
) -> None:
    try:
        await client.start_workflow(
            JourneyWorkflow.run,
            journey,
            id=journey.journey_id,
            task_queue=task_queue,
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
            start_delay=start_delay if start_delay and start_delay > timedelta(0) else None,
        )
        metrics.JOURNEYS_STARTED.labels("event" if journey.event is not None else "entry").inc()
    except WorkflowAlreadyStartedError:
        # An earlier attempt started it and then lost its transaction: same journey.
        log.info("journey %s was already started", journey.journey_id)
    except (RPCError, RuntimeError) as error:  # the SDK raises RuntimeError when it cannot connect
        raise JourneyStartFailed(f"Temporal did not start journey {journey.journey_id}: {error}") from error


async def start_entry(
    store: Store,
    client: Client,
    task_queue: str,
    workspace_id: str,
    flow: PublishedFlow,
    profile_id: str,
    *,
    entry: str,
    variables: dict[str, Any] | None = None,
    limits: JourneyLimits | None = None,
) -> str | None:
    """Start one journey (an API call, add_to_flow); None when the flow's re-entry rule refuses
    it. Raises EntryRefused outside the flow's entry window or for variables that do not fit."""
    reason = flow.closed_reason(utcnow())
    if reason is not None:
        raise EntryRefused(reason)
    faults = variable_faults(flow.document.settings, variables or {})
    if faults:
        raise EntryRefused("variables do not fit their declarations", faults)
    async with store.begin() as conn:
        # ``flow`` was read before this transaction: a stop or drain committed since (through
        # any process) closes it. The generation's lock holds off one in progress until the
        # claim commits: then the stop finds the journey in flight.
        await routing_generation(conn, workspace_id)
        status = await flow_status(conn, workspace_id, flow.flow_id)
        if status != "running":
            raise EntryRefused(f"flow {flow.flow_id!r} is {status or 'gone'}: it takes no new entries")
        claim, fresh = await claim_journey(
            store, conn, workspace_id, flow, profile_id, entry=entry, variables=variables
        )
        if claim is None:
            return None
    if limits is not None:
        claim.limits = limits
    # Started once the claim is committed (no transaction waits on Temporal).
    try:
        await start_journey(client, task_queue, claim)
    except JourneyStartFailed:
        if fresh:
            # Nobody may retry this entry: give the re-entry lock back.
            async with store.begin() as conn:
                await journeys.forget_claim(conn, claim.journey_id)
        raise
    await stop_if_stopped(store, client, workspace_id, [claim])
    return claim.journey_id


async def start_batch(
    store: Store,
    client: Client,
    task_queue: str,
    workspace_id: str,
    flow: PublishedFlow,
    entries: Sequence[BatchEntry],
    *,
    concurrency: int = 50,
    gate: asyncio.Semaphore | None = None,
) -> list[str]:
    """Start the journeys of many entries of one flow (a scheduled audience or date run).

    One transaction claims them all (two statements; the re-entry rules as in ``start_entry``),
    then at most ``concurrency`` starts are in flight, outside it (or as many as ``gate``, shared
    by batches that overlap). An entry an earlier attempt
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
    async with store.begin() as conn:
        # The run read its flow when it began: a stop or drain committed since (through any
        # process) ends its entries here, and one in progress waits for this claim (the
        # generation's lock), which it then finds in flight.
        await routing_generation(conn, workspace_id)
        if await flow_status(conn, workspace_id, flow.flow_id) != "running":
            return []
        claimed = await journeys.claim_entries(store, conn, rows)
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
            await start_journey(client, task_queue, journey, start_delay=delay)

    outcomes = await asyncio.gather(*(start(j) for j in inputs), return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        raise JourneyStartFailed(f"{len(failures)} of {len(inputs)} journeys did not start: {failures[0]}")
    await stop_if_stopped(store, client, workspace_id, inputs)
    return [j.journey_id for j in inputs]


async def stop_if_stopped(
    store: Store,
    client: Client,
    workspace_id: str,
    claims: Sequence[JourneyInput],
    *,
    conn: AsyncConnection | None = None,
) -> None:
    """Stop the journeys just started whose flow was stopped since they were claimed. Their
    claims committed before the stop did (the routing generation's lock), so they are in
    flight for it; but the stop's signal may have come before they started (and missed
    them). Read after the starts: either this sees the stop, or the stop signalled later.
    ``conn``: read in the caller's transaction (before any write of it) instead of a
    connection of its own."""
    if not claims:
        return
    flow_ids = {c.flow.id for c in claims}
    if conn is not None:
        statuses = await flow_statuses(conn, workspace_id, flow_ids)
    else:
        async with store.connect() as own:
            statuses = await flow_statuses(own, workspace_id, flow_ids)
    late = [c.journey_id for c in claims if statuses.get(c.flow.id) == "stopped"]
    try:
        # One that ended already, or whose stop Temporal refused, is left as it is.
        await signal_journeys(client, late, JourneyWorkflow.stop, StopRequest(reason="flow stopped"))
    except SignalNotTaken as error:  # cannot connect: as a failed start, retried the same way
        raise JourneyStartFailed(
            f"Temporal did not take the stop of {error.journey_id}: {error.error}"
        ) from error
