"""Claiming a journey (its record under the re-entry rule) and starting its workflow: the two
halves every entry goes through, whether an event, the API, add_to_flow or a scheduled run."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from flowline.journey import JourneyInput, TriggerEvent, journey_id
from flowline.store import journeys
from flowline.store.database import Store, utcnow
from flowline.store.flows import PublishedFlow
from workflows import search_attributes as sa
from workflows.journey import JourneyWorkflow

log = logging.getLogger(__name__)


class JourneyStartFailed(RuntimeError):
    """Temporal did not take a journey or an event for one (unreachable, refusing): the
    transaction was rolled back."""


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
) -> tuple[JourneyInput | None, bool]:
    """Record the journey unless the re-entry rule refuses it: (its input, whether it was
    claimed now); a claim an earlier attempt of the same entry made is returned too."""
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
    except WorkflowAlreadyStartedError:
        # An earlier attempt started it and then lost its transaction: same journey.
        log.info("journey %s was already started", journey.journey_id)
    except (RPCError, RuntimeError) as error:  # the SDK raises RuntimeError when it cannot connect
        raise JourneyStartFailed(f"Temporal did not start journey {journey.journey_id}: {error}") from error
