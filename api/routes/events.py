"""Event ingestion: one event or a batch; each invalid event is reported, the valid ones kept."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from api.deps import Svc, Workspace
from api.errors import ApiError, loc_path
from api.responses import AUTHENTICATED, Invalid, errors
from api.schemas import MAX_EVENTS_PER_CALL, EventIn, EventsAccepted, Fault, RejectedEvent
from flowline.store.database import utcnow
from workflows.routing import JourneyStartFailed

router = APIRouter(prefix="/v1/events", tags=["events"], responses=AUTHENTICATED)

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": 'One event, a list of events, or `{"events": [...]}`'
        f" (at most {MAX_EVENTS_PER_CALL}).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EventIn"}}},
    }
}

# 422: the request is unreadable (faults), or every event in it is invalid (each by its index).
_ANSWERS: dict[int | str, dict[str, Any]] = {
    **errors(413, 422),
    422: {**errors(422)[422], "model": Invalid | EventsAccepted},
}


def _items(body: Any) -> list[Any]:
    if isinstance(body, dict) and "events" in body and set(body) == {"events"}:
        body = body["events"]
    items = body if isinstance(body, list) else [body]
    if len(items) > MAX_EVENTS_PER_CALL:
        raise ApiError(413, f"{len(items)} events in one call; send at most {MAX_EVENTS_PER_CALL}")
    return items


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn]


# The whole body at once, JSON parsed and checked in pydantic-core: a batch where every event is
# valid (the usual case) costs a fraction of parsing and checking its events one by one.
_BODY_ADAPTER: TypeAdapter[list[EventIn] | _Envelope | EventIn] = TypeAdapter(
    list[EventIn] | _Envelope | EventIn
)


def _all_valid(raw: bytes) -> list[EventIn] | None:
    """The events of a body where each one is valid, else None (then they are checked one by one)."""
    try:
        body = _BODY_ADAPTER.validate_json(raw)
    except ValidationError:
        return None
    events = body.events if isinstance(body, _Envelope) else body if isinstance(body, list) else [body]
    if len(events) > MAX_EVENTS_PER_CALL:
        raise ApiError(413, f"{len(events)} events in one call; send at most {MAX_EVENTS_PER_CALL}")
    return events


def _parse(raw: bytes) -> Any:
    """The body as JSON; faults as FastAPI reports them for a body it parses itself."""
    if not raw.strip():
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        position = error.pos if isinstance(error, json.JSONDecodeError) else error.start
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error"}]
        ) from error


def _one_by_one(body: Any) -> tuple[list[EventIn], list[RejectedEvent]]:
    """Each event checked on its own, so that each invalid one is reported by its index."""
    valid: list[EventIn] = []
    rejected: list[RejectedEvent] = []
    for index, item in enumerate(_items(body)):
        try:
            valid.append(EventIn.model_validate(item))
        except ValidationError as error:
            faults = [Fault(path=loc_path(("body", *e["loc"])), message=e["msg"]) for e in error.errors()]
            rejected.append(
                RejectedEvent(
                    index=index, id=item.get("id") if isinstance(item, dict) else None, faults=faults
                )
            )
    return valid, rejected


@router.post(
    "",
    status_code=202,
    response_model=EventsAccepted,
    responses=_ANSWERS,
    openapi_extra=_BODY,
    summary="Send events",
)
async def post_events(request: Request, workspace: Workspace, svc: Svc) -> Any:
    raw = await request.body()
    checked = _all_valid(raw)
    valid, rejected = (checked, []) if checked is not None else _one_by_one(_parse(raw))
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
