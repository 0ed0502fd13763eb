"""Profiles and their in-app inbox."""

from __future__ import annotations

from fastapi import APIRouter, Query

from api.deps import Svc, Workspace
from api.errors import ApiError
from api.schemas import InboxMessage, JourneySummary, ProfileIn, ProfileOut
from flowline.store import deliveries, journeys, profiles
from flowline.store import profile_changes as changes
from workflows.routing import JourneyStartFailed

router = APIRouter(prefix="/v1/profiles", tags=["profiles"])


@router.put("/{profile_id}", response_model=ProfileOut, summary="Create or merge a profile")
async def put_profile(profile_id: str, body: ProfileIn, workspace: Workspace, svc: Svc) -> ProfileOut:
    async with svc.store.begin() as conn:
        await changes.change_attributes(
            svc.store, conn, workspace, profile_id, body.attributes, changes.Origin(source="api")
        )
        # Journeys waiting for a change (wait_for_change) hear it; a refusal rolls all back.
        try:
            await svc.launcher.route_pending(conn, workspace, [profile_id])
        except JourneyStartFailed as error:
            raise ApiError(503, f"{error}; nothing was changed, send the change again") from error
        row = await profiles.get_profile(conn, workspace, profile_id)
    return ProfileOut.model_validate(row)


@router.get("/{profile_id}", response_model=ProfileOut, summary="A profile with its journeys")
async def get_profile(profile_id: str, workspace: Workspace, svc: Svc) -> ProfileOut:
    async with svc.store.connect() as conn:
        row = await profiles.get_profile(conn, workspace, profile_id)
        if row is None:
            raise ApiError(404, f"no profile {profile_id!r}")
        rows = await journeys.list_journeys(conn, workspace, profile_id=profile_id)
    return ProfileOut.model_validate(row | {"journeys": [JourneySummary.model_validate(j) for j in rows]})


@router.get("/{profile_id}/inbox", summary="The profile's in-app messages, newest first")
async def get_inbox(
    profile_id: str, workspace: Workspace, svc: Svc, limit: int = Query(100, ge=1, le=500)
) -> dict[str, list[InboxMessage]]:
    async with svc.store.connect() as conn:
        rows = await deliveries.list_inbox(conn, workspace, profile_id, limit)
    return {"messages": [InboxMessage.model_validate(r) for r in rows]}
