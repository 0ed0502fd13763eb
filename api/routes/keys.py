"""The workspace's API keys (docs/keys.md): create, list, revoke. Admin keys only.

Thin routes over services/api_keys.py. The secret of a key is in the answer that creates it and
nowhere else: the store keeps its SHA-256 only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from api.body import CheckedRoute
from api.deps import AdminWorkspace, Svc
from api.responses import AUTHENTICATED, WITH_BODY, errors
from flowline.store.api_keys import KeyRecord, Scope
from services import api_keys as use_cases

router = APIRouter(route_class=CheckedRoute, prefix="/v1/keys", tags=["keys"], responses=AUTHENTICATED)

KeyId = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$", description="the key's id (not its secret)"),
]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=200,
        description="what the key is for, or who holds it",
        examples=["ci deploys"],
    )
    scope: Scope = Field(
        description="`read`: GET only; `write`: everything in the workspace but managing keys; "
        "`admin`: everything, keys too",
        examples=["write"],
    )


class KeyShown(BaseModel):
    """A key as listed: never its secret."""

    id: str
    name: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="when a request last used the key (recorded at most once a minute)"
    )
    revoked_at: datetime | None = Field(description="null while the key is valid")


class KeyCreated(KeyShown):
    key: str = Field(description="the secret: `Authorization: Bearer <key>`; shown in this answer only")


class KeyList(BaseModel):
    keys: list[KeyShown]


def _shown(record: KeyRecord) -> KeyShown:
    return KeyShown(
        id=record.id,
        name=record.name,
        scope=record.scope,
        created_at=record.created_at,
        last_used_at=record.last_used_at,
        revoked_at=record.revoked_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=KeyCreated,
    responses=WITH_BODY,
    summary="Create an API key (its secret is shown once)",
)
async def create_key(body: KeyIn, workspace: AdminWorkspace, svc: Svc) -> KeyCreated:
    created = await use_cases.create_key(svc.store, workspace, body.name, body.scope)
    return KeyCreated(**_shown(created.record).model_dump(), key=created.secret)


@router.get("", response_model=KeyList, summary="The workspace's API keys, revoked ones too")
async def list_keys(workspace: AdminWorkspace, svc: Svc) -> KeyList:
    """Oldest first, with when each was last used; never a secret."""
    return KeyList(keys=[_shown(k) for k in await use_cases.list_keys(svc.store, workspace)])


@router.delete(
    "/{key_id}",
    response_model=KeyShown,
    responses=errors(404, 409, 422),
    summary="Revoke an API key (refused at once by every API process)",
)
async def revoke_key(key_id: KeyId, workspace: AdminWorkspace, svc: Svc) -> KeyShown:
    """Revoking a revoked key answers it as it is. The workspace's last admin key cannot be
    revoked (409): create another admin key first."""
    return _shown(await use_cases.revoke_key(svc.store, workspace, key_id))
