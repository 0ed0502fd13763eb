"""A flow's lifecycle (SPEC §3): publish, drain, stop, and its versions with journeys in flight.

draft → running (publish) → draining (drain) → stopped (stop); running → stopped too. Publishing
a draining, stopped or finished flow runs it again on the new version. ``finished`` is shown,
not set (flowline/store/lifecycle.py). Any other change is refused with 409 and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.service import RPCError

from api.body import CheckedRoute
from api.deps import Services, Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.schemas import FlowEntriesEnded, FlowPublished
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.journey import MOVE_SIGNAL, STOP_SIGNAL, MoveRequest, StopRequest
from flowline.store import flows, journeys, segments, workspaces
from flowline.store.flows import FlowStatus
from flowline.store.lifecycle import Action, flow_states, refusal
from launch.entry_schedules import SCHEDULED_TRIGGERS, remove_entry_schedule, sync_entry_schedule

router = APIRouter(route_class=CheckedRoute, prefix="/v1/flows", tags=["flows"], responses=AUTHENTICATED)

# Signals to journeys in flight go out this many at a time.
SIGNAL_CONCURRENCY = 20


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
    that wait at a step whose id version N+1 also has move to it (README: flow lifecycle)."""
    async with svc.store.begin() as conn:
        row = await flows.get_flow(conn, workspace, flow_id)
        if row is None:
            raise ApiError(404, f"no flow {flow_id!r}")
        # The draft was valid when saved; validate again in case the rules grew stricter since.
        document = parse_flow(row["draft"], max_steps=svc.settings.max_steps)
        missing = await segments.segment_faults(conn, workspace, document)
        if missing:
            raise FlowInvalid(missing)
        scheduled_before = await _scheduled(conn, workspace, flow_id)
        version = await flows.publish(conn, workspace, flow_id, document)
        # In the transaction: if Temporal cannot take the schedule, the version is not published.
        if scheduled_before or document.trigger.type in SCHEDULED_TRIGGERS:
            await _sync_schedule(conn, workspace, flow_id, svc)
        # Last (it waits for the event transactions in flight): every process routes by it once
        # this commits, before the publish is answered.
        await flows.bump_routing_generation(conn, workspace)
    svc.launcher.flows_changed(workspace)
    out: dict[str, Any] = {"id": flow_id, "status": "running", "version": version}
    if body is not None and body.move_journeys:
        async with svc.store.connect() as conn:
            older = await journeys.running_on_older_versions(conn, workspace, flow_id, version)
        request = MoveRequest(version=version, flow=document)
        out["journeys_asked_to_move"] = await _signal_all(svc, older, MOVE_SIGNAL, request)
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
    await _end_entries(flow_id, workspace, svc, "drain", "draining")
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
    await _end_entries(flow_id, workspace, svc, "stop", "stopped")
    async with svc.store.connect() as conn:
        running = await journeys.running_journey_ids(conn, workspace, flow_id)
    stopped = await _signal_all(svc, running, STOP_SIGNAL, StopRequest(reason="flow stopped"))
    return {"id": flow_id, "status": "stopped", "journeys_stopped": stopped}


async def _signal_all(svc: Services, journey_ids: Collection[str], name: str, payload: BaseModel) -> int:
    """Signal each journey, a bounded number at a time; returns how many took the signal (a
    journey that ended meanwhile does not)."""
    gate = asyncio.Semaphore(SIGNAL_CONCURRENCY)
    taken = 0

    async def signal(journey_id: str) -> None:
        nonlocal taken
        async with gate:
            with contextlib.suppress(RPCError):  # already ended
                await svc.temporal.get_workflow_handle(journey_id).signal(name, payload)
                taken += 1

    await asyncio.gather(*(signal(j) for j in journey_ids))
    return taken


async def _scheduled(conn: AsyncConnection, workspace: str, flow_id: str) -> bool:
    """Whether the flow's current version runs on an entry schedule (only then is there one)."""
    current = await flows.current_trigger_type(conn, workspace, flow_id)
    return current in SCHEDULED_TRIGGERS


async def _sync_schedule(conn: AsyncConnection, workspace: str, flow_id: str, svc: Services) -> None:
    published = await flows.current_version(conn, workspace, flow_id)
    assert published is not None
    zone = await workspaces.workspace_timezone(conn, workspace)
    try:
        await sync_entry_schedule(svc.temporal, svc.settings.task_queue, workspace, published, zone)
    except (RPCError, RuntimeError) as error:
        raise ApiError(
            503, f"the flow's entry schedule could not be set up ({error}); publish again"
        ) from error


async def _end_entries(
    flow_id: str, workspace: str, svc: Services, action: Action, status: FlowStatus
) -> None:
    async with svc.store.begin() as conn:
        state = (await flow_states(conn, workspace, flow_id, lock=True)).get(flow_id)
        if state is None:
            raise ApiError(404, f"no flow {flow_id!r}")
        refused = refusal(action, flow_id, state.status)
        if refused is not None:
            raise ApiError(409, refused)
        scheduled = await _scheduled(conn, workspace, flow_id)
        await flows.set_status(conn, workspace, flow_id, status)
        try:
            if scheduled:
                await remove_entry_schedule(svc.temporal, workspace, flow_id)
        except (RPCError, RuntimeError) as error:
            raise ApiError(
                503, f"the flow's entry schedule could not be removed ({error}); send again"
            ) from error
        # Last: it waits for the event transactions in flight (the journeys they claim are in
        # flight for the stop), and no process claims one for this flow once this commits.
        await flows.bump_routing_generation(conn, workspace)
    svc.launcher.flows_changed(workspace)
