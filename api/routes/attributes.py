"""Custom attributes declared per workspace: PUT /v1/profiles checks values against their type."""

from __future__ import annotations

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.responses import AUTHENTICATED, WITH_BODY
from flowline.store import attribute_types
from flowline.store.attribute_types import AttributeType

router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/attributes", tags=["attributes"], responses=AUTHENTICATED
)


class AttributeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: AttributeType


class AttributeOut(AttributeIn):
    name: str


@router.get("", summary="The workspace's declared attributes")
async def list_attributes(workspace: Workspace, svc: Svc) -> dict[str, list[AttributeOut]]:
    async with svc.store.connect() as conn:
        declared = await attribute_types.declared_types(conn, workspace)
    return {"attributes": [AttributeOut.model_validate({"name": n, "type": t}) for n, t in declared.items()]}


@router.put(
    "/{name}", response_model=AttributeOut, responses=WITH_BODY, summary="Declare an attribute's type"
)
async def put_attribute(
    body: AttributeIn,
    workspace: Workspace,
    svc: Svc,
    name: str = Path(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$"),
) -> AttributeOut:
    """Values written from now on are checked; values already stored are left as they are."""
    async with svc.store.begin() as conn:
        await attribute_types.declare(svc.store, conn, workspace, name, body.type)
    return AttributeOut(name=name, type=body.type)
