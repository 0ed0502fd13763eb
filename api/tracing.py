"""A span per API request while tracing is on (docs/tracing.md), the root of a journey's trace.

Named ``<method> <route template>`` (``POST /v1/events``), with the method, the template and the
status: never the path itself, which carries profile ids. A ``traceparent`` header from the
caller makes the request a child of the caller's span. Off, nothing is installed.
"""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowline import tracing
from flowline.settings import Settings


def install(app: Starlette, settings: Settings) -> None:
    """The middleware, outermost of those added so far, when ``settings`` turn tracing on."""
    started = tracing.start(settings)
    if started is not None:
        app.add_middleware(TraceRequests, tracer=started.tracer)


class TraceRequests:
    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracer.start_as_current_span(
            method,
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await self.app(scope, receive, sending)
            except Exception as error:
                span.set_attribute("error.type", tracing.error_type(error))
                raise
            finally:
                # The router put the matched route in the scope (FastAPI: the APIRoute).
                template = getattr(scope.get("route"), "path", None)
                if isinstance(template, str):
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
