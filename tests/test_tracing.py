"""Traces (docs/tracing.md): one event through the API starts a journey that sends an email
(aiosmtpd) and calls a webhook (a local receiver); a real OTLP/HTTP receiver on 127.0.0.1 gets
one trace from the API request down to the SMTP send and the HTTP call, with Flowline's ids and
no personal data; a second event, which the journey waits for, is a signal traced from its own
request into the journey's trace. The traced journey's history replays with and without the
interceptor. With no endpoint configured nothing is installed."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.trace import SpanKind, Status, StatusCode
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from api.app import create_app
from api.tracing import TraceRequests
from flowline import tracing
from flowline.channels.config import ChannelSettings
from flowline.channels.outbound import outbound_client
from flowline.journey import JourneyState
from flowline.settings import Settings
from flowline.store import workspaces
from flowline.store.database import Store
from launch.client import connect
from launch.tracing import temporal_interceptors
from tests.conftest import Tenant, _terminate_leftovers, finish
from tests.servers import HttpSink
from tests.smtp import SmtpServer
from tests.test_replay import CODEC_CONVERTER, HISTORIES
from worker import WORKFLOWS, running_worker

ROOT = Path(__file__).parent.parent


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    status: tuple[int, str]
    events: list[tuple[str, dict[str, Any]]]
    service: str


@dataclass
class OtlpReceiver:
    """What an OpenTelemetry collector would receive over OTLP/HTTP (protobuf)."""

    url: str
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str, trace_id: str) -> ReceivedSpan:
        found = [s for s in self.named(name) if s.trace_id == trace_id]
        assert len(found) == 1, (name, [(s.name, s.trace_id, s.parent_id) for s in self.spans])
        return found[0]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                self.send_response(404)
                self.end_headers()
                return
            request = ExportTraceServiceRequest.FromString(body)
            with lock:
                receiver.requests += 1
                for resource_spans in request.resource_spans:
                    resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.spans.append(
                                ReceivedSpan(
                                    name=span.name,
                                    trace_id=span.trace_id.hex(),
                                    span_id=span.span_id.hex(),
                                    parent_id=span.parent_span_id.hex(),
                                    kind=span.kind,
                                    attributes={a.key: _value(a.value) for a in span.attributes},
                                    status=(span.status.code, span.status.message),
                                    events=[
                                        (e.name, {a.key: _value(a.value) for a in e.attributes})
                                        for e in span.events
                                    ],
                                    service=str(resource.get("service.name")),
                                )
                            )
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    """The receiver, and this process's tracing stopped after the test (it is process-wide)."""
    with otlp_receiver() as receiver:
        try:
            yield receiver
        finally:
            tracing.stop()


async def waiting(temporal: WorkflowEnvironment, journey_id: str) -> None:
    """Until the journey waits for the event (one sent before would not count)."""
    handle = temporal.client.get_workflow_handle(journey_id)
    for _ in range(400):
        if (await handle.query("state", result_type=JourneyState)).current_step == "wait":
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{journey_id} never reached the wait")


def flush() -> None:
    active = tracing.active()
    assert active is not None
    assert active.provider.force_flush(10_000)


def everything_said(span: ReceivedSpan) -> str:
    """Every text a span carries out of the process."""
    return repr((span.name, span.attributes, span.status, span.events))


def _flow(hook_url: str) -> dict[str, Any]:
    return {
        "id": "traced",
        "name": "Traced",
        "trigger": {"type": "event", "event": "signed_up"},
        "steps": [
            {
                "id": "mail",
                "type": "send",
                "channel": "email",
                "content": {
                    "subject": "Hi {{ profile.name }}",
                    "text": "Hi {{ profile.name }}, {{ event.note }}",
                },
                "next": {"sent": "notify", "skipped": "notify", "failed": "notify"},
            },
            {
                "id": "notify",
                "type": "webhook",
                "url": f"{hook_url}/hook",
                "data": {
                    "email": "{{ profile.email }}",
                    "phone": "{{ profile.phone }}",
                    "note": "{{ event.note }}",
                },
            },
            {
                "id": "wait",
                "type": "wait_for_event",
                "conditions": [{"event": "upgraded"}],
                "timeout": "1d",
                "next": {"happened": "done", "timeout": "done"},
            },
            {"id": "done", "type": "exit"},
        ],
    }


@pytest_asyncio.fixture
async def traced_stack(
    temporal: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    tenant: Tenant,
    tmp_path: Path,
    smtp: SmtpServer,
    otlp: OtlpReceiver,
) -> AsyncIterator[tuple[httpx.AsyncClient, Client, Settings]]:
    """The API and a worker as the processes build them from settings naming an OTLP endpoint:
    the interceptor on the client the API starts journeys with and the worker runs on."""
    settings = Settings(
        database_url=str(store.url),
        task_queue=task_queue,
        data_dir=tmp_path,
        sweep_seconds=0,
        otlp_endpoint=otlp.url,
        trace_service_name="flowline-test",
    )
    # launch.client.connect's interceptors on the test server's connection and converter.
    client = Client(**{**temporal.client.config(), "interceptors": temporal_interceptors(settings)})
    async with store.begin() as conn:
        await workspaces.set_channel_settings(conn, tenant.id, ChannelSettings(email=smtp.settings()))
    async with running_worker(client, store, task_queue, webhook_timeout=5, allow_private_outbound=True):
        app = create_app(settings, store=store, temporal=client)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            headers = {"Authorization": f"Bearer {tenant.key}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://flowline", headers=headers
            ) as api:
                yield api, client, settings
    await _terminate_leftovers(temporal, store)


async def test_one_trace_from_the_api_request_to_the_smtp_send_and_the_webhook(
    traced_stack: tuple[httpx.AsyncClient, Client, Settings],
    temporal: WorkflowEnvironment,
    tenant: Tenant,
    sink: HttpSink,
    smtp: SmtpServer,
    otlp: OtlpReceiver,
) -> None:
    api, client, settings = traced_stack
    person = f"p-{uuid.uuid4().hex[:10]}"
    email, phone, note = f"{person}@example.test", "+15550100987", f"note-{uuid.uuid4().hex[:8]}"
    profile = {"email": email, "phone": phone, "name": "Ada Lovelace"}
    assert (await api.put(f"/v1/profiles/{person}", json={"attributes": profile})).status_code == 200
    assert (await api.put("/v1/flows/traced", json=_flow(sink.url))).status_code == 200
    assert (await api.post("/v1/flows/traced/publish")).status_code == 200
    answer = await api.post(
        "/v1/events",
        json={"id": f"e-{person}", "profile_id": person, "name": "signed_up", "properties": {"note": note}},
    )
    assert answer.status_code == 202, answer.text
    (journey_id,) = answer.json()["journeys"]
    await waiting(temporal, journey_id)
    # The event the journey waits for: a signal from the API.
    heard = await api.post(
        "/v1/events",
        json={"id": f"u-{person}", "profile_id": person, "name": "upgraded", "properties": {"note": note}},
    )
    assert heard.status_code == 202, heard.text
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path if p.step == "wait"] == [("wait", "happened")]
    # The personal data went where the flow sends it: the traces must not carry it.
    (hook,) = sink.on("/hook")
    assert email in hook.body.decode() and phone in hook.body.decode()
    assert smtp.to(email)
    flush()

    started_by, signalled_by = otlp.named("POST /v1/events")
    trace_id = started_by.trace_id
    assert started_by.kind == SpanKind.SERVER.value + 1  # OTLP's enum counts from UNSPECIFIED
    assert started_by.attributes == {
        "http.request.method": "POST",
        "http.route": "/v1/events",
        "http.response.status_code": 202,
    }
    assert started_by.service == "flowline-test"
    start = otlp.one("StartWorkflow:Journey", trace_id)
    assert start.parent_id == started_by.span_id
    ids = {
        tracing.JOURNEY_ID: journey_id,
        tracing.FLOW_ID: "traced",
        tracing.WORKSPACE_ID: tenant.id,
    }
    assert start.attributes == {**ids, "temporalWorkflowID": journey_id}
    run = otlp.one("RunWorkflow:Journey", trace_id)
    assert run.parent_id == start.span_id
    # Each step's activity: scheduled in the workflow, run in the worker with the step's ids, and
    # its outbound call inside it.
    calls = {"send_message": ("mail", "SMTP send"), "deliver_webhook": ("notify", "POST")}
    for activity, (step_id, call_name) in calls.items():
        scheduled = otlp.one(f"StartActivity:{activity}", trace_id)
        assert scheduled.parent_id == start.span_id  # temporalio: the workflow's spans are siblings
        ran = otlp.one(f"RunActivity:{activity}", trace_id)
        assert ran.parent_id == scheduled.span_id
        assert {k: ran.attributes[k] for k in [*ids, tracing.STEP_ID]} == {**ids, tracing.STEP_ID: step_id}
        call = otlp.one(call_name, trace_id)
        assert call.parent_id == ran.span_id
        assert call.kind == SpanKind.CLIENT.value + 1
        assert call.attributes["server.address"] == "127.0.0.1"
    smtp_port = smtp.settings().port
    assert otlp.one("SMTP send", trace_id).attributes == {
        "server.address": "127.0.0.1",
        "server.port": smtp_port,
    }
    webhook = otlp.one("POST", trace_id)
    assert webhook.attributes == {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": int(sink.url.rsplit(":", 1)[1]),
        "http.response.status_code": 200,
    }
    # The second event's request signalled the journey; the workflow handled it in the first trace.
    signal = otlp.one("SignalWorkflow:event", signalled_by.trace_id)
    assert signal.parent_id == signalled_by.span_id
    assert signal.attributes == {"temporalWorkflowID": journey_id}
    assert otlp.one("HandleSignal:event", trace_id).parent_id == start.span_id
    # The receiver could join the trace: W3C traceparent of the HTTP call's span.
    assert hook.headers["traceparent"].startswith(f"00-{trace_id}-{webhook.span_id}-")
    # No personal data anywhere: not the profile id (in the profile's path), the address, the
    # phone, the name, the event's property, the message.
    traced = [s for s in otlp.spans if s.trace_id == trace_id]
    assert len(traced) >= 10
    for span in otlp.spans:
        said = everything_said(span)
        for personal in (person, email, phone, "Ada", "Lovelace", note, "example.test"):
            assert personal not in said, (personal, span)

    # The traced history replays with tracing on and off, and replaying makes no spans.
    history = await client.get_workflow_handle(journey_id).fetch_history()
    assert any(e.HasField("activity_task_scheduled_event_attributes") for e in history.events)
    before = len(otlp.spans)
    for interceptors in ([], temporal_interceptors(settings)):
        replayer = Replayer(
            workflows=WORKFLOWS, data_converter=pydantic_data_converter, interceptors=interceptors
        )
        result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
        assert result.replay_failure is None
    flush()
    assert len(otlp.spans) == before


def test_exported_spans_keep_only_allowed_attributes_and_exception_types(otlp: OtlpReceiver) -> None:
    """The export allowlist: whatever code sets on a span, only ids and protocol facts leave."""
    started = tracing.start(Settings(otlp_endpoint=otlp.url))
    assert started is not None
    with started.tracer.start_as_current_span("step") as span:
        span.set_attributes({tracing.STEP_ID: "mail", "profile.email": "bob@example.test", "url.full": "x"})
        span.record_exception(ValueError("bob@example.test refused"))
        span.set_status(Status(StatusCode.ERROR, "DeliveryFailed: recipient refused: bob@example.test"))
    with pytest.raises(ConnectionError), tracing.client_span("SMTP send", {"server.address": "smtp.test"}):
        raise ConnectionError("550 <bob@example.test> unknown")
    flush()
    step = otlp.named("step")[0]
    assert step.attributes == {tracing.STEP_ID: "mail"}
    assert step.status == (StatusCode.ERROR.value, "DeliveryFailed")
    assert step.events == [("exception", {"exception.type": "ValueError"})]
    sent = otlp.named("SMTP send")[0]
    assert sent.attributes == {"server.address": "smtp.test", "error.type": "ConnectionError"}
    assert sent.status == (StatusCode.ERROR.value, "ConnectionError")
    assert sent.events == []
    assert "bob" not in repr(otlp.spans)


async def test_with_no_endpoint_nothing_is_installed(
    temporal: WorkflowEnvironment, store: Store, task_queue: str, tmp_path: Path, otlp: OtlpReceiver
) -> None:
    """Tracing off: no interceptor on the client (so none on its workers), no middleware, no
    span around outbound calls, no tracer provider. The same calls with an endpoint install each."""
    target = temporal.client.service_client.config.target_host
    off = Settings(
        temporal_address=target, database_url=str(store.url), task_queue=task_queue, data_dir=tmp_path
    )
    on = off.model_copy(update={"otlp_endpoint": otlp.url})

    async def installed(settings: Settings) -> list[bool]:
        client = await connect(settings)
        app = create_app(settings, store=store, temporal=client)
        async with outbound_client(timeout=1, allow_private=False) as http:
            traced_http = isinstance(http._transport, tracing.TracedTransport)
        async with running_worker(client, store, task_queue) as worker:
            worker_interceptors = worker.client.config()["interceptors"]
        return [
            bool(client.config()["interceptors"]),
            bool(worker_interceptors),
            any(m.cls is TraceRequests for m in app.user_middleware),
            traced_http,
            tracing.active() is not None,
        ]

    assert await installed(off) == [False] * 5
    assert temporal_interceptors(off) == []
    assert await installed(on) == [True] * 5


async def test_every_recorded_history_replays_with_the_interceptor_and_makes_no_span(
    otlp: OtlpReceiver,
) -> None:
    """tests/test_replay.py replays them without tracing; the same histories with it (the
    journey workflow runs unsandboxed): the same commands, and nothing traced while replaying."""
    interceptors = temporal_interceptors(Settings(otlp_endpoint=otlp.url))
    replayer = Replayer(workflows=WORKFLOWS, data_converter=CODEC_CONVERTER, interceptors=interceptors)
    for path in HISTORIES:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
        assert result.replay_failure is None, path.name
    flush()
    assert otlp.spans == []
    assert len(HISTORIES) > 40


def test_with_tracing_off_a_process_does_not_load_the_sdk() -> None:
    """Off, the API and the worker import neither the OpenTelemetry SDK nor temporalio's
    integration (which needs it): a process of their own, as deployed."""
    probe = (
        "import sys, worker\n"
        "from api.app import create_app\n"
        "from flowline.channels.outbound import outbound_client\n"
        "from flowline.settings import Settings\n"
        "create_app(Settings()); outbound_client(timeout=1, allow_private=False)\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'temporalio.contrib.o'))]\n"
        "print(sorted(loaded))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWLINE_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
