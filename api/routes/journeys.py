"""Journeys: listing from the store, detail from the workflow itself while it can answer."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Query
from temporalio.service import RPCError

from api.deps import Svc, Workspace
from api.errors import ApiError
from api.schemas import JourneyDetail, JourneySummary
from flowline.journey import JourneyState
from flowline.store import journeys

router = APIRouter(prefix="/v1/journeys", tags=["journeys"])
log = logging.getLogger(__name__)


@router.get("", summary="Journeys by flow and/or profile, newest first")
async def list_journeys(
    workspace: Workspace,
    svc: Svc,
    flow: str | None = None,
    profile: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, list[JourneySummary]]:
    async with svc.store.connect() as conn:
        rows = await journeys.list_journeys(
            conn, workspace, flow_id=flow, profile_id=profile, limit=limit, offset=offset
        )
    return {"journeys": [JourneySummary.model_validate(r) for r in rows]}


@router.get("/{journey_id}", response_model=JourneyDetail, summary="Current step, path taken and variables")
async def get_journey(journey_id: str, workspace: Workspace, svc: Svc) -> JourneyDetail:
    async with svc.store.connect() as conn:
        row = await journeys.get_journey(conn, workspace, journey_id)
    if row is None:
        raise ApiError(404, f"no journey {journey_id!r}")
    state: JourneyState | None = None
    try:
        handle = svc.temporal.get_workflow_handle(journey_id)
        state = await asyncio.wait_for(handle.query("state", result_type=JourneyState), timeout=5)
    except (RPCError, TimeoutError) as error:
        # No worker to answer, or the history is past retention: the stored record still answers.
        log.info("journey %s: query unavailable (%s)", journey_id, error)
    return JourneyDetail.build(row, state)
