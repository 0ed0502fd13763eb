"""A flow's lifecycle (docs/flows.md#lifecycle) as the API shows and changes it.

Stored: draft, running, draining, stopped. Shown: the stored status, except that a running or
draining flow whose entries have ended (its current version's end_at, or a year after it was
published, has passed) shows ``finished`` once no journey is in flight, and ``draining`` until
then (it takes no entries, the journeys in flight finish). Computed when read rather than
written by a timer: always exact, and publishing a new version needs nothing undone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.flow.steps import Step
from flowline.store import journeys
from flowline.store.database import utcnow
from flowline.store.flows import FlowStatus, published_flows
from flowline.store.tables import flows

Action = Literal["drain", "stop"]
# The shown statuses each action starts from (publish starts from any).
ALLOWED: dict[Action, tuple[FlowStatus, ...]] = {"drain": ("running",), "stop": ("running", "draining")}


@dataclass(frozen=True)
class FlowState:
    status: FlowStatus
    in_flight: int


def shown_status(stored: FlowStatus, *, entries_ended: bool, in_flight: int) -> FlowStatus:
    if stored in ("running", "draining") and entries_ended:
        return "draining" if in_flight else "finished"
    return stored


def refusal(action: Action, flow_id: str, status: FlowStatus) -> str | None:
    """Why ``action`` cannot happen to a flow in ``status`` (None: it can)."""
    if status in ALLOWED[action]:
        return None
    match status:
        case "draft":
            return f"flow {flow_id!r} is a draft: publish it first"
        case "draining":
            return f"flow {flow_id!r} is draining already"
        case "stopped":
            return f"flow {flow_id!r} is stopped already; publish it to run it again"
        case "finished":
            return (
                f"flow {flow_id!r} is finished: its end_at has passed and no journey is in flight; "
                "publish a version with a later end_at to run it again"
            )
    return f"flow {flow_id!r} is {status}"


async def flow_states(
    conn: AsyncConnection, workspace_id: str, flow_id: str | None = None, *, lock: bool = False
) -> dict[str, FlowState]:
    """The shown state of each flow of the workspace (or of ``flow_id``). ``lock``: hold the
    flows' rows until the transaction ends (PostgreSQL; SQLite serializes writers anyway)."""
    query = select(flows.c.id, flows.c.status).where(flows.c.workspace_id == workspace_id)
    if flow_id is not None:
        query = query.where(flows.c.id == flow_id)
    if lock:
        query = query.with_for_update()
    stored = {str(r.id): r.status for r in await conn.execute(query)}
    published = await published_flows(conn, workspace_id, flow_id)
    in_flight = await journeys.in_flight_by_flow(conn, workspace_id, flow_id)
    now = utcnow()
    states = {}
    for fid, status in stored.items():
        end = published[fid].entries_end() if fid in published else None
        count = in_flight.get(fid, 0)
        shown = shown_status(status, entries_ended=end is not None and now >= end, in_flight=count)
        states[fid] = FlowState(shown, count)
    return states


# The statuses whose flows still run journeys that may reach any of their steps.
IN_USE: tuple[FlowStatus, ...] = ("running", "draining")


async def flows_with_step(
    conn: AsyncConnection, workspace_id: str, uses: Callable[[Step], bool], *, lock: bool = False
) -> list[str]:
    """The running (or draining) flows whose current version has a step for which ``uses`` holds
    (one that names a destination, an element...). ``lock``: hold the flows' rows, so that no
    publish can start using the thing before the caller commits."""
    states = await flow_states(conn, workspace_id, lock=lock)
    using = []
    for flow in (await published_flows(conn, workspace_id)).values():
        state = states.get(flow.flow_id)
        if state is not None and state.status in IN_USE and any(uses(step) for step in flow.document.steps):
            using.append(flow.flow_id)
    return sorted(using)
