"""OpenTelemetry traces (docs/tracing.md): one tracer provider per process, exporting over
OTLP/HTTP when ``FLOWLINE_OTLP_ENDPOINT`` is set, and nothing at all otherwise.

Off (the default), nothing here runs on a request or an activity: ``start`` returns None, no
tracer provider exists (the SDK is not even imported), launch/tracing.py adds no Temporal
interceptor, api/tracing.py no middleware, and ``traced_transport`` leaves the outbound HTTP
client's transport as it was.

On, spans carry ids (journey, flow, workspace, step) and protocol facts (method, route, status,
host), never personal data: besides the code that sets only those, every span passes ``_scrubbed``
on its way out, which keeps the attributes of ``ALLOWED_ATTRIBUTES`` and drops the rest, and
reduces exceptions (their messages may quote an address, a profile value) to their type.

The provider is process-wide (``active``): the API and the worker each start it once from their
settings; a test that starts it stops it (``stop``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from flowline.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

# Flowline's own attributes.
JOURNEY_ID = "flowline.journey_id"
FLOW_ID = "flowline.flow_id"
WORKSPACE_ID = "flowline.workspace_id"
STEP_ID = "flowline.step_id"
# Everything a span may carry out of the process: Flowline's ids, OpenTelemetry's HTTP and network
# conventions (no URL, no path: only the route template), and temporalio's interceptor's ids
# (the workflow id of a journey is its journey id, a hash: flowline/journey/state.py).
ALLOWED_ATTRIBUTES = frozenset(
    {
        JOURNEY_ID,
        FLOW_ID,
        WORKSPACE_ID,
        STEP_ID,
        "http.request.method",
        "http.route",
        "http.response.status_code",
        "server.address",
        "server.port",
        "error.type",
        "exception.type",
        "temporalWorkflowID",
        "temporalRunID",
        "temporalActivityID",
        "temporalActivityType",
        "temporalUpdateID",
    }
)


@dataclass(frozen=True)
class Tracing:
    endpoint: str
    provider: TracerProvider
    tracer: trace.Tracer


_active: Tracing | None = None


def active() -> Tracing | None:
    """This process's tracing, or None when it is off."""
    return _active


def start(settings: Settings) -> Tracing | None:
    """This process's tracing, started from ``settings`` on first use; None when no endpoint is
    set. Idempotent: the API and the worker's client both call it."""
    global _active
    endpoint = settings.otlp_endpoint.strip().rstrip("/")
    if not endpoint:
        return None
    if _active is not None:
        if _active.endpoint != endpoint:
            raise RuntimeError(f"tracing already exports to {_active.endpoint}, not {endpoint}")
        return _active
    # Imported here: a process with tracing off never loads the SDK.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The sampler follows OTEL_TRACES_SAMPLER (parent-based, always on by default); the exporter
    # reads OTEL_EXPORTER_OTLP_HEADERS / _TIMEOUT / _COMPRESSION. At exit the provider flushes.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.trace_service_name}))
    exporter = _scrubbed(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _active = Tracing(endpoint, provider, provider.get_tracer("flowline"))
    return _active


def stop() -> None:
    """Flush and end this process's tracing (tests; a process's exit does it by itself)."""
    global _active
    if _active is not None:
        _active.provider.shutdown()
        _active = None


def error_type(error: BaseException) -> str:
    return type(error).__qualname__


@contextlib.contextmanager
def client_span(name: str, attributes: Mapping[str, str | int]) -> Iterator[trace.Span | None]:
    """A CLIENT span around an outbound call (SMTP, HTTP) while tracing is on; None otherwise.
    An exception marks the span failed with its type only (its message may be personal)."""
    tracing = _active
    if tracing is None:
        yield None
        return
    with tracing.tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as error:
            span.set_attribute("error.type", error_type(error))
            span.set_status(Status(StatusCode.ERROR, error_type(error)))
            raise


class TracedTransport(httpx.AsyncBaseTransport):
    """A span per outbound HTTP request (method, host, port, status: never the URL, whose path
    and query a flow's templates fill), and the W3C ``traceparent`` header on the request so
    that a receiver that traces joins the journey's trace."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        attributes: dict[str, str | int] = {
            "http.request.method": request.method,
            "server.address": url.host,
            "server.port": url.port or (443 if url.scheme == "https" else 80),
        }
        with client_span(request.method, attributes) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            request.headers.update(carrier)
            response = await self.inner.handle_async_request(request)
            if span is not None:
                span.set_attribute("http.response.status_code", response.status_code)
                if response.status_code >= 400:
                    span.set_attribute("error.type", str(response.status_code))
                    span.set_status(Status(StatusCode.ERROR))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def traced_transport(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncBaseTransport | None:
    """``transport`` with a span per request while tracing is on (None: httpx's own transport);
    ``transport`` itself when off."""
    if _active is None:
        return transport
    return TracedTransport(transport or httpx.AsyncHTTPTransport())


def _scrubbed(inner: SpanExporter) -> SpanExporter:
    """``inner`` receiving only allowed attributes (see the module's docstring)."""
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

    def allowed(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
        return {k: v for k, v in (attributes or {}).items() if k in ALLOWED_ATTRIBUTES}

    def scrub(span: ReadableSpan) -> ReadableSpan:
        status = span.status
        if status.description:  # temporalio writes "<type>: <message>"
            status = Status(status.status_code, status.description.split(":", 1)[0])
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=allowed(span.attributes),
            events=[Event(e.name, allowed(e.attributes), e.timestamp) for e in span.events],
            links=[trace.Link(link.context, allowed(link.attributes)) for link in span.links],
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    class Scrubbed(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return inner.export([scrub(span) for span in spans])

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return Scrubbed()
