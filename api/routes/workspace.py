"""The workspace's own settings (the API key names the workspace)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import Svc, Workspace
from flowline.store import workspaces

router = APIRouter(prefix="/v1/workspace", tags=["workspace"])


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


@router.put("", response_model=WorkspaceSettings, summary="Set the workspace's settings")
async def put_workspace(body: WorkspaceSettings, workspace: Workspace, svc: Svc) -> WorkspaceSettings:
    async with svc.store.begin() as conn:
        await workspaces.set_workspace_timezone(conn, workspace, body.timezone)
    return body
