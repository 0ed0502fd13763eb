"""Custom elements: declarative ones configured here, code ones installed with Python packages
(docs/elements.md). Thin routes over services/elements.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, Field

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.responses import AUTHENTICATED, WITH_BODY, errors
from flowline.elements.definition import DeclarativeElement
from flowline.flow.base import IDENTIFIER_PATTERN
from services import elements as use_cases

router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/elements", tags=["elements"], responses=AUTHENTICATED
)

ElementId = Annotated[
    str,
    Path(pattern=IDENTIFIER_PATTERN, description="the element's id; custom steps name it in `element`"),
]


class ElementShown(BaseModel):
    """A custom element: ``declarative`` (its newest version unless one is asked for, with its
    ``definition``) or ``code`` (installed with a Python package). ``input_schema`` is the JSON
    Schema of its params, ``outcomes`` every name a custom step's ``next`` may use."""

    id: str
    kind: Literal["declarative", "code"]
    description: str | None = None
    input_schema: dict[str, Any]
    outcomes: list[str]
    version: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    definition: DeclarativeElement | None = None
    # Code elements: the variables it may save.
    saves: list[str] = Field(default_factory=list)


class ElementList(BaseModel):
    elements: list[ElementShown]


@router.put(
    "/{element_id}",
    response_model=ElementShown,
    responses={**WITH_BODY, **errors(409)},
    summary="Create or edit a declarative element (each change is a new version)",
)
async def put_element(
    element_id: ElementId,
    body: Annotated[DeclarativeElement, Body(description="inputs, request, save, timeout, outcomes")],
    workspace: Workspace,
    svc: Svc,
) -> Any:
    """Journeys in flight keep the version in force when they entered their flow; a PUT of the
    definition the newest version has adds none. Header values whose names carry credentials
    (``Authorization``, ``*key*``, ``*token*``, ...) are shown as "***"; sending "***" back keeps
    the stored value. 409 for the id of a code element, or when another PUT of the element took
    the version first."""
    return use_cases.shown_declarative(await use_cases.put_element(svc.store, workspace, element_id, body))


@router.get("", response_model=ElementList, summary="Every element: code and declarative, with input schemas")
async def list_elements(workspace: Workspace, svc: Svc) -> Any:
    return {"elements": await use_cases.list_elements(svc.store, workspace)}


@router.get(
    "/{element_id}",
    response_model=ElementShown,
    responses=errors(404, 422),
    summary="An element (a declarative one's newest version, or the version asked for)",
)
async def get_element(
    element_id: ElementId,
    workspace: Workspace,
    svc: Svc,
    version: Annotated[int | None, Query(ge=1, le=2_000_000_000)] = None,
) -> Any:
    return await use_cases.get_element(svc.store, workspace, element_id, version)


@router.delete(
    "/{element_id}",
    status_code=204,
    response_class=Response,
    responses=errors(404, 409, 422),
    summary="Delete a declarative element (refused while a running flow uses it)",
)
async def delete_element(element_id: ElementId, workspace: Workspace, svc: Svc) -> Response:
    await use_cases.delete_element(svc.store, workspace, element_id)
    return Response(status_code=204)
