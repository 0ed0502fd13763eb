"""HTTP metrics of the API and its ``GET /metrics`` (docs/metrics.md).

Requests are counted by route template (``/v1/flows/{flow_id}``), never by the path as sent: a
path carries ids, and every distinct one would be a new time series. A request no route takes is
``unmatched``.
"""

from __future__ import annotations

import time

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowline import logs, metrics

UNMATCHED = "unmatched"
# A client may send any token as the method: others are "other", so that labels stay bounded.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope, templates: dict[int, str]) -> str:
    """The template of the route that took the request: FastAPI's routes set ``scope["route"]``;
    the others (the console's files, the docs pages, /metrics) only their ``endpoint``, looked up
    in ``templates``."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    return templates.get(id(scope.get("endpoint")), UNMATCHED)


def endpoint_templates(app: FastAPI) -> dict[int, str]:
    """Each plain route's and mount's template, by the identity of the endpoint it puts in the
    request's scope (a mount: the app it mounts)."""
    found: dict[int, str] = {}
    for route in app.routes:
        if isinstance(route, Mount):
            found[id(route.app)] = route.path.rstrip("/") + "/{path}"
        elif isinstance(route, Route):
            found[id(route.endpoint)] = route.path
    return found


class RequestMetrics:
    """Counts every HTTP request by method, route template and status, with its duration
    (until the answer's last byte). Outermost, so that answers of the other middleware count too."""

    def __init__(self, app: ASGIApp, routes_of: FastAPI) -> None:
        self.app = app
        self.routes_of = routes_of
        self._templates: dict[int, str] | None = None
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def templates(self) -> dict[int, str]:
        # Built at the first request: the routes are all in place by then.
        if self._templates is None:
            self._templates = endpoint_templates(self.routes_of)
        return self._templates

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
            method = scope["method"] if scope["method"] in METHODS else "other"
            key = (method, route_template(scope, self.templates()), status)
            counted = self._children.get(key)
            if counted is None:  # labels() validates and locks: once per key, not per request
                method, route, _ = key
                counted = (
                    metrics.HTTP_REQUESTS.labels(method, route, str(status)),
                    metrics.HTTP_DURATION.labels(method, route),
                )
                self._children[key] = counted
            counted[0].inc()
            counted[1].observe(time.perf_counter() - began)


async def _metrics(_request: Request) -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


def install(app: FastAPI, *, endpoint: bool) -> None:
    """The request metrics, and ``GET /metrics`` unless turned off (FLOWLINE_METRICS_ENDPOINT).
    It needs no API key: counts by route and status, nothing of any workspace or person."""
    if endpoint:
        # A plain route: outside the OpenAPI document and the API's bearer authentication.
        app.add_route("/metrics", _metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestMetrics, routes_of=app)
