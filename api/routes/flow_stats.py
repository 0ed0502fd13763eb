"""Flow statistics: per version and step, from the store (exact under retries and crashes)."""

from __future__ import annotations

from fastapi import APIRouter

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, errors
from flowline.stats.report import FlowStats, flow_stats
from flowline.store import flow_stats as counts_store
from flowline.store import flows

router = APIRouter(route_class=CheckedRoute, prefix="/v1/flows", tags=["flows"], responses=AUTHENTICATED)


@router.get(
    "/{flow_id}/stats",
    response_model=FlowStats,
    responses=errors(404),
    summary="Entries, steps, sends, exits, goals, splits",
)
async def get_flow_stats(flow_id: str, workspace: Workspace, svc: Svc) -> FlowStats:
    """Per version: journeys entered and running, exits by status and reason, goal conversions;
    per step: visits, journeys at the step now, visits that left by branch, errors; per send and
    webhook step: sends, deliveries, opens, clicks; per split: each variant's conversion with a
    z-test p-value and the probability to beat the baseline, and the control group's lift.

    Steps count the visits the journeys have recorded: at their end, and before each wait of a
    minute or more (a journey shows at such a wait while it waits)."""
    async with svc.store.connect() as conn:
        if await flows.get_flow(conn, workspace, flow_id) is None:
            raise ApiError(404, f"no flow {flow_id!r}")
        versions = await flows.list_versions(conn, workspace, flow_id)
        documents = await flows.version_documents(
            conn, workspace, [(flow_id, v["version"]) for v in versions]
        )
        counts = await counts_store.flow_counts(conn, workspace, flow_id)
    return flow_stats(flow_id, {version: doc for (_, version), doc in documents.items()}, counts)
