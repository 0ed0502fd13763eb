"""One journey: start it for a person (the API's entries), or stop it in flight."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client

from flowline.journey import StopRequest
from flowline.store import flows, journeys, profiles
from flowline.store.database import Store
from flowline.store.lifecycle import flow_states
from launch.journey_start import EntryRefused, JourneyStartFailed
from launch.routing import JourneyLauncher
from launch.signals import SignalNotTaken, signal_journey
from services.errors import Invalid, NotFound, Refused, TemporalUnavailable
from workflows.journey import JourneyWorkflow


@dataclass(frozen=True)
class Started:
    journey_id: str
    version: int


async def start_journey(
    launcher: JourneyLauncher,
    workspace_id: str,
    flow_id: str,
    profile_id: str,
    *,
    entry_id: str | None = None,
    variables: dict[str, Any] | None = None,
) -> Started:
    """Start a journey of the flow's current version for the person (created if new). The
    entry (``entry_id``, else a new one) names the journey: the same entry again is refused by
    the re-entry rule, never a second journey. Raises Refused (the flow takes no entries, or its
    re-entry rule keeps the person out), Invalid (variables that do not fit), TemporalUnavailable."""
    async with launcher.store.begin() as conn:
        published = await flows.current_version(conn, workspace_id, flow_id)
        if published is None:
            state = (await flow_states(conn, workspace_id, flow_id)).get(flow_id)
            status = "not published" if state is None else state.status  # refused either way
            raise Refused(f"flow {flow_id!r} is {status}: it takes no new entries")
        await profiles.ensure_profiles(launcher.store, conn, workspace_id, [profile_id])
    entry = f"api:{entry_id or uuid.uuid4().hex}"
    try:
        journey_id = await launcher.start(
            workspace_id, published, profile_id, entry=entry, variables=variables
        )
    except JourneyStartFailed as error:
        raise TemporalUnavailable(f"the journey could not be started ({error}); send again") from error
    except EntryRefused as error:
        if error.faults:
            raise Invalid(str(error), error.faults) from error
        raise Refused(str(error)) from error
    if journey_id is None:
        raise Refused(f"the re-entry rule of flow {flow_id!r} keeps profile {profile_id!r} out")
    return Started(journey_id, published.version)


async def stop_journey(
    store: Store, temporal: Client, workspace_id: str, journey_id: str, reason: str
) -> None:
    """Stop a journey in flight: it leaves at once from any step (also mid-pause or mid-wait) and
    records its end as ``stopped`` with the reason. Raises NotFound, Refused (it has ended),
    TemporalUnavailable (Temporal did not take the stop)."""
    async with store.connect() as conn:
        row = await journeys.get_journey(conn, workspace_id, journey_id)
    if row is None:
        raise NotFound(f"no journey {journey_id!r}")
    if row["status"] != "running":
        raise Refused(f"journey {journey_id!r} has ended ({row['status']})")
    try:
        taken = await signal_journey(temporal, journey_id, JourneyWorkflow.stop, StopRequest(reason=reason))
    except SignalNotTaken as error:
        raise TemporalUnavailable(f"Temporal did not take the stop ({error.error}); send it again") from error
    if not taken:
        raise Refused(f"journey {journey_id!r} has ended")
