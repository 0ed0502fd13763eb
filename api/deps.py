"""Request dependencies: the shared services and the caller's workspace (from its API key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api.errors import ApiError
from flowline import logs
from flowline.settings import Settings
from flowline.store.api_keys import KeyRecord
from flowline.store.database import Store
from launch.routing import JourneyLauncher
from services.api_keys import KeyCheck


@dataclass
class Services:
    """What a route hands to the use cases (services/): the store, Temporal, the launcher."""

    settings: Settings
    store: Store
    temporal: Client
    launcher: JourneyLauncher
    # The key of each request (no cache: a revoked key is refused at once in every process).
    keys: KeyCheck


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


_bearer = HTTPBearer(auto_error=False, description="A workspace API key: `Authorization: Bearer fl_...`")
# What a read key may do: read (docs/keys.md).
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> KeyRecord:
    """The request's API key (read afresh each time: a revoked key is refused at once). Kept in
    ``request.state.api_key`` for whatever else wants to know the caller."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    found = await services(request).keys.key(credentials.credentials)
    if found is None:
        raise ApiError(401, "unknown or revoked API key")
    request.state.api_key = found
    logs.set_ids(workspace_id=found.workspace_id)
    return found


Caller = Annotated[KeyRecord, Depends(caller)]


async def workspace(request: Request, key: Caller) -> str:
    """The caller's workspace, once its key's scope allows the request: a read key only reads."""
    if key.scope == "read" and request.method not in READ_METHODS:
        raise ApiError(
            403,
            f"this API key's scope is 'read': it may only read (GET); {request.method} "
            "needs a key with scope 'write' or 'admin'",
        )
    return key.workspace_id


async def admin_workspace(key: Caller) -> str:
    """The caller's workspace, for key management: admin keys only."""
    if key.scope != "admin":
        raise ApiError(
            403,
            f"this API key's scope is {key.scope!r}: managing API keys needs a key with scope 'admin'",
        )
    return key.workspace_id


FORM = "application/x-www-form-urlencoded"
# As long as a profile id in a body may be (EventIn, ProfileIn): longer ones were stored on SQLite
# and a 500 on PostgreSQL (varchar(200)).
ProfileId = Annotated[str, Path(min_length=1, max_length=200, description="the person's id (your own)")]
Workspace = Annotated[str, Depends(workspace)]
AdminWorkspace = Annotated[str, Depends(admin_workspace)]
Svc = Annotated[Services, Depends(services)]
