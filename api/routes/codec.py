"""Temporal's remote codec protocol, so a Temporal UI shows the payloads Flowline encrypts.

The UI (a browser page on another origin) POSTs ``{"payloads": [...]}`` (proto-JSON payloads:
base64 metadata values and data) to ``<endpoint>/decode`` and shows what comes back. The route
exists only when ``FLOWLINE_CODEC_ENDPOINT`` is true, and asks for an admin API key
(``Authorization: Bearer <key>``: the Temporal CLI sends one with ``--codec-auth``, a Temporal UI
through a proxy of yours), since it decrypts the payloads of every workspace. Only
``FLOWLINE_CODEC_OPEN`` drops the key: ``cli.py run`` sets it for its embedded UI while the API
listens on this machine alone (docs/keys.md#the-codec-endpoint).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payload

from api.body import CheckedRoute
from api.deps import services
from flowline.settings import Settings
from launch.payload_codec import PayloadKeyError, codec_from_setting

# What the UI sends besides the body (X-Namespace names the namespace; Authorization when the UI
# is set to pass its credentials on).
_ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"


def ui_origins(settings: Settings) -> set[str]:
    """The embedded Temporal UI's origins (cli.py run serves it on 127.0.0.1:<ui port>), and those
    of FLOWLINE_CODEC_UI_ORIGINS (a Temporal UI of a deployment, e.g. https://temporal.example.com)."""
    embedded = {f"http://{host}:{settings.temporal_ui_port}" for host in ("127.0.0.1", "localhost")}
    return embedded | {o.strip().rstrip("/") for o in settings.codec_ui_origins.split(",") if o.strip()}


def router_for(settings: Settings) -> APIRouter:
    router = APIRouter(route_class=CheckedRoute, tags=["codec"], include_in_schema=False)
    codec = codec_from_setting(settings.payload_keys.get_secret_value())
    origins = ui_origins(settings)

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin not in origins:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    @router.options("/codec/decode")
    async def preflight(request: Request) -> Response:
        return Response(status_code=200 if cors(request) else 403, headers=cors(request))

    async def refusal(request: Request) -> JSONResponse | None:
        """None when the caller may decode; else the answer (with CORS: the UI shows why)."""
        if settings.codec_open:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            message = "the codec endpoint needs an admin API key: send 'Authorization: Bearer <key>'"
            return JSONResponse({"message": message}, status_code=401, headers=cors(request))
        key = await services(request).keys.key(token.strip())
        if key is None:
            return JSONResponse(
                {"message": "unknown or revoked API key"}, status_code=401, headers=cors(request)
            )
        if key.scope != "admin":
            message = (
                f"this API key's scope is {key.scope!r}: the codec endpoint needs a key with scope 'admin'"
            )
            return JSONResponse({"message": message}, status_code=403, headers=cors(request))
        return None

    @router.post("/codec/decode")
    async def decode(request: Request) -> Response:
        # Errors carry the CORS headers too, so the UI can show why it could not decode.
        refused = await refusal(request)
        if refused is not None:
            return refused
        try:
            body: Any = await request.json()
            payloads = [ParseDict(p, Payload()) for p in body["payloads"]]
        except (ValueError, KeyError, TypeError, ParseError) as error:
            message = f"expected {{'payloads': [...]}} of Temporal payloads: {error}"
            return JSONResponse({"message": message}, status_code=400, headers=cors(request))
        try:
            decoded = payloads if codec is None else await codec.decode(payloads)
        except PayloadKeyError as error:
            return JSONResponse({"message": str(error)}, status_code=400, headers=cors(request))
        return JSONResponse({"payloads": [MessageToDict(p) for p in decoded]}, headers=cors(request))

    return router
