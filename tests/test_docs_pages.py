"""/docs and /redoc work without the internet: every script, style and icon they load is served
by the API itself (FastAPI's defaults come from a CDN: a blank page offline)."""

from __future__ import annotations

import re

import httpx
import pytest

from api.app import create_app
from flowline.settings import Settings

# The attributes a page loads things from, in the HTML FastAPI writes (and in its inline script).
_LOADED = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


async def _loaded_by(client: httpx.AsyncClient, page: str) -> list[str]:
    response = await client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    return _LOADED.findall(response.text)


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_the_api_pages_load_nothing_from_elsewhere(page: str, assets: set[str]) -> None:
    app = create_app(Settings(sweep_seconds=0))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        loaded = await _loaded_by(client, page)
        # Everything is a path on this server (no scheme, no //host): nothing leaves the machine.
        assert loaded and all(url.startswith("/") and not url.startswith("//") for url in loaded), loaded
        assert "/openapi.json" in loaded
        assert {url.rsplit("/", 1)[-1] for url in loaded if url.startswith("/docs-assets/")} == assets
        for url in loaded:
            response = await client.get(url)
            assert response.status_code == 200, url
            assert len(response.content) > 1000, url  # the real file, not an empty answer
        page_html = (await client.get(page)).text
        assert "fonts.googleapis.com" not in page_html and "cdn.jsdelivr.net" not in page_html


async def test_the_pages_follow_a_proxy_prefix() -> None:
    app = create_app(Settings(sweep_seconds=0))
    transport = httpx.ASGITransport(app=app, root_path="/flowline")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        loaded = await _loaded_by(client, "/docs")
    assert "/flowline/openapi.json" in loaded
    assert "/flowline/docs-assets/swagger-ui-bundle.js" in loaded


def test_the_pages_are_not_in_the_openapi_document() -> None:
    paths = create_app(Settings(sweep_seconds=0)).openapi()["paths"]
    assert not {"/docs", "/redoc"} & set(paths) and not any(p.startswith("/docs-assets") for p in paths)
