"""Event ingestion: one event or a batch; each invalid event is reported, the valid ones kept."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.deps import Svc, Workspace
from api.errors import ApiError, loc_path
from api.schemas import MAX_EVENTS_PER_CALL, EventIn, EventsAccepted, Fault, RejectedEvent
from flowline.store.database import utcnow
from workflows.routing import JourneyStartFailed

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
    try:
        ingested = await svc.launcher.ingest(workspace, rows)
    except JourneyStartFailed as error:
        # The events are stored but not routed: the same batch sent again (or the sweeper) routes
        # them, starting the same journeys, never others.
        raise ApiError(503, f"{error}; the events are kept but not routed yet, send them again") from error
    result = EventsAccepted(
        accepted=len(ingested.stored),
        duplicates=len(valid) - len(ingested.stored),
        rejected=rejected,
        journeys=ingested.journeys,
    )
    status = 202 if valid or not rejected else 422
    return JSONResponse(result.model_dump(mode="json"), status_code=status)
