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
from flowline.store.database import Store
from flowline.store.workspaces import hash_key, workspace_for_key
from flowline.ttl_cache import TtlCache
from launch.routing import JourneyLauncher


@dataclass
class Services:
    """What a route hands to the use cases (services/): the store, Temporal, the launcher."""

    settings: Settings
    store: Store
    temporal: Client
    launcher: JourneyLauncher
    # API key hash -> workspace id
    api_keys: TtlCache[str, str]


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


_bearer = HTTPBearer(auto_error=False, description="A workspace API key: `Authorization: Bearer fl_...`")


async def workspace(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    svc = services(request)
    digest = hash_key(credentials.credentials)
    found = svc.api_keys.get(digest)
    if found is None:
        async with svc.store.connect() as conn:
            found = await workspace_for_key(conn, credentials.credentials)
        if found is None:
            raise ApiError(401, "unknown or revoked API key")
        svc.api_keys.put(digest, found)
    logs.set_ids(workspace_id=found)
    return found


FORM = "application/x-www-form-urlencoded"
# As long as a profile id in a body may be (EventIn, ProfileIn): longer ones were stored on SQLite
# and a 500 on PostgreSQL (varchar(200)).
ProfileId = Annotated[str, Path(min_length=1, max_length=200, description="the person's id (your own)")]
Workspace = Annotated[str, Depends(workspace)]
Svc = Annotated[Services, Depends(services)]
