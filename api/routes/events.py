"""Event ingestion: one event or a batch; each invalid event is reported, the valid ones kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from api.body import BatchRoute, json_body
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, Invalid, errors
from api.schemas import MAX_EVENTS_PER_CALL, EventIn, EventsAccepted, Fault, RejectedEvent
from flowline import metrics
from flowline.document_paths import error_path
from flowline.json_values import JsonLimits, value_faults
from flowline.settings import Settings
from flowline.store.database import utcnow
from launch.journey_start import JourneyStartFailed

router = APIRouter(route_class=BatchRoute, prefix="/v1/events", tags=["events"], responses=AUTHENTICATED)

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


def _events_of(body: Any) -> tuple[list[Any], tuple[str, ...] | None]:
    """The events sent and where the list of them is in the body (None: the body is one event)."""
    if isinstance(body, dict) and "events" in body and set(body) == {"events"}:
        where: tuple[str, ...] | None = ("events",)
        body = body["events"]
    else:
        where = () if isinstance(body, list) else None
    items = body if isinstance(body, list) else [body]
    if len(items) > MAX_EVENTS_PER_CALL:
        raise ApiError(413, f"{len(items)} events in one call; send at most {MAX_EVENTS_PER_CALL}")
    return items, where


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn]


# The whole body at once, JSON parsed and checked in pydantic-core: a batch where every event is
# valid (the usual case) costs a fraction of parsing and checking its events one by one.
_BODY_ADAPTER: TypeAdapter[list[EventIn] | _Envelope | EventIn] = TypeAdapter(
    list[EventIn] | _Envelope | EventIn
)


def _event_path(where: tuple[str, ...] | None, index: int) -> tuple[str, int]:
    """Where an event is in the body and the containers around it: ``$.events[2]`` (2),
    ``$[2]`` (1), or ``$`` (0) for a body of one event."""
    if where is None:
        return "$", 0
    return (f"$.events[{index}]", 2) if where else (f"$[{index}]", 1)


def _event_faults(item: Any, at: tuple[str, int], settings: Settings, limits: JsonLimits) -> list[Fault]:
    """What api/body.py checks in other bodies, for one event at ``at`` in the body, and the
    number of its properties."""
    path, depth = at
    found = [Fault(path=f.path, message=f.message) for f in value_faults(item, limits, path, depth)]
    properties = item.get("properties") if isinstance(item, dict) else None
    if isinstance(properties, dict) and len(properties) > settings.max_event_properties:
        message = f"{len(properties)} properties; at most {settings.max_event_properties}"
        found.append(Fault(path=f"{path}.properties", message=message))
    return found


def _as_sent(event: EventIn) -> dict[str, Any]:
    """The parts of an event the limits concern (its timestamp was parsed already)."""
    return {
        "id": event.id,
        "profile_id": event.profile_id,
        "name": event.name,
        "properties": event.properties,
    }


def _shown_id(item_id: Any, limits: JsonLimits) -> str | None:
    """The id a rejected event is reported with, when it is one and JSON can carry it back."""
    return item_id if isinstance(item_id, str) and not value_faults(item_id, limits) else None


def _all_valid(raw: bytes, settings: Settings) -> tuple[list[EventIn], list[RejectedEvent]] | None:
    """A body whose events pydantic takes (the usual case): those within the limits, and the
    others rejected; None when some event is invalid (then each is checked on its own)."""
    try:
        body = _BODY_ADAPTER.validate_json(raw)
    except ValidationError:
        return None
    where: tuple[str, ...] | None
    if isinstance(body, _Envelope):
        events, where = body.events, ("events",)
    elif isinstance(body, list):
        events, where = body, ()
    else:
        events, where = [body], None
    depth = _event_path(where, 0)[1]
    if len(events) > MAX_EVENTS_PER_CALL:
        raise ApiError(413, f"{len(events)} events in one call; send at most {MAX_EVENTS_PER_CALL}")
    limits = settings.json_limits()
    sent = [_as_sent(e) for e in events]
    many = max((len(e.properties) for e in events), default=0) > settings.max_event_properties
    if not many and not value_faults(sent, limits, depth=depth - 1):
        return events, []  # the usual batch: one walk over all of it
    valid: list[EventIn] = []
    rejected: list[RejectedEvent] = []
    for index, event in enumerate(events):
        faults = _event_faults(sent[index], _event_path(where, index), settings, limits)
        if faults:
            rejected.append(RejectedEvent(index=index, id=_shown_id(event.id, limits), faults=faults))
        else:
            valid.append(event)
    return valid, rejected


def _one_by_one(body: Any, settings: Settings) -> tuple[list[EventIn], list[RejectedEvent]]:
    """Each event checked on its own, so that each invalid one is reported by its index."""
    limits = settings.json_limits()
    valid: list[EventIn] = []
    rejected: list[RejectedEvent] = []
    items, where = _events_of(body)
    for index, item in enumerate(items):
        # The limits first: a NaN or a 5,000-digit number must not reach pydantic.
        faults = _event_faults(item, _event_path(where, index), settings, limits)
        if not faults:
            try:
                valid.append(EventIn.model_validate(item))
                continue
            except ValidationError as error:
                # Paths into the body as sent: $.events[2].properties, $[2].name or $.name.
                prefix = () if where is None else (*where, index)
                faults = [
                    Fault(path=error_path(body, {**e, "loc": (*prefix, *e["loc"])}), message=e["msg"])
                    for e in error.errors()
                ]
        # The id only when it is one: an invalid event's "id" may be any JSON value.
        item_id = _shown_id(item.get("id") if isinstance(item, dict) else None, limits)
        rejected.append(RejectedEvent(index=index, id=item_id, faults=faults))
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
    checked = _all_valid(await request.body(), svc.settings)
    if checked is None:
        checked = _one_by_one(await json_body(request), svc.settings)
    valid, rejected = checked
    metrics.EVENTS_REJECTED.inc(len(rejected))
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
