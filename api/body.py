"""Every request body is read here first: one place, so a new route cannot forget a limit.

``BodyLimit`` refuses a body above ``max_body_bytes`` with 413 before it is read (its
Content-Length), or as it streams in (bytes counted, never more buffered). ``CheckedRoute``,
the route class of every router (``api.app`` refuses to start with another), then reads each
non-empty body as JSON, whatever its Content-Type says, since some routes parse their body
themselves. A body that is not JSON (YAML flows, form posts, garbage) goes on to its route
unchanged and keeps the answer it had (flows check their YAML with the same rules). A JSON body
is parsed once, kept for the route (``request.json()``), and refused with 422 and the path of
each fault (``flowline.json_values.value_faults``: numbers a double cannot hold, strings and keys
too long or not storable, nesting too deep) before anything of it can be written. Only
``BatchRoute`` (POST /v1/events) checks its items itself, to keep the valid events of a batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError
from flowline.json_values import JsonFault, JsonUnreadable, loads, text_fault, value_faults
from flowline.settings import Settings

# Set in the request's scope once read_body parsed the body (kept in Starlette's request.json()
# cache, where FastAPI's body reading finds it too).
_PARSED = "flowline.json_body"


def fault_list(faults: list[JsonFault]) -> list[dict[str, str]]:
    return [{"path": f.path, "message": f.message} for f in faults]


def invalid(faults: list[JsonFault]) -> ApiError:
    return ApiError(422, "the request is invalid; nothing was changed", faults=fault_list(faults))


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # set by create_app (services come later)
    return settings


async def read_body(request: Request) -> None:
    raw = await request.body()  # bounded: BodyLimit stops it at the limit
    if not raw.strip():
        return
    limits = _settings(request).json_limits()
    try:
        value = loads(raw, limits)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # not JSON: the route answers as it always did
    except JsonUnreadable as error:
        raise invalid(error.faults) from None
    request._json = value  # Starlette's cache: request.json() and FastAPI's body reading use it
    request.scope[_PARSED] = True
    faults = value_faults(value, limits)
    if faults:
        raise invalid(faults)


def read_as_json(request: Request) -> bool:
    """True when the body was JSON (read and checked by ``read_body``: ``request.json()`` has it)."""
    return bool(request.scope.get(_PARSED))


async def json_body(request: Request) -> Any:
    """The body as JSON for a route that reads it itself (``BatchRoute``): unreadable past a
    limit, 422 with the path; not JSON, FastAPI's own 422 for it. Values are the route's to check."""
    if request.scope.get(_PARSED):
        return await request.json()
    raw = await request.body()
    if not raw.strip():
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        return loads(raw, _settings(request).json_limits())
    except JsonUnreadable as error:
        raise invalid(error.faults) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        position = error.pos if isinstance(error, json.JSONDecodeError) else error.start
        reason = error.msg if isinstance(error, json.JSONDecodeError) else error.reason
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", position),
                    "msg": "JSON decode error",
                    "ctx": {"error": reason},
                }
            ]
        ) from error


def _check_parameters(request: Request) -> None:
    """Path and query parameters hold text the store can keep (PostgreSQL refuses U+0000: an id
    with it was a 500), reported as FastAPI reports their other faults (``path.profile_id``)."""
    max_string = _settings(request).max_string_chars
    given = [("path", k, v) for k, v in request.path_params.items()]
    given += [("query", k, v) for k, v in request.query_params.multi_items()]
    faults = []
    for where, name, value in given:
        reason = text_fault(value, max_string) if isinstance(value, str) else None
        if reason is not None:
            faults.append(JsonFault(f"{where}.{name}", f"a parameter {reason}"))
    if faults:
        raise invalid(faults)


class CheckedRoute(APIRoute):
    """Reads and checks the body before FastAPI's handler (see the module's docstring)."""

    # False where the route parses the body itself with json_body and checks the values item by
    # item (POST /v1/events keeps the valid events of a batch, and parses the usual batch in
    # pydantic-core at once); the size limit still applies.
    parse_json: ClassVar[bool] = True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        parse_json = self.parse_json

        async def checked(request: Request) -> Response:
            _check_parameters(request)
            if parse_json:
                await read_body(request)
            else:
                await request.body()  # the size limit, before anything else
            return await handler(request)

        return checked


class BatchRoute(CheckedRoute):
    parse_json = False


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, in the API's error shape.

    (Starlette's own limit answers in plain text, over any answer of the app.)"""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse({"message": self._message()}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException: FastAPI passes it on from its own body reading too.
                    raise HTTPException(413, self._message())
            return message

        await self.app(scope, counted, send)
