"""The workspace's own settings: its time zone."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import RPCError

from flowline.store import flows, workspaces
from flowline.store.database import Store
from flowline.store.lifecycle import flow_states
from launch.entry_schedules import reads_workspace_zone, sync_entry_schedule
from services.errors import TemporalUnavailable


async def change_zone(
    store: Store, temporal: Client, task_queue: str, workspace_id: str, zone: str | None
) -> None:
    """Set the zone of wall-clock times (pauses, date waits, windows) of people without a
    ``timezone`` attribute (None: UTC). The entry schedules of running flows that read the
    workspace's zone follow it in the same transaction: if Temporal refuses one, the zone is not
    changed either (TemporalUnavailable)."""
    async with store.begin() as conn:
        # The flows' rows before the workspace's, as publish, stop and drain lock them (no deadlock).
        states = await flow_states(conn, workspace_id, lock=True)
        await workspaces.set_workspace_timezone(conn, workspace_id, zone)
        for flow in (await flows.published_flows(conn, workspace_id)).values():
            state = states.get(flow.flow_id)
            if state is None or state.status != "running" or not reads_workspace_zone(flow):
                continue
            try:
                await sync_entry_schedule(temporal, task_queue, workspace_id, flow, zone)
            except (RPCError, RuntimeError) as error:
                raise TemporalUnavailable(
                    f"the entry schedule of flow {flow.flow_id!r} could not follow the time zone ({error})"
                ) from error
