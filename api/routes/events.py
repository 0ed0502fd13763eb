"""Event ingestion: one event or a batch; each invalid event is reported, the valid ones kept."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.deps import Svc, Workspace
from api.errors import ApiError, loc_path
from api.schemas import MAX_EVENTS_PER_CALL, EventIn, EventsAccepted, Fault, RejectedEvent
from flowline.flow.model import EventTrigger
from flowline.journey import TriggerEvent
from flowline.store.database import utcnow
from flowline.store.events import insert_events
from flowline.store.profiles import ensure_profiles

router = APIRouter(prefix="/v1/events", tags=["events"])

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": 'One event, a list of events, or `{"events": [...]}`'
        f" (at most {MAX_EVENTS_PER_CALL}).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventIn"}}},
    }
}


def _items(body: Any) -> list[Any]:
    if isinstance(body, dict) and "events" in body and set(body) == {"events"}:
        body = body["events"]
    items = body if isinstance(body, list) else [body]
    if len(items) > MAX_EVENTS_PER_CALL:
        raise ApiError(413, f"{len(items)} events in one call; send at most {MAX_EVENTS_PER_CALL}")
    return items


@router.post("", status_code=202, response_model=EventsAccepted, openapi_extra=_BODY, summary="Send events")
async def post_events(body: Annotated[Any, Body()], workspace: Workspace, svc: Svc) -> Any:
    valid: list[EventIn] = []
    rejected: list[RejectedEvent] = []
    seen: set[str] = set()
    for index, item in enumerate(_items(body)):
        try:
            event = EventIn.model_validate(item)
        except ValidationError as error:
            faults = [Fault(path=loc_path(("body", *e["loc"])), message=e["msg"]) for e in error.errors()]
            rejected.append(
                RejectedEvent(
                    index=index, id=item.get("id") if isinstance(item, dict) else None, faults=faults
                )
            )
            continue
        if event.id in seen:
            continue  # the same id twice in one batch counts once
        seen.add(event.id)
        valid.append(event)

    now = utcnow()
    rows = [e.model_dump() | {"timestamp": e.timestamp or now} for e in valid]
    # Events no running flow listens for are routed as they are stored (journeys that wait for
    # events will widen this set).
    listened = {
        f.document.trigger.event
        for f in await svc.launcher.triggerable_flows(workspace)
        if isinstance(f.document.trigger, EventTrigger)
    }
    settled = {r["id"] for r in rows if r["name"] not in listened}
    async with svc.store.begin() as conn:
        await ensure_profiles(svc.store, conn, workspace, {e.profile_id for e in valid})
        new_ids = await insert_events(svc.store, conn, workspace, rows, routed=settled)

    fresh = [r for r in rows if r["id"] in new_ids and r["id"] not in settled]
    routed = await svc.launcher.route_events(
        workspace,
        [
            TriggerEvent(id=r["id"], name=r["name"], timestamp=r["timestamp"], properties=r["properties"])
            for r in fresh
        ],
        [r["profile_id"] for r in fresh],
    )
    result = EventsAccepted(
        accepted=len(new_ids),
        duplicates=len(valid) - len(new_ids),
        rejected=rejected,
        journeys=routed.journeys,
    )
    status = 202 if valid or not rejected else 422
    return JSONResponse(result.model_dump(mode="json"), status_code=status)
