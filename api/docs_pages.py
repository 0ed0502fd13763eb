"""The API's own pages, ``/docs`` (Swagger UI) and ``/redoc``, with their scripts, styles and icon
served by the API itself from the fastapi-offline package (its static files, pinned in
requirements.lock). FastAPI's default pages load them from a CDN, so on a machine without the
internet ``/docs`` was a blank page."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"
# The pages may load from this server only: ReDoc's bundle asks cdn.redoc.ly for its logo, which
# the browser then does not even try. Inline scripts and styles are the pages' own (FastAPI's
# HTML, the libraries' styles); ReDoc runs its search in a worker made from a blob.
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def install(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets (create the app with ``docs_url=None`` and
    ``redoc_url=None``: these replace FastAPI's)."""
    static = files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")

    def asset(request: Request, name: str) -> str:
        # Behind a proxy that mounts the API under a prefix, the prefix comes first.
        return f"{request.scope.get('root_path', '')}{ASSETS}/{name}"

    def openapi_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    async def swagger_ui(request: Request) -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url(request),
                title=f"{app.title} API",
                swagger_js_url=asset(request, "swagger-ui-bundle.js"),
                swagger_css_url=asset(request, "swagger-ui.css"),
                swagger_favicon_url=asset(request, "favicon.png"),
            )
        )

    async def redoc(request: Request) -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url=openapi_url(request),
                title=f"{app.title} API",
                redoc_js_url=asset(request, "redoc.standalone.js"),
                redoc_favicon_url=asset(request, "favicon.png"),
                with_google_fonts=False,  # the fonts too would come from the internet
            )
        )

    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = POLICY
    return page
