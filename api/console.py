"""The console at ``/console``: a read-and-act view of flows and journeys in the browser. Its
files (console/ at the repository's root: HTML, JavaScript modules, CSS; no build step, nothing
from elsewhere) are served as they are; everything it shows comes from the ``/v1`` API with the
API key the person signs in with."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from flowline.settings import Settings

FILES = Path(__file__).resolve().parent.parent / "console"
# The console loads from this server only, and runs no inline script (an injected one too).
POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


class _ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = POLICY
        return response


def install(app: FastAPI, settings: Settings) -> None:
    async def to_index(request: Request) -> RedirectResponse:
        # The page's relative URLs (app.js, style.css) resolve under /console/.
        return RedirectResponse(f"{request.scope.get('root_path', '')}/console/")

    async def config(_request: Request) -> JSONResponse:
        # Not a secret: where the Temporal UI listens, for links to a journey's workflow.
        return JSONResponse(
            {"temporal_ui_port": settings.temporal_ui_port, "temporal_namespace": settings.temporal_namespace}
        )

    app.add_route("/console", to_index, include_in_schema=False)
    app.add_route("/console/config.json", config, include_in_schema=False)
    app.mount("/console", _ConsoleFiles(directory=FILES, html=True), name="console")
