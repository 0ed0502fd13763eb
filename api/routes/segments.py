"""Segments: a named rule over people.

Saving a segment computes its membership (flowline/store/segment_members.py): a new segment's
first computation is the baseline (its members do not "enter": no segment_entered events, so a
segment_entry flow starts only for people who enter afterwards); a changed rule is a
re-evaluation (who now matches enters, who no longer does leaves, with events); the same rule
saved again changes nothing. GET .../members computes the rule at request time (always as of
now, also for time-relative rules between two clock runs), not from the stored membership.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.schemas import MAX_OFFSET
from flowline.conditions.rules import Condition
from flowline.engine_events import filter_faults
from flowline.store import flows, segment_members, segments, segments_query
from flowline.store.database import utcnow
from launch.journey_start import JourneyStartFailed

log = logging.getLogger(__name__)
router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/segments", tags=["segments"], responses=AUTHENTICATED
)
_RULE: TypeAdapter[Condition] = TypeAdapter(Condition)


class SegmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    # The rule language of docs/conditions.md (the same as branch rules and trigger conditions).
    rule: Condition


class SegmentOut(SegmentIn):
    id: str


class UnreadableSegment(BaseModel):
    id: str
    name: str
    message: str = Field(description="why its stored rule no longer validates; PUT the segment again")


class SegmentList(BaseModel):
    segments: list[SegmentOut]
    unreadable: list[UnreadableSegment] = Field(
        default_factory=list,
        description="segments whose stored rule no longer validates (a NaN value made null by "
        "migration 0018, a rule a newer check refuses): not evaluated until saved again",
    )


def _stored_rule(row: dict[str, Any]) -> Condition:
    """The segment's stored rule; 409 when it no longer validates (never a 500 for old data)."""
    try:
        return _RULE.validate_python(row["rule"])
    except ValidationError as error:
        raise ApiError(409, _unreadable(row["id"], error)) from None


def _unreadable(segment_id: str, error: ValidationError) -> str:
    return (
        f"segment {segment_id!r} has a stored rule that no longer validates "
        f"({error.error_count()} faults); save it again with PUT /v1/segments/{segment_id}"
    )


class Members(BaseModel):
    segment: str
    count: int
    members: list[str]
    limit: int
    offset: int


SegmentId = Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@router.put(
    "/{segment_id}", response_model=SegmentOut, responses=WITH_BODY, summary="Create or replace a segment"
)
async def put_segment(
    body: SegmentIn, workspace: Workspace, svc: Svc, segment_id: str = SegmentId
) -> SegmentOut:
    # A filter on an engine event's property it never carries would never match (stored
    # segments are not re-checked: only what is saved now).
    faults = [{"path": path, "message": message} for path, message in filter_faults(body)]
    if faults:
        raise ApiError(422, "the segment's rule can never match as written; nothing was saved", faults=faults)
    rule: dict[str, Any] = _RULE.dump_python(body.rule, mode="json", by_alias=True, exclude_none=True)
    async with svc.store.begin() as conn:
        before = await segments.get_segment(conn, workspace, segment_id)
        await segments.put_segment(svc.store, conn, workspace, segment_id, body.name, rule)
        saved = await segment_members.saved_segment(conn, workspace, segment_id)
        assert saved is not None
        written: list[dict[str, Any]] = []
        if before is None or before["rule"] != rule or saved.evaluated_at is None:
            # A baseline when new (no events), else the diff as of now (events).
            written = await segment_members.reevaluate(svc.store, conn, saved, utcnow())
        # Every process evaluates the new rule for the events stored once this commits.
        await flows.bump_routing_generation(conn, workspace)
    svc.launcher.segments_changed(workspace)
    try:
        await svc.launcher.dispatch(workspace, written)
    except JourneyStartFailed as error:
        log.warning("segment %s events not routed yet (the sweeper will): %s", segment_id, error)
    return SegmentOut(id=segment_id, name=body.name, rule=body.rule)


@router.get("", response_model=SegmentList, summary="The workspace's segments")
async def list_segments(workspace: Workspace, svc: Svc) -> SegmentList:
    async with svc.store.connect() as conn:
        rows = await segments.list_segments(conn, workspace)
    listed = SegmentList(segments=[])
    for r in rows:
        try:
            listed.segments.append(
                SegmentOut(id=r["id"], name=r["name"], rule=_RULE.validate_python(r["rule"]))
            )
        except ValidationError as error:
            listed.unreadable.append(
                UnreadableSegment(id=r["id"], name=r["name"], message=_unreadable(r["id"], error))
            )
    return listed


@router.get(
    "/{segment_id}/members",
    response_model=Members,
    responses=errors(404, 409, 422),
    summary="Who is in the segment now: count and a page",
)
async def get_members(
    workspace: Workspace,
    svc: Svc,
    segment_id: str = SegmentId,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> Members:
    now = utcnow()
    async with svc.store.connect() as conn:
        row = await segments.get_segment(conn, workspace, segment_id)
        if row is None:
            raise ApiError(404, f"no segment {segment_id!r}")
        rule = _stored_rule(row)
        total = await segments_query.count(conn, workspace, rule, now)
        page = await segments_query.members(conn, workspace, rule, now, limit=limit, offset=offset)
    return Members(segment=segment_id, count=total, members=page, limit=limit, offset=offset)
