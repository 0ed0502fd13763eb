"""Every error is JSON with a message; documents add the path of each fault. Never a bare 500."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from flowline.document_paths import error_path
from flowline.flow.validation import FlowInvalid
from services.errors import Invalid, NotFound, Refused, ServiceError, TemporalUnavailable

log = logging.getLogger("flowline.api")


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


# The HTTP status of each error of the use cases (services/errors.py).
SERVICE_STATUS: dict[type[ServiceError], int] = {
    NotFound: 404,
    Refused: 409,
    Invalid: 422,
    TemporalUnavailable: 503,
}


def service_answer(error: ServiceError) -> ApiError:
    status = next((SERVICE_STATUS[kind] for kind in type(error).__mro__ if kind in SERVICE_STATUS), 500)
    if isinstance(error, Invalid):
        faults = [{"path": path, "message": message} for path, message in error.faults]
        return ApiError(status, error.message, faults=faults)
    return ApiError(status, error.message)


def request_fault(body: Any, error: Mapping[str, Any]) -> dict[str, str]:
    """A fault of a request: body faults as paths into the body sent (``exc.body``), without the
    union tags and member names pydantic puts into locations; query and path parameters by name."""
    loc = tuple(error.get("loc", ()))
    message = str(error.get("msg", "invalid"))
    if error.get("type") == "json_invalid":
        # The location's index is a character offset, not an index of the document.
        detail = error.get("ctx", {}).get("error")
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return {"path": "$", "message": f"{message}: {detail}{where}" if detail else message}
    if not loc or loc[0] != "body":
        return {"path": ".".join(str(part) for part in loc) or "$", "message": message}
    return {"path": error_path(body, error, prefix=1), "message": message}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        # A 503 is always "send again": say when, as the store-busy answer does.
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return JSONResponse({"message": exc.message, **exc.extra}, status_code=exc.status, headers=headers)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return await api_error(request, service_answer(exc))

    @app.exception_handler(FlowInvalid)
    async def flow_invalid(_request: Request, exc: FlowInvalid) -> JSONResponse:
        return JSONResponse(
            {"message": "the flow document is invalid", "faults": [f.as_dict() for f in exc.faults]},
            status_code=422,
        )

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        faults = [request_fault(exc.body, e) for e in exc.errors()]
        return JSONResponse({"message": "the request is invalid", "faults": faults}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"message": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    async def store_busy(_request: Request, _exc: sqlalchemy.exc.TimeoutError) -> JSONResponse:
        # Every database connection is taken: the client should back off and send again.
        return JSONResponse(
            {"message": "the store is busy; send the request again shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", incident, request.method, request.url.path)
        return JSONResponse({"message": "internal error", "incident": incident}, status_code=500)
