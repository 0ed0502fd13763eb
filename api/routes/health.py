"""Liveness (the process answers) and readiness (database and Temporal answer)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.body import CheckedRoute
from api.deps import Svc

router = APIRouter(route_class=CheckedRoute, tags=["health"])


class Readiness(BaseModel):
    status: str
    # Each dependency: "ok", or "unavailable: <why>".
    checks: dict[str, str]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "the database or Temporal does not answer"}},
)
async def readyz(svc: Svc) -> Any:
    checks: dict[str, str] = {}
    try:
        async with svc.store.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unavailable: {error.__class__.__name__}"
    try:
        await asyncio.wait_for(svc.temporal.service_client.check_health(), timeout=3)
        checks["temporal"] = "ok"
    except Exception as error:
        checks["temporal"] = f"unavailable: {error.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )
