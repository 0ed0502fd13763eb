"""The workspace's own settings (the API key names the workspace)."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, WITH_BODY, errors
from flowline.channels.config import SECRET_FIELDS, ChannelSettings
from flowline.document_paths import error_path
from flowline.secrets import MASK, kept_secrets, mask
from flowline.store import workspaces
from services import workspace as workspace_use_cases

router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/workspace", tags=["workspace"], responses=AUTHENTICATED
)


class WorkspaceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Wall-clock times (pauses, date waits, windows) of people without a ``timezone`` attribute.
    timezone: str | None = Field(default=None, examples=["Europe/Paris"])

    @field_validator("timezone")
    @classmethod
    def _known(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value


@router.get("", response_model=WorkspaceSettings, summary="The workspace's settings")
async def get_workspace(workspace: Workspace, svc: Svc) -> WorkspaceSettings:
    async with svc.store.connect() as conn:
        return WorkspaceSettings(timezone=await workspaces.workspace_timezone(conn, workspace))


@router.put("", response_model=WorkspaceSettings, responses=WITH_BODY, summary="Set the workspace's settings")
async def put_workspace(body: WorkspaceSettings, workspace: Workspace, svc: Svc) -> WorkspaceSettings:
    await workspace_use_cases.change_zone(
        svc.store, svc.temporal, svc.settings.task_queue, workspace, body.timezone
    )
    return body


CHANNELS = ("email", "sms", "push")
# Secrets one level down: (channel, key, its secrets) -- the push service account's private key.
NESTED_SECRETS = (("push", "service_account", ("private_key",)),)


def masked(settings: ChannelSettings) -> dict[str, Any]:
    shown = settings.model_dump(mode="json")
    for channel in CHANNELS:
        if isinstance(shown[channel], dict):
            mask(shown[channel], SECRET_FIELDS)
    for channel, key, names in NESTED_SECRETS:
        if isinstance(shown[channel], dict) and isinstance(shown[channel].get(key), dict):
            mask(shown[channel][key], names)
    return shown


def _unmask(document: dict[str, Any], stored: ChannelSettings) -> list[dict[str, str]]:
    """Put the stored secrets where ``document`` sends the mask back; faults where none is stored."""
    faults = []
    for channel in CHANNELS:
        given, kept = document.get(channel), getattr(stored, channel)
        if not isinstance(given, dict):
            continue
        same_provider = kept is not None and given.get("provider") == kept.provider
        secrets, missing = kept_secrets(given, kept if same_provider else None, SECRET_FIELDS, f"$.{channel}")
        given.update(secrets)
        faults += [{"path": path, "message": message} for path, message in missing]
    for channel, key, names in NESTED_SECRETS:
        given = document.get(channel)
        inner = given.get(key) if isinstance(given, dict) else None
        if not isinstance(inner, dict):
            continue
        # The stored key is kept for the same service account only (same key id and email).
        stored_inner = getattr(getattr(stored, channel), key, None)
        same = stored_inner is not None and (
            inner.get("private_key_id"),
            inner.get("client_email"),
        ) == (stored_inner.private_key_id, stored_inner.client_email)
        secrets, missing = kept_secrets(inner, stored_inner if same else None, names, f"$.{channel}.{key}")
        inner.update(secrets)
        faults += [{"path": path, "message": message} for path, message in missing]
    return faults


_CHANNELS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"Each channel's provider; secrets sent as {MASK!r} keep their stored value.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChannelSettings"}}},
    }
}


@router.get("/channels", response_model=ChannelSettings, summary="The channels' providers (secrets masked)")
async def get_channels(workspace: Workspace, svc: Svc) -> Any:
    async with svc.store.connect() as conn:
        return masked(await workspaces.channel_settings(conn, workspace))


@router.put(
    "/channels",
    response_model=ChannelSettings,
    responses=errors(413, 422),
    openapi_extra=_CHANNELS_BODY,
    summary="Set the channels' providers",
)
async def put_channels(request: Request, workspace: Workspace, svc: Svc) -> Any:
    """Replaces the whole configuration: a channel left out has no provider afterwards."""
    try:
        document = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(
            422, "the request is invalid", faults=[{"path": "$", "message": f"not JSON: {error}"}]
        ) from error
    if not isinstance(document, dict):
        raise ApiError(422, "the request is invalid", faults=[{"path": "$", "message": "expected an object"}])
    async with svc.store.begin() as conn:
        faults = _unmask(document, await workspaces.channel_settings(conn, workspace))
        try:
            settings = ChannelSettings.model_validate(document)
        except ValidationError as error:
            faults += [{"path": error_path(document, e), "message": e["msg"]} for e in error.errors()]
        if faults:
            raise ApiError(422, "the channel settings are invalid; nothing was changed", faults=faults)
        await workspaces.set_channel_settings(conn, workspace, settings)
    return masked(settings)
