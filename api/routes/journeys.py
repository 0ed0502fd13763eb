"""Journeys: listing from the store, detail from the workflow itself while it can answer."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from temporalio.service import RPCError

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.schemas import MAX_OFFSET, JourneyDetail, JourneyStopping, JourneySummary
from flowline.journey import JourneyState
from flowline.store import journey_steps, journeys
from services import journeys as journey_use_cases

router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/journeys", tags=["journeys"], responses=AUTHENTICATED
)
log = logging.getLogger(__name__)


@router.get("", responses=errors(422), summary="Journeys by flow and/or profile, newest first")
async def list_journeys(
    workspace: Workspace,
    svc: Svc,
    flow: str | None = None,
    profile: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> dict[str, list[JourneySummary]]:
    async with svc.store.connect() as conn:
        rows = await journeys.list_journeys(
            conn, workspace, flow_id=flow, profile_id=profile, limit=limit, offset=offset
        )
        current = await journey_steps.current_steps(conn, rows)
    return {"journeys": [JourneySummary.model_validate(r | {"current_step": current[r["id"]]}) for r in rows]}


@router.get(
    "/{journey_id}",
    response_model=JourneyDetail,
    responses=errors(404),
    summary="Current step, path taken and variables",
)
async def get_journey(journey_id: str, workspace: Workspace, svc: Svc) -> JourneyDetail:
    async with svc.store.connect() as conn:
        row = await journeys.get_journey(conn, workspace, journey_id)
        if row is None:
            raise ApiError(404, f"no journey {journey_id!r}")
        stored = await journey_steps.path_of(conn, workspace, journey_id)
        row["current_step"] = (await journey_steps.current_steps(conn, [row]))[journey_id]
    state: JourneyState | None = None
    try:
        handle = svc.temporal.get_workflow_handle(journey_id)
        state = await asyncio.wait_for(handle.query("state", result_type=JourneyState), timeout=5)
    except (RPCError, TimeoutError) as error:
        # No worker to answer, or the history is past retention: the stored record still answers.
        log.info("journey %s: query unavailable (%s)", journey_id, error)
    return JourneyDetail.build(row, state, stored)


class StopJourneyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="stopped through the API", min_length=1, max_length=200)


@router.post(
    "/{journey_id}/stop",
    response_model=JourneyStopping,
    status_code=202,
    responses={**WITH_BODY, **errors(404, 409)},
    summary="Stop a journey in flight at once",
)
async def stop_journey(
    journey_id: str, workspace: Workspace, svc: Svc, body: StopJourneyIn | None = None
) -> dict[str, str]:
    """The journey leaves at once from any step (also mid-pause or mid-wait) and records its end as
    ``stopped`` with the reason."""
    reason = (body or StopJourneyIn()).reason
    await journey_use_cases.stop_journey(svc.store, svc.temporal, workspace, journey_id, reason)
    return {"journey_id": journey_id, "status": "stopping", "reason": reason}
