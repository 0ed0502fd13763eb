"""A person's data: erasure (the right to be forgotten)."""

from __future__ import annotations

from temporalio.client import Client

from flowline.journey import StopRequest
from flowline.store import erasure, profiles
from flowline.store.database import Store
from launch.signals import SignalNotTaken, signal_journey
from services.errors import NotFound, TemporalUnavailable
from workflows.journey import JourneyWorkflow

# The reason the person's journeys in flight end with.
ERASED = "profile erased"


async def erase_person(store: Store, temporal: Client, workspace_id: str, profile_id: str) -> None:
    """Stop every running journey of the person (reason ``profile erased``), then delete the
    profile, its events, inbox messages, conversations, friendships (both ways) and push tokens
    in one transaction. Journey records and deliveries stay as ids only, for flow statistics.
    Raises NotFound, TemporalUnavailable (a stop not taken: nothing was deleted)."""
    async with store.connect() as conn:
        if await profiles.get_profile(conn, workspace_id, profile_id) is None:
            raise NotFound(f"no profile {profile_id!r}")
        running = await erasure.running_journeys(conn, workspace_id, profile_id)
    for journey_id in running:
        try:
            # A journey that has ended already needs no stop.
            await signal_journey(temporal, journey_id, JourneyWorkflow.stop, StopRequest(reason=ERASED))
        except SignalNotTaken as error:
            raise TemporalUnavailable(
                f"Temporal did not take the stop ({error.error}); nothing was deleted, send it again"
            ) from error
    async with store.begin() as conn:
        if not await erasure.erase_profile(conn, workspace_id, profile_id):
            raise NotFound(f"no profile {profile_id!r}")
