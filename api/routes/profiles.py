"""Profiles: merge upsert with typed attributes, referrer and friends, push tokens, the in-app inbox
and erasure."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from api.body import CheckedRoute
from api.deps import ProfileId, Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.schemas import InboxMessage, JourneySummary, ProfileIn, ProfileOut, ProfilesFound, PushTokensIn
from flowline.settings import Settings
from flowline.store import (
    attribute_types,
    deliveries,
    journey_steps,
    journeys,
    profiles,
    push_tokens,
    segment_members,
)
from flowline.store import profile_changes as changes
from flowline.store.profiles import Contact
from launch.journey_start import JourneyStartFailed
from services import profiles as profile_use_cases

log = logging.getLogger(__name__)

router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/profiles", tags=["profiles"], responses=AUTHENTICATED
)


async def _profile_out(conn: AsyncConnection, workspace: str, profile_id: str, **extra: Any) -> ProfileOut:
    row = await profiles.get_profile(conn, workspace, profile_id)
    if row is None:
        raise ApiError(404, f"no profile {profile_id!r}")
    friends = await changes.friends_of(conn, workspace, profile_id)
    tokens = await push_tokens.push_tokens_of(conn, workspace, profile_id)
    return ProfileOut.model_validate(row | {"friends": friends, "push_tokens": tokens, **extra})


async def _route(svc: Svc, workspace: str, profile_ids: list[str]) -> None:
    """After the change committed (a journey that hears of it must find it in the store), the
    journeys waiting for a change (wait_for_change) hear of it. If Temporal refuses, the change
    stands and its events stay unrouted: the sweeper routes them."""
    try:
        # Also starts profile_change flows and re-evaluates the profiles' segments.
        await svc.launcher.route_profiles(workspace, profile_ids)
    except JourneyStartFailed as error:
        log.warning("profile change of %s not routed yet (the sweeper will): %s", profile_ids, error)


async def _within_attribute_limit(
    conn: AsyncConnection, workspace: str, profile_id: str, changes: dict[str, Any], settings: Settings
) -> None:
    """A profile holds at most ``max_profile_attributes`` attributes, counted after the merge (and
    a request carries at most as many)."""
    limit = settings.max_profile_attributes
    count = len(changes)
    if count <= limit:
        row = await profiles.get_profile(conn, workspace, profile_id)
        current: dict[str, Any] = row["attributes"] if row is not None else {}
        if len(current) + count <= limit:
            return
        count = len(profiles.merge_attributes(current, changes))
    if count > limit:
        raise ApiError(
            422,
            "too many attributes; nothing was changed",
            faults=[{"path": "$.attributes", "message": f"{count} attributes; at most {limit}"}],
        )


@router.put(
    "/{profile_id}", response_model=ProfileOut, responses=WITH_BODY, summary="Create or merge a profile"
)
async def put_profile(profile_id: ProfileId, body: ProfileIn, workspace: Workspace, svc: Svc) -> ProfileOut:
    origin = changes.Origin(source="api")
    async with svc.store.begin() as conn:
        await _within_attribute_limit(conn, workspace, profile_id, body.attributes, svc.settings)
        declared = await attribute_types.declared_types(conn, workspace)
        faults = attribute_types.attribute_faults(declared, body.attributes)
        if faults:
            raise ApiError(
                422,
                "attributes do not fit their declared types; nothing was changed",
                faults=[{"path": path, "message": message} for path, message in faults],
            )
        await changes.change_attributes(svc.store, conn, workspace, profile_id, body.attributes, origin)
        if "referrer_id" in body.model_fields_set:
            if body.referrer_id == profile_id:
                raise ApiError(
                    422,
                    "a person cannot refer themselves",
                    faults=[{"path": "$.referrer_id", "message": "a person cannot refer themselves"}],
                )
            await changes.set_referrer(svc.store, conn, workspace, profile_id, body.referrer_id, origin)
        if body.friends:
            await changes.change_friends(svc.store, conn, workspace, profile_id, origin, add=body.friends)
        out = await _profile_out(conn, workspace, profile_id)
    await _route(svc, workspace, [profile_id])
    return out


@router.get(
    "/{profile_id}", response_model=ProfileOut, responses=errors(404), summary="A profile with its journeys"
)
async def get_profile(profile_id: ProfileId, workspace: Workspace, svc: Svc) -> ProfileOut:
    async with svc.store.connect() as conn:
        rows = await journeys.list_journeys(conn, workspace, profile_id=profile_id)
        current = await journey_steps.current_steps(conn, rows)
        summaries = [JourneySummary.model_validate(j | {"current_step": current[j["id"]]}) for j in rows]
        member_of = await segment_members.segments_of(conn, workspace, profile_id)
        return await _profile_out(conn, workspace, profile_id, journeys=summaries, segments=member_of)


@router.get(
    "",
    response_model=ProfilesFound,
    responses=errors(422),
    summary="Find a person by email or phone",
)
async def find_profiles(
    workspace: Workspace,
    svc: Svc,
    email: str | None = Query(None, min_length=1, max_length=320, description="compared without case"),
    phone: str | None = Query(None, min_length=1, max_length=64),
) -> ProfilesFound:
    """The (oldest) profile whose ``email`` or ``phone`` attribute is the one given, or none; give
    exactly one of them."""
    if (email is None) == (phone is None):
        fault = {"path": "query.email", "message": "give email or phone (one of them)"}
        raise ApiError(422, "give email or phone", faults=[fault])
    kind: Contact = "email" if email is not None else "phone"
    async with svc.store.connect() as conn:
        found = await profiles.find_by_contact(conn, workspace, kind, email or phone or "")
        if found is None:
            return ProfilesFound(profiles=[])
        return ProfilesFound(profiles=[await _profile_out(conn, workspace, found)])


@router.delete(
    "/{profile_id}/friends/{friend_id}",
    response_model=ProfileOut,
    responses=errors(404),
    summary="End a friendship (both ways)",
)
async def delete_friend(
    profile_id: ProfileId, friend_id: ProfileId, workspace: Workspace, svc: Svc
) -> ProfileOut:
    async with svc.store.begin() as conn:
        if await profiles.get_profile(conn, workspace, profile_id) is None:
            raise ApiError(404, f"no profile {profile_id!r}")
        origin = changes.Origin(source="api")
        await changes.change_friends(svc.store, conn, workspace, profile_id, origin, remove=[friend_id])
        out = await _profile_out(conn, workspace, profile_id)
    await _route(svc, workspace, [profile_id])
    return out


@router.put(
    "/{profile_id}/push_tokens",
    response_model=ProfileOut,
    responses=WITH_BODY,
    summary="Replace the push tokens",
)
async def put_push_tokens(
    profile_id: ProfileId, body: PushTokensIn, workspace: Workspace, svc: Svc
) -> ProfileOut:
    tokens = [t.model_dump() for t in body.tokens]
    async with svc.store.begin() as conn:
        await push_tokens.set_push_tokens(svc.store, conn, workspace, profile_id, tokens)
        return await _profile_out(conn, workspace, profile_id)


@router.delete(
    "/{profile_id}",
    status_code=204,
    responses=errors(404),
    summary="Erase the person: stop journeys, delete data",
)
async def delete_profile(profile_id: ProfileId, workspace: Workspace, svc: Svc) -> Response:
    """Stops every running journey of the person (reason ``profile erased``), then deletes the
    profile, its events, inbox messages, conversations, friendships (both ways) and push tokens in
    one transaction. Journey records and deliveries stay as ids only, for flow statistics. When
    Temporal does not take a stop, the answer is 503 and nothing is deleted: send it again."""
    await profile_use_cases.erase_person(svc.store, svc.temporal, workspace, profile_id)
    return Response(status_code=204)


@router.get(
    "/{profile_id}/inbox", responses=errors(422), summary="The profile's in-app messages, newest first"
)
async def get_inbox(
    profile_id: ProfileId,
    workspace: Workspace,
    svc: Svc,
    limit: int = Query(100, ge=1, le=500),
    unread: bool = Query(False, description="only messages not read yet"),
) -> dict[str, list[InboxMessage]]:
    async with svc.store.connect() as conn:
        rows = await deliveries.list_inbox(conn, workspace, profile_id, limit, unread=unread)
    return {"messages": [InboxMessage.model_validate(r) for r in rows]}
