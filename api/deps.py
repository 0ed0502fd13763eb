"""Request dependencies: the shared services and the caller's workspace (from its API key)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api.errors import ApiError
from flowline.json_values import NUL, member_path, nul_paths
from flowline.settings import Settings
from flowline.store.database import Store
from flowline.store.workspaces import hash_key, workspace_for_key
from flowline.ttl_cache import TtlCache
from workflows.routing import JourneyLauncher


@dataclass
class Services:
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
    return found


FORM = "application/x-www-form-urlencoded"
# As long as a profile id in a body may be (EventIn, ProfileIn): longer ones were stored on SQLite
# and a 500 on PostgreSQL (varchar(200)).
ProfileId = Annotated[str, Path(min_length=1, max_length=200, description="the person's id (your own)")]
Workspace = Annotated[str, Depends(workspace)]
Svc = Annotated[Services, Depends(services)]


async def no_nul_characters(request: Request) -> None:
    """Refuses U+0000 in path and query parameters and in bodies (JSON, or a form): valid input to
    JSON and HTTP, but PostgreSQL's text and jsonb cannot hold it, so it would fail the write (a
    500) there and be stored on SQLite. 422 on both, with the path of each."""
    faults = [f"path.{name}" for name, value in request.path_params.items() if NUL in str(value)]
    faults += [f"query.{name}" for name, value in request.query_params.multi_items() if NUL in name + value]
    body = await request.body() if request.method in ("POST", "PUT", "PATCH") else b""
    if b"\\u0000" in body:  # cheap: JSON can only write U+0000 so
        with contextlib.suppress(ValueError):
            faults += nul_paths(json.loads(body))
    elif b"%00" in body and request.headers.get("content-type", "").startswith(FORM):
        faults += [member_path("$", k) for k, v in parse_qsl(body.decode(errors="replace")) if NUL in k + v]
    if faults:
        message = "must not contain the character U+0000"
        raise ApiError(
            422, "the request is invalid", faults=[{"path": p, "message": message} for p in faults]
        )
