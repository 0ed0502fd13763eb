"""Event ingestion: one event or a batch; each invalid event is reported, the valid ones kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from api.body import BatchRoute, json_body
from api.deps import Svc, Workspace
from api.errors import ApiError, loc_path
from api.schemas import MAX_EVENTS_PER_CALL, EventIn, EventsAccepted, Fault, RejectedEvent
from flowline.json_values import value_faults
from flowline.settings import Settings
from flowline.store.database import utcnow
from workflows.routing import JourneyStartFailed

router = APIRouter(route_class=BatchRoute, prefix="/v1/events", tags=["events"])

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


# The usual batch, every event valid, is checked in one call into pydantic-core; only a batch
# with faults is checked event by event, so that each invalid one is reported by its index.
_EVENTS: TypeAdapter[list[EventIn]] = TypeAdapter(list[EventIn])


def _checked(body: Any, settings: Settings) -> tuple[list[EventIn], list[RejectedEvent]]:
    items = _items(body)
    try:
        all_valid: list[EventIn] | None = _EVENTS.validate_python(items)
    except ValidationError:
        all_valid = None
    limits = settings.json_limits()
    valid: list[EventIn] = []
    rejected: list[RejectedEvent] = []
    for index, item in enumerate(items):
        # Values first (api/body.py leaves them to this route): a NaN must not reach pydantic.
        faults = [Fault(path=f.path, message=f.message) for f in value_faults(item, limits)]
        properties = item.get("properties") if isinstance(item, dict) else None
        if isinstance(properties, dict) and len(properties) > settings.max_event_properties:
            message = f"{len(properties)} properties; at most {settings.max_event_properties}"
            faults.append(Fault(path="$.properties", message=message))
        event = all_valid[index] if all_valid is not None else None
        if event is None and not faults:
            try:
                event = EventIn.model_validate(item)
            except ValidationError as error:
                faults = [Fault(path=loc_path(("body", *e["loc"])), message=e["msg"]) for e in error.errors()]
        if faults or event is None:
            item_id = item.get("id") if isinstance(item, dict) else None
            rejected.append(
                RejectedEvent(index=index, id=item_id if isinstance(item_id, str) else None, faults=faults)
            )
        else:
            valid.append(event)
    return valid, rejected


@router.post("", status_code=202, response_model=EventsAccepted, openapi_extra=_BODY, summary="Send events")
async def post_events(request: Request, workspace: Workspace, svc: Svc) -> Any:
    valid, rejected = _checked(await json_body(request), svc.settings)
    seen: set[str] = set()
    now = utcnow()
    rows = []
    for event in valid:
        if event.id in seen:
            continue  # the same id twice in one batch counts once
        seen.add(event.id)
        rows.append(
            {
                "id": event.id,
                "profile_id": event.profile_id,
                "name": event.name,
                "timestamp": event.timestamp or now,
                "properties": event.properties,
            }
        )
    try:
        ingested = await svc.launcher.ingest(workspace, rows)
    except JourneyStartFailed as error:
        # The events are stored but not routed: the same batch sent again (or the sweeper) routes
        # them, starting the same journeys, never others.
        raise ApiError(503, f"{error}; the events are kept but not routed yet, send them again") from error
    result = EventsAccepted(
        accepted=len(ingested.stored),
        duplicates=len(rows) - len(ingested.stored),
        rejected=rejected,
        journeys=ingested.journeys,
    )
    status = 202 if valid or not rejected else 422
    return JSONResponse(result.model_dump(mode="json"), status_code=status)
