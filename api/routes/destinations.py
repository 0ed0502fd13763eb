"""Export destinations of the workspace: CleverTap accounts and webhook receivers.

Thin routes over services/destinations.py; secrets are shown as "***" and sending "***" back
keeps the stored secret, as for the channels' providers (api/routes/workspace.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, Field

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.responses import AUTHENTICATED, WITH_BODY, WITH_PARAMETERS, errors
from flowline.destinations.settings import CleverTapDestination, Destination, WebhookDestination
from flowline.secrets import MASK
from flowline.store.export_records import Kind
from flowline.store.export_records import Status as RecordStatus
from services import destinations as use_cases

router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/destinations", tags=["destinations"], responses=AUTHENTICATED
)

DestinationId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="the destination's id (yours); export steps name it",
    ),
]


class _Shown(BaseModel):
    id: str
    created_at: datetime
    updated_at: datetime


class CleverTapDestinationShown(CleverTapDestination, _Shown):
    """A CleverTap destination as the API shows it (``passcode`` is "***")."""


class WebhookDestinationShown(WebhookDestination, _Shown):
    """A webhook destination as the API shows it (``signing_secret`` is "***")."""


DestinationShown = Annotated[CleverTapDestinationShown | WebhookDestinationShown, Field(discriminator="type")]


class DestinationList(BaseModel):
    destinations: list[DestinationShown]


class ExportRecord(BaseModel):
    """A record of the outbox and what became of it (docs/destinations/README.md#outcomes)."""

    id: int = Field(description="the record's place in the outbox; page with `after`")
    record_key: str = Field(
        description="journey:step:visit of an export step, event:<id> of an exported event"
    )
    flow_id: str | None
    version: int | None
    step_id: str | None
    journey_id: str | None
    profile_id: str
    kind: Kind
    name: str | None
    ts: datetime
    data: dict[str, Any]
    status: RecordStatus
    attempts: int
    code: int | None = Field(description="the destination's code for a rejected record")
    message: str | None = Field(
        description="why it was rejected, skipped or given up, or the last failed attempt"
    )
    created_at: datetime
    updated_at: datetime


class RecordList(BaseModel):
    records: list[ExportRecord]


class CheckAnswer(BaseModel):
    """What the destination answered a test: ``status`` is null when no answer came."""

    ok: bool
    status: int | None
    message: str


_DESTINATION_BODY = Body(
    description=f'`{{"type": ..., ...settings}}`; secrets sent as "{MASK}" keep their stored value.'
)


@router.put(
    "/{destination_id}",
    response_model=DestinationShown,
    responses=WITH_BODY,
    summary="Create or replace a destination",
)
async def put_destination(
    destination_id: DestinationId,
    body: Annotated[Destination, _DESTINATION_BODY],
    workspace: Workspace,
    svc: Svc,
) -> Any:
    return use_cases.masked(await use_cases.put_destination(svc.store, workspace, destination_id, body))


@router.get("", response_model=DestinationList, summary="The workspace's destinations (secrets masked)")
async def list_destinations(workspace: Workspace, svc: Svc) -> Any:
    found = await use_cases.list_destinations(svc.store, workspace)
    return {"destinations": [use_cases.masked(d) for d in found]}


@router.get(
    "/{destination_id}",
    response_model=DestinationShown,
    responses=errors(404, 422),
    summary="A destination (secrets masked)",
)
async def get_destination(destination_id: DestinationId, workspace: Workspace, svc: Svc) -> Any:
    return use_cases.masked(await use_cases.get_destination(svc.store, workspace, destination_id))


@router.delete(
    "/{destination_id}",
    status_code=204,
    response_class=Response,
    responses=errors(404, 409, 422),
    summary="Delete a destination (refused while a running flow uses it)",
)
async def delete_destination(destination_id: DestinationId, workspace: Workspace, svc: Svc) -> Response:
    await use_cases.delete_destination(svc.store, workspace, destination_id)
    return Response(status_code=204)


@router.get(
    "/{destination_id}/records",
    response_model=RecordList,
    responses=errors(422),
    summary="The destination's export records and their outcomes",
)
async def list_records(
    destination_id: DestinationId,
    workspace: Workspace,
    svc: Svc,
    status: Annotated[RecordStatus | None, Query(description="only records of this status")] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="records after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Oldest first: pending (and being sent) until the batcher settles each as delivered,
    rejected, skipped, given_up or unknown."""
    found = await use_cases.destination_records(
        svc.store, workspace, destination_id, status=status, after=after, limit=limit
    )
    return {"records": found}


@router.post(
    "/{destination_id}/test",
    response_model=CheckAnswer,
    responses={**WITH_PARAMETERS, **errors(404)},
    summary="Check that the destination takes its settings, and report what it answered",
)
async def test_destination(destination_id: DestinationId, workspace: Workspace, svc: Svc) -> CheckAnswer:
    """A webhook destination receives a signed empty batch ``{"records": [], "test": true}``;
    ``ok`` when it answers 2xx. A CleverTap destination gets an upload of no record with its
    account id and passcode; ``ok`` when CleverTap accepts them (a 401 or 403 is not ok)."""
    result = await use_cases.check_destination(
        svc.store,
        workspace,
        destination_id,
        seconds=svc.settings.webhook_timeout_seconds,
        allow_private=svc.settings.allow_private_outbound,
    )
    return CheckAnswer(ok=result.ok, status=result.status, message=result.message)
