"""HTTP metrics of the API and its ``GET /metrics`` (docs/metrics.md).

Requests are counted by route template (``/v1/flows/{flow_id}``), never by the path as sent: a
path carries ids, and every distinct one would be a new time series. A request no route takes is
``unmatched``.
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowline import logs, metrics

UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    """The template of the route that took the request (routers set ``scope["route"]``)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED
    if getattr(route, "routes", None) is not None:  # a Mount (the console's files): its prefix
        return path.rstrip("/") + "/{path}"
    return path


class RequestMetrics:
    """Counts every HTTP request by method, route template and status, with its duration
    (until the answer's last byte). Outermost, so that answers of the other middleware count too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # an exception before any answer: the server answers 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        # The caller's workspace goes on this request's log lines (api/deps.py), not on the next.
        ids = logs.request_ids()
        try:
            await self.app(scope, receive, sending)
        finally:
            logs.end_request(ids)
            route, method = route_template(scope), scope["method"]
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_DURATION.labels(method, route).observe(time.perf_counter() - began)


async def _metrics(_request: Request) -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


def install(app: FastAPI, *, endpoint: bool) -> None:
    """The request metrics, and ``GET /metrics`` unless turned off (FLOWLINE_METRICS_ENDPOINT).
    It needs no API key: counts by route and status, nothing of any workspace or person."""
    if endpoint:
        # A plain route: outside the OpenAPI document and the API's bearer authentication.
        app.add_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestMetrics)
