"""A flow's lifecycle: publish, drain and stop (docs/flows.md#lifecycle).

draft → running (publish) → draining (drain) → stopped (stop); running → stopped too. Publishing
a draining, stopped or finished flow runs it again on the new version. ``finished`` is shown,
not set (flowline/store/lifecycle.py). Any other change is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.service import RPCError

from flowline.flow.document import FlowDocument
from flowline.flow.validation import FlowFault, FlowInvalid, parse_flow
from flowline.journey import MoveRequest, StopRequest
from flowline.store import destinations, flows, journeys, segments, workspaces
from flowline.store.database import Store
from flowline.store.flows import FlowStatus
from flowline.store.lifecycle import Action, flow_states, refusal
from launch.entry_schedules import SCHEDULED_TRIGGERS, remove_entry_schedule, sync_entry_schedule
from launch.routing import JourneyLauncher
from launch.signals import signal_journeys
from services.elements import element_faults
from services.errors import NotFound, Refused, TemporalUnavailable
from workflows.journey import JourneyWorkflow


@dataclass(frozen=True)
class Published:
    version: int
    # With ``move_journeys``: how many journeys of older versions took the move (None: not asked).
    journeys_asked_to_move: int | None = None


async def reference_faults(
    conn: AsyncConnection, workspace_id: str, document: FlowDocument
) -> list[FlowFault]:
    """What a flow names that the workspace lacks or that does not fit (segments, destinations,
    custom elements), each with its path: what publish refuses, and `validate` with references
    checks before (``flowline validate --remote``)."""
    faults = await segments.segment_faults(conn, workspace_id, document)
    faults += await destinations.destination_faults(conn, workspace_id, document)
    faults += await element_faults(conn, workspace_id, document)
    return faults


async def check_references(store: Store, workspace_id: str, document: FlowDocument) -> None:
    """Raise FlowInvalid with every reference fault of ``document`` (see reference_faults)."""
    async with store.connect() as conn:
        faults = await reference_faults(conn, workspace_id, document)
    if faults:
        raise FlowInvalid(faults)


async def publish_flow(
    launcher: JourneyLauncher,
    workspace_id: str,
    flow_id: str,
    *,
    max_steps: int,
    move_journeys: bool = False,
) -> Published:
    """The draft becomes version N+1, the one new entries use; journeys in flight keep their
    version, or with ``move_journeys`` those of older versions that wait at a step whose id
    version N+1 also has move to it. Raises NotFound, FlowInvalid (the draft no longer
    validates), TemporalUnavailable (the entry schedule: nothing was published)."""
    async with launcher.store.begin() as conn:
        row = await flows.get_flow(conn, workspace_id, flow_id)
        if row is None:
            raise NotFound(f"no flow {flow_id!r}")
        # The draft was valid when saved; validate again in case the rules grew stricter since.
        document = parse_flow(row["draft"], max_steps=max_steps)
        missing = await reference_faults(conn, workspace_id, document)
        if missing:
            raise FlowInvalid(missing)
        scheduled_before = await _scheduled(conn, workspace_id, flow_id)
        version = await flows.publish(conn, workspace_id, flow_id, document)
        # In the transaction: if Temporal cannot take the schedule, the version is not published.
        if scheduled_before or document.trigger.type in SCHEDULED_TRIGGERS:
            await _sync_schedule(conn, launcher, workspace_id, flow_id)
        # Last (it waits for the event transactions in flight): every process routes by it once
        # this commits, before the publish is answered.
        await flows.bump_routing_generation(conn, workspace_id)
    launcher.flows_changed(workspace_id)
    if not move_journeys:
        return Published(version)
    async with launcher.store.connect() as conn:
        older = await journeys.running_on_older_versions(conn, workspace_id, flow_id, version)
    request = MoveRequest(version=version, flow=document)
    moved = await signal_journeys(launcher.client, older, JourneyWorkflow.move, request)
    return Published(version, journeys_asked_to_move=moved)


async def drain_flow(launcher: JourneyLauncher, workspace_id: str, flow_id: str) -> None:
    """Take no new entries; journeys in flight finish. Only a running flow drains. Events, API
    starts, schedules and add_to_flow steps (their failover branch) find it closed; publish runs
    it again. Raises NotFound, Refused, TemporalUnavailable (the entry schedule: nothing
    changed)."""
    await _end_entries(launcher, workspace_id, flow_id, "drain", "draining")


async def stop_flow(launcher: JourneyLauncher, workspace_id: str, flow_id: str) -> int:
    """Take no new entries and stop every journey in flight, of every version (they end as
    ``stopped``, reason "flow stopped"); returns how many took the stop. A running or draining
    flow stops; publish runs it again. Raises as ``drain_flow``."""
    await _end_entries(launcher, workspace_id, flow_id, "stop", "stopped")
    async with launcher.store.connect() as conn:
        running = await journeys.running_journey_ids(conn, workspace_id, flow_id)
    stop = StopRequest(reason="flow stopped")
    return await signal_journeys(launcher.client, running, JourneyWorkflow.stop, stop)


async def _scheduled(conn: AsyncConnection, workspace_id: str, flow_id: str) -> bool:
    """Whether the flow's current version runs on an entry schedule (only then is there one)."""
    current = await flows.current_trigger_type(conn, workspace_id, flow_id)
    return current in SCHEDULED_TRIGGERS


async def _sync_schedule(
    conn: AsyncConnection, launcher: JourneyLauncher, workspace_id: str, flow_id: str
) -> None:
    published = await flows.current_version(conn, workspace_id, flow_id)
    assert published is not None
    zone = await workspaces.workspace_timezone(conn, workspace_id)
    try:
        await sync_entry_schedule(launcher.client, launcher.task_queue, workspace_id, published, zone)
    except (RPCError, RuntimeError) as error:
        raise TemporalUnavailable(
            f"the flow's entry schedule could not be set up ({error}); publish again"
        ) from error


async def _end_entries(
    launcher: JourneyLauncher, workspace_id: str, flow_id: str, action: Action, status: FlowStatus
) -> None:
    async with launcher.store.begin() as conn:
        state = (await flow_states(conn, workspace_id, flow_id, lock=True)).get(flow_id)
        if state is None:
            raise NotFound(f"no flow {flow_id!r}")
        refused = refusal(action, flow_id, state.status)
        if refused is not None:
            raise Refused(refused)
        scheduled = await _scheduled(conn, workspace_id, flow_id)
        await flows.set_status(conn, workspace_id, flow_id, status)
        try:
            if scheduled:
                await remove_entry_schedule(launcher.client, workspace_id, flow_id)
        except (RPCError, RuntimeError) as error:
            raise TemporalUnavailable(
                f"the flow's entry schedule could not be removed ({error}); send again"
            ) from error
        # Last: it waits for the event transactions in flight (the journeys they claim are in
        # flight for the stop), and no process claims one for this flow once this commits.
        await flows.bump_routing_generation(conn, workspace_id)
    launcher.flows_changed(workspace_id)
