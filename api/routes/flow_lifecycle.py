"""A flow's lifecycle over HTTP: publish, drain, stop (services/flow_lifecycle.py), and its
versions with journeys in flight. A change its status does not allow is refused with 409."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.schemas import FlowEntriesEnded, FlowPublished
from flowline.store import flows, journeys
from flowline.store.lifecycle import flow_states
from services import flow_lifecycle

router = APIRouter(route_class=CheckedRoute, prefix="/v1/flows", tags=["flows"], responses=AUTHENTICATED)


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    move_journeys: bool = Field(
        default=False,
        description="move journeys of older versions that wait at a step whose id the new version "
        "has to that step of the new version; the others stay on their version",
    )


@router.get(
    "/{flow_id}/versions", responses=errors(404), summary="Published versions with their journeys in flight"
)
async def list_versions(flow_id: str, workspace: Workspace, svc: Svc) -> dict[str, Any]:
    """Each version: when it was published, how many journeys entered it (or moved to it) and how
    many of them are in flight; and the totals over all versions."""
    async with svc.store.connect() as conn:
        state = (await flow_states(conn, workspace, flow_id)).get(flow_id)
        if state is None:
            raise ApiError(404, f"no flow {flow_id!r}")
        row = await flows.get_flow(conn, workspace, flow_id)
        versions = await flows.list_versions(conn, workspace, flow_id)
        counts = await journeys.counts_by_version(conn, workspace, flow_id)
    current = row["current_version"] if row else None
    listed = [
        {
            **v,
            "current": v["version"] == current,
            "journeys": counts.get(v["version"], (0, 0))[0],
            "in_flight": counts.get(v["version"], (0, 0))[1],
        }
        for v in versions
    ]
    return {
        "id": flow_id,
        "status": state.status,
        "versions": listed,
        "journeys": sum(v["journeys"] for v in listed),
        "in_flight": sum(v["in_flight"] for v in listed),
    }


@router.post(
    "/{flow_id}/publish",
    response_model=FlowPublished,
    response_model_exclude_none=True,
    responses={**WITH_BODY, **errors(404)},
    summary="Publish the draft as a new version (also resumes a flow)",
)
async def publish_flow(
    flow_id: str, workspace: Workspace, svc: Svc, body: PublishIn | None = None
) -> dict[str, Any]:
    """The draft becomes version N+1, the one new entries use; journeys in flight keep their
    version. Allowed from every status: publishing a draining, stopped or finished flow runs it
    again (entries resume, on the new version). With ``move_journeys``, journeys of older versions
    that wait at a step whose id version N+1 also has move to it
    (docs/flows.md, "Moving journeys to a new version")."""
    move = body is not None and body.move_journeys
    published = await flow_lifecycle.publish_flow(
        svc.launcher, workspace, flow_id, max_steps=svc.settings.max_steps, move_journeys=move
    )
    out: dict[str, Any] = {"id": flow_id, "status": "running", "version": published.version}
    if move:
        out["journeys_asked_to_move"] = published.journeys_asked_to_move
    return out


@router.post(
    "/{flow_id}/drain",
    response_model=FlowEntriesEnded,
    response_model_exclude_none=True,
    responses=errors(404, 409),
    summary="Take no new entries; journeys in flight finish",
)
async def drain_flow(flow_id: str, workspace: Workspace, svc: Svc) -> dict[str, Any]:
    """Only a running flow drains. Events, API starts (409), schedules and add_to_flow steps (their
    failover branch) find it closed; publish runs it again."""
    await flow_lifecycle.drain_flow(svc.launcher, workspace, flow_id)
    return {"id": flow_id, "status": "draining"}


@router.post(
    "/{flow_id}/stop",
    response_model=FlowEntriesEnded,
    response_model_exclude_none=True,
    responses=errors(404, 409),
    summary="Take no new entries and stop every journey in flight",
)
async def stop_flow(flow_id: str, workspace: Workspace, svc: Svc) -> dict[str, Any]:
    """A running or draining flow stops: every journey in flight, of every version, ends as
    ``stopped`` with the reason "flow stopped". Publish runs it again."""
    stopped = await flow_lifecycle.stop_flow(svc.launcher, workspace, flow_id)
    return {"id": flow_id, "status": "stopped", "journeys_stopped": stopped}
