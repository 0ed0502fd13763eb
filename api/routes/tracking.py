"""Email tracking links: the open pixel, click redirects and unsubscribe (RFC 8058 one-click).

Unsubscribing takes a POST (the one-click POST of mail clients, or the button of the page a GET
shows): scanners and prefetchers that follow links with GET unsubscribe nobody.

No API key: these URLs are opened by mail clients and the people reading the mail, and the
signed token in the path is the authority (flowline.channels.tracking). A token that does not
verify records nothing; a click token only ever redirects to the URL it signs.
"""

from __future__ import annotations

import base64
import html
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.body import CheckedRoute
from api.deps import Svc
from api.errors import ApiError
from flowline.channels.feedback import FeedbackKind, record_feedback
from flowline.channels.tracking import TokenKind, TrackingToken, claimed_workspace, verify
from flowline.channels.tracking_keys import TrackingKeys
from flowline.store.database import utcnow
from launch.journey_start import JourneyStartFailed

log = logging.getLogger("flowline.tracking")
router = APIRouter(route_class=CheckedRoute, prefix="/t", tags=["tracking"])

# A transparent 1x1 GIF.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"}


def _keys(request: Request, svc: Svc) -> TrackingKeys:
    keys: TrackingKeys | None = getattr(request.app.state, "tracking_keys", None)
    if keys is None:
        keys = request.app.state.tracking_keys = TrackingKeys(svc.store)
    return keys


async def _token(request: Request, svc: Svc, token: str, kind: TokenKind) -> TrackingToken | None:
    """The token's content if it verifies under the key of the workspace it names."""
    workspace_id = claimed_workspace(token)
    key = await _keys(request, svc).key(workspace_id) if workspace_id is not None else None
    return verify(token, key, kind) if key is not None else None


async def _record(
    svc: Svc, found: TrackingToken, kind: FeedbackKind, detail: dict[str, Any], *, quiet: bool
) -> bool:
    """Record the feedback; with ``quiet``, a failure is logged and the reader is served anyway
    (a pixel or a redirect matters more to them than our statistics)."""
    try:
        return await record_feedback(
            svc.store,
            svc.launcher,
            delivery_id=found.delivery_id,
            kind=kind,
            at=utcnow(),
            detail=detail,
            workspace_id=found.workspace_id,
        )
    except JourneyStartFailed as error:
        # Stored, not routed yet: the sweeper routes it.
        log.warning("%s feedback of %s not routed yet: %s", kind, found.delivery_id, error)
        return True
    except Exception:
        if not quiet:
            raise
        log.exception("recording %s feedback of %s failed", kind, found.delivery_id)
        return False


@router.get("/o/{token}", summary="Open pixel", include_in_schema=False)
async def open_pixel(token: str, request: Request, svc: Svc) -> Response:
    try:
        found = await _token(request, svc, token, "open")
    except Exception:  # the key lookup failed (the database): the image all the same
        log.exception("checking an open pixel token failed")
        found = None
    if found is not None:
        await _record(svc, found, "opened", {}, quiet=True)
    return Response(PIXEL, media_type="image/gif", headers=_NO_STORE)


@router.get("/c/{token}", summary="Click redirect", include_in_schema=False)
async def click(token: str, request: Request, svc: Svc) -> Response:
    found = await _token(request, svc, token, "click")
    # Only web links are ever signed; anything else is refused all the same (defence in depth).
    if found is None or found.url is None or not found.url.lower().startswith(("http://", "https://")):
        raise ApiError(404, "unknown link")
    await _record(svc, found, "clicked", {"url": found.url}, quiet=True)
    return RedirectResponse(found.url, status_code=302, headers=_NO_STORE)


async def _unsubscribe(token: str, request: Request, svc: Svc) -> TrackingToken:
    found = await _token(request, svc, token, "unsubscribe")
    if found is None:
        raise ApiError(404, "unknown link")
    try:
        await _record(svc, found, "unsubscribed", {}, quiet=False)
    except Exception as error:
        log.exception("unsubscribe of %s failed", found.delivery_id)
        raise ApiError(503, "could not unsubscribe right now; please try again") from error
    return found


# The confirmation page a GET answers. Mail scanners and link prefetchers follow every link of a
# message, so a GET changes nothing: the person confirms with the button, which POSTs to the same
# URL (relative, so a FLOWLINE_PUBLIC_URL with a path prefix still works). It names nobody: the
# token is all it knows, and only its (URL-safe, escaped all the same) text is echoed.
_CONFIRM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>Unsubscribe</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem">
<h1>Unsubscribe?</h1><p>You will not receive these emails any more.</p>
<form method="post" action="{action}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form></body></html>
"""

_DONE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="robots" content="noindex"><title>Unsubscribed</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem">
<h1>You are unsubscribed</h1><p>You will not receive these emails any more.</p></body></html>
"""

# The pages load nothing and post only to us; the token in the URL goes to no one else.
_PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


@router.get("/u/{token}", summary="Unsubscribe (confirmation page)", include_in_schema=False)
async def unsubscribe_page(token: str, request: Request, svc: Svc) -> HTMLResponse:
    # The token is checked (a tampered one is a 404 here too) but nothing is recorded.
    if await _token(request, svc, token, "unsubscribe") is None:
        raise ApiError(404, "unknown link")
    action = html.escape(f"./{token}", quote=True)
    return HTMLResponse(_CONFIRM.format(action=action), headers=_PAGE_HEADERS)


@router.post(
    "/u/{token}", summary="Unsubscribe (RFC 8058 one-click, or the page's button)", include_in_schema=False
)
async def unsubscribe_one_click(token: str, request: Request, svc: Svc) -> HTMLResponse:
    # A mail client's body is "List-Unsubscribe=One-Click" (RFC 8058), the page's form posts the
    # same; the token alone decides. The page is for the person who pressed the button.
    await _unsubscribe(token, request, svc)
    return HTMLResponse(_DONE, headers=_PAGE_HEADERS)
