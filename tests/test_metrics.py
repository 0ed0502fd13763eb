"""Prometheus metrics and JSON logs (docs/metrics.md): the API's /metrics after real requests and
an ingested event, the worker's endpoint after a journey ran, the Temporal SDK's runtime metrics
of a worker process, and log lines that carry ids and nothing personal."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import JourneyActivities
from api.app import create_app
from api.deps import Workspace
from flowline import logs, metrics
from flowline.destinations.settings import WebhookDestination
from flowline.journey import JourneyEnd, JourneySteps, PathEntry, SendInAppRequest, TemplateScope
from flowline.settings import Settings
from flowline.store import destinations
from flowline.store.database import Store
from tests.conftest import Tenant, _terminate_leftovers, app_client, finish, new_tenant
from tests.processes import DevServer, WorkerProcess
from tests.servers import HttpSink, Reply, free_port
from tests.test_activities import T0, _claim, _ref
from tests.test_export_batcher import QUICK, add, drain, event, people
from tests.test_journeys import publish

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

EMAIL = "ada.lovelace@example.org"
PHONE = "+44 20 7946 0958"


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def in_app_flow(flow_id: str, *, pause: str | None = None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [
        {"id": "hi", "type": "send", "channel": "in_app", "content": {"body": "hi {{ profile.id }}"}},
        {"id": "done", "type": "exit"},
    ]
    if pause is not None:
        steps.insert(0, {"id": "wait", "type": "pause", "for": pause})
    return {
        "id": flow_id,
        "name": flow_id,
        "trigger": {"type": "event", "event": "signed_up"},
        "settings": {"reentry": "concurrent"},
        "steps": steps,
    }


@pytest_asyncio.fixture
async def app(
    store: Store, temporal: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[FastAPI]:
    settings = Settings(
        database_url=str(store.url), task_queue=task_queue, data_dir=tmp_path, sweep_seconds=0
    )
    created = create_app(settings, store=store, temporal=temporal.client)
    async with created.router.lifespan_context(created):
        yield created
    await _terminate_leftovers(temporal, store)


def client_of(app: FastAPI, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://flowline", headers=headers)


async def scrape(app: FastAPI) -> Samples:
    """GET /metrics without an API key."""
    async with client_of(app) as anonymous:
        answer = await anonymous.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return samples(answer.text)


async def test_api_metrics_count_requests_by_route_template_and_ingest(
    app: FastAPI, tenant: Tenant, worker: None, temporal: WorkflowEnvironment
) -> None:
    async with client_of(app, tenant.key) as api:
        await publish(api, in_app_flow("metered"))
        before = await scrape(app)
        missing = [f"nope-{uuid.uuid4().hex[:6]}" for _ in range(3)]
        for flow_id in missing:
            assert (await api.get(f"/v1/flows/{flow_id}")).status_code == 404
        event = {"id": "e-1", "profile_id": "ada", "name": "signed_up", "properties": {"phone": PHONE}}
        first = await api.post("/v1/events", json=[event, {"id": "bad", "profile_id": "ada"}])
        assert first.status_code == 202, first.text
        assert first.json()["accepted"] == 1 and len(first.json()["rejected"]) == 1
        [journey_id] = first.json()["journeys"]
        await finish(temporal, journey_id)  # a journey left running stalls the test server's clock
        again = await api.post("/v1/events", json=event)
        assert again.status_code == 202 and again.json()["duplicates"] == 1
        async with client_of(app, "fl_wrong") as stranger:
            assert (await stranger.get("/v1/flows")).status_code == 401
        after = await scrape(app)
        exposed = (await client_of(app).get("/metrics")).text

    requests = "flowline_http_requests_total"
    route = "/v1/flows/{flow_id}"
    assert moved(before, after, requests, method="GET", route=route, status="404") == 3
    assert moved(before, after, requests, method="POST", route="/v1/events", status="202") == 2
    assert moved(before, after, requests, method="GET", route="/v1/flows", status="401") == 1
    # The scrape before this one counted itself.
    assert moved(before, after, requests, method="GET", route="/metrics", status="200") >= 1
    duration = "flowline_http_request_duration_seconds_count"
    assert moved(before, after, duration, method="POST", route="/v1/events") == 2
    bucket = "flowline_http_request_duration_seconds_bucket"
    assert moved(before, after, bucket, method="POST", route="/v1/events", le="+Inf") == 2
    # Routes by template: no raw path, id or workspace is a label.
    for flow_id in missing:
        assert flow_id not in exposed
    assert tenant.id not in exposed and "ada" not in exposed and PHONE not in exposed

    assert moved(before, after, "flowline_events_ingested_total", outcome="stored") == 1
    assert moved(before, after, "flowline_events_ingested_total", outcome="duplicate") == 1
    assert moved(before, after, "flowline_events_rejected_total") == 1
    assert moved(before, after, "flowline_journeys_started_total", trigger="event") == 1


async def test_metrics_endpoint_can_be_turned_off_and_unknown_paths_and_methods_share_labels(
    store: Store, temporal: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=str(store.url),
        task_queue=task_queue,
        data_dir=tmp_path,
        sweep_seconds=0,
        metrics_endpoint=False,
    )
    off = create_app(settings, store=store, temporal=temporal.client)
    async with off.router.lifespan_context(off), client_of(off) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 404
        assert (await anonymous.get(f"/no/such/{uuid.uuid4().hex}")).status_code == 404
        # Any token is a method to HTTP: an unknown one is "other", never a label of its own.
        assert (await anonymous.request("BREW", "/healthz")).status_code == 405
    assert "/metrics" not in off.openapi()["paths"]
    text = metrics.exposition().decode()
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/" not in text
    assert 'method="other",route="/healthz",status="405"' in text and "BREW" not in text


async def test_worker_metrics_are_served_on_their_port_after_a_journey(
    api: httpx.AsyncClient, worker: None, temporal: WorkflowEnvironment
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with metrics.serving("127.0.0.1", port):
        async with httpx.AsyncClient() as http:
            before = samples((await http.get(url)).text)
            # A pause of 2 days writes the path before it waits (the pause open): its visit is
            # counted once, when the end writes it left.
            await publish(api, in_app_flow("worker-metrics", pause="2d"))
            answer = await api.post(
                "/v1/events", json={"id": "w-1", "profile_id": "grace", "name": "signed_up"}
            )
            [journey_id] = answer.json()["journeys"]
            state = await finish(temporal, journey_id)
            assert state.status == "completed"
            after = samples((await http.get(url)).text)
    assert moved(before, after, "flowline_sends_total", channel="in_app", outcome="sent") == 1
    assert moved(before, after, "flowline_journeys_ended_total", status="completed", reason="exit_step") == 1
    assert moved(before, after, "flowline_steps_total", type="pause", outcome="next") == 1
    assert moved(before, after, "flowline_steps_total", type="send", outcome="sent") == 1
    assert moved(before, after, "flowline_steps_total", type="exit", outcome="exit") == 1
    # Closed with the block: the port is free again.
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(url, timeout=2)


async def test_sends_that_fail_for_good_are_counted_and_logged_with_ids_and_nothing_personal(
    api: httpx.AsyncClient,
    worker: None,
    temporal: WorkflowEnvironment,
    tenant: Tenant,
    sink: HttpSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink.status = 400  # refused for good: the step fails, the journey goes on
    profile = {"attributes": {"email": EMAIL, "phone": PHONE, "first_name": "Ada"}}
    assert (await api.put("/v1/profiles/ada", json=profile)).status_code in (200, 201)
    await publish(
        api,
        {
            "id": "logged",
            "name": "Logged",
            "trigger": {"type": "event", "event": "ordered"},
            "steps": [
                {
                    "id": "tell",
                    "type": "webhook",
                    "url": f"{sink.url}/hook",
                    "data": {"who": "{{ profile.email }}", "phone": "{{ event.phone }}"},
                },
                {"id": "done", "type": "exit"},
            ],
        },
    )
    root = logging.getLogger()
    ours = logs.handler("worker", "json")
    root.addHandler(ours)
    failed = {"channel": "webhook", "outcome": "failed"}
    failed_before = metrics.REGISTRY.get_sample_value("flowline_sends_total", failed) or 0.0
    try:
        answer = await api.post(
            "/v1/events",
            json={"id": "o-1", "profile_id": "ada", "name": "ordered", "properties": {"phone": PHONE}},
        )
        [journey_id] = answer.json()["journeys"]
        await finish(temporal, journey_id)
    finally:
        root.removeHandler(ours)
    assert [r.json()["data"]["who"] for r in sink.on("/hook")] == [EMAIL]  # the receiver gets it; the log not
    assert (metrics.REGISTRY.get_sample_value("flowline_sends_total", failed) or 0.0) - failed_before == 1

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    ours_lines = [line for line in lines if line.get("journey_id") == journey_id]
    warned = [line for line in ours_lines if "answered 400" in line["message"]]
    assert warned, lines
    assert warned[0]["flow_id"] == "logged" and warned[0]["workspace_id"] == tenant.id
    assert warned[0]["level"] == "WARNING" and warned[0]["process"] == "worker"
    assert {"time", "logger", "message"} <= set(warned[0])
    text = json.dumps(lines)
    assert EMAIL not in text and PHONE not in text and "Ada" not in text


def test_plain_lines_carry_the_ids_too(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger("flowline.test_plain")
    logger.propagate = False
    ours = logs.handler("api", "plain")
    logger.addHandler(ours)
    logger.setLevel(logging.INFO)
    try:
        with logs.log_ids(journey_id="j-1", workspace_id="ws-1"):
            logger.info("swept %d unrouted events", 3)
        logger.info("outside")
    finally:
        logger.removeHandler(ours)
    first, second = capsys.readouterr().err.splitlines()
    assert first.endswith(
        "api INFO flowline.test_plain: swept 3 unrouted events journey_id=j-1 workspace_id=ws-1"
    )
    assert second.endswith("outside")


def test_the_api_process_logs_the_sweeper_as_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """uvicorn's factory calls create_app() without settings: the process's logging is set up,
    so that the sweeper's INFO lines show (they did not: no handler, and the root at WARNING)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    monkeypatch.setattr("api.app.get_settings", lambda: Settings(data_dir=tmp_path, log_format="json"))
    try:
        create_app()
        logging.getLogger("flowline.sweeper").info("swept %d unrouted events", 7)
        logging.getLogger("httpx").info("HTTP Request: POST https://example.org/?email=%s", EMAIL)
    finally:
        for added in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(added)
        root.setLevel(level)
        logging.getLogger("uvicorn.access").disabled = False
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [(line["process"], line["logger"], line["message"]) for line in lines] == [
        ("api", "flowline.sweeper", "swept 7 unrouted events")
    ]


@pytest.mark.temporal
async def test_a_worker_process_serves_flowline_and_temporal_sdk_metrics(
    tmp_path: Path, database_urls: dict[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python worker.py`` as in production: both endpoints on their ports, its own Runtime."""
    url = database_urls["sqlite"]
    assert url is not None
    flowline_port, temporal_port = free_port(), free_port()
    monkeypatch.setenv("FLOWLINE_WORKER_METRICS_PORT", str(flowline_port))
    monkeypatch.setenv("FLOWLINE_TEMPORAL_METRICS_PORT", str(temporal_port))
    monkeypatch.setenv("FLOWLINE_LOG_FORMAT", "json")
    server = DevServer(db_file=tmp_path / "temporal.db", log=tmp_path / "temporal.log")
    await server.start()
    task_queue = f"metrics-{uuid.uuid4().hex[:10]}"
    worker = WorkerProcess(url, server.address, task_queue, log=tmp_path / "worker.log")
    store = Store(url)
    try:
        client = await server.connect()
        tenant = await new_tenant(store)
        worker.start()
        await worker.wait_until_polling()
        env = WorkflowEnvironment.from_client(client)
        async with app_client(store, env, task_queue, tenant, tmp_path) as api:
            await publish(api, in_app_flow("process-metrics"))
            answer = await api.post(
                "/v1/events", json={"id": "p-1", "profile_id": "lin", "name": "signed_up"}
            )
            [journey_id] = answer.json()["journeys"]
            await client.get_workflow_handle(journey_id).result()
        async with httpx.AsyncClient(timeout=5) as http:
            ours = samples((await http.get(f"http://127.0.0.1:{flowline_port}/metrics")).text)
            sdk = f"http://127.0.0.1:{temporal_port}/metrics"
            temporal_text = await _scrape_until(http, sdk, "temporal_workflow_completed{")
    finally:
        worker.stop()
        server.stop()
        await store.dispose()
    assert value(ours, "flowline_sends_total", channel="in_app", outcome="sent") == 1
    assert value(ours, "flowline_journeys_ended_total", status="completed", reason="exit_step") == 1
    temporal = samples(temporal_text)
    names = {name for name, _ in temporal}
    assert any(name.startswith("temporal_") for name in names), sorted(names)[:20]
    assert any(("task_queue", task_queue) in labels for _, labels in temporal)
    # The journey's workflow, as the SDK counts it (exposed without _total; the parser adds it).
    assert "temporal_workflow_completed{" in temporal_text
    completed = [v for (name, _), v in temporal.items() if name == "temporal_workflow_completed_total"]
    assert completed and sum(completed) >= 1

    lines = (tmp_path / "worker.log").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert any("worker polling" in r["message"] and r["process"] == "worker" for r in records)
    assert any(f":{flowline_port}/metrics" in r["message"] for r in records)


async def _scrape_until(http: httpx.AsyncClient, url: str, needle: str, patience: float = 20) -> str:
    """The Temporal core's endpoint, once it shows ``needle`` (it exports on an interval)."""
    began = time.monotonic()
    while True:
        text = (await http.get(url)).text
        if needle in text or time.monotonic() - began > patience:
            return text
        await asyncio.sleep(0.5)


async def test_api_lines_carry_the_callers_workspace_for_that_request_only(
    app: FastAPI, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = logging.getLogger("flowline.test_probe")
    probe.propagate = False
    probe.setLevel(logging.INFO)
    ours = logs.handler("api", "json")
    probe.addHandler(ours)

    async def logged(workspace: Workspace) -> dict[str, str]:
        probe.info("probe for %s", "a request")
        return {}

    app.add_api_route("/v1/probe", logged, methods=["GET"])
    try:
        async with client_of(app, tenant.key) as api:
            assert (await api.get("/v1/probe")).status_code == 200
        # httpx's ASGITransport runs the app in this task: the request's ids must not stay behind.
        probe.info("after the request")
    finally:
        probe.removeHandler(ours)
    inside, after = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert inside["workspace_id"] == tenant.id and inside["process"] == "api"
    assert "workspace_id" not in after


def _count(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_what_a_retry_records_again_or_rolls_back_is_counted_once(store: Store, tenant: Tenant) -> None:
    """Activities run at least once: a path written again, an end recorded again, a send whose
    transaction rolled back (its journey's record not visible yet) count once, when committed."""
    ref = _ref(tenant, f"{tenant.id}-counted")
    at = T0
    entries = [
        PathEntry(step="a", type="update_variable", entered_at=at, left_at=at, branch="next"),
        PathEntry(step="w", type="wait_for_event", entered_at=at),
    ]
    left = entries[1].model_copy(update={"left_at": at, "branch": "happened"})
    end = JourneyEnd(
        journey=ref,
        status="completed",
        last_step="bye",
        exit_reason="exit_step",
        ended_at=at,
        path=[left, PathEntry(step="bye", type="exit", entered_at=at, left_at=at, branch="exit")],
        path_start=1,
    )
    request = SendInAppRequest(
        journey=ref, step_id="hi", visit=1, title="", body="hi", scope=TemplateScope(), ends_journey=end
    )
    steps = "flowline_steps_total"
    before = {
        "variable": _count(steps, type="update_variable", outcome="next"),
        "wait": _count(steps, type="wait_for_event", outcome="happened"),
        "exit": _count(steps, type="exit", outcome="exit"),
        "ended": _count("flowline_journeys_ended_total", status="completed", reason="exit_step"),
        "sent": _count("flowline_sends_total", channel="in_app", outcome="sent"),
    }
    async with httpx.AsyncClient() as http:
        activities = JourneyActivities(store, http)
        with pytest.raises(ApplicationError):
            await activities.send_in_app(request)  # rolled back: the record is not there yet
        assert _count("flowline_sends_total", channel="in_app", outcome="sent") == before["sent"]
        await _claim(store, ref)
        for _ in range(2):
            await activities.record_journey_steps(JourneySteps(journey=ref, start=0, path=entries))
        for _ in range(2):
            await activities.send_in_app(request)  # the second finds its delivery and its end
        await activities.record_journey_end(end)  # a local activity retried after its commit
    after = {
        "variable": _count(steps, type="update_variable", outcome="next"),
        "wait": _count(steps, type="wait_for_event", outcome="happened"),
        "exit": _count(steps, type="exit", outcome="exit"),
        "ended": _count("flowline_journeys_ended_total", status="completed", reason="exit_step"),
        "sent": _count("flowline_sends_total", channel="in_app", outcome="sent"),
    }
    assert {key: after[key] - before[key] for key in after} == {
        "variable": 1,
        "wait": 1,
        "exit": 1,
        "ended": 1,
        "sent": 1,
    }


def test_the_grafana_dashboard_asks_only_for_metrics_that_exist() -> None:
    """deploy/grafana/flowline.json: every flowline_* series a panel queries is one Flowline
    exposes (a renamed metric would leave a panel empty without a word)."""
    root = Path(__file__).resolve().parent.parent
    dashboard = json.loads((root / "deploy" / "grafana" / "flowline.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert queries
    exposed = set()
    for family in metrics.REGISTRY.collect():
        suffixes = ("_bucket", "_count", "_sum") if family.type == "histogram" else ("_total",)
        exposed |= {family.name + suffix for suffix in suffixes}
    asked = {name for query in queries for name in re.findall(r"\bflowline_\w+", query)}
    assert asked and asked <= exposed, asked - exposed
    for family in ("flowline_steps_total", "flowline_journeys_started_total", "flowline_sends_total"):
        assert family in asked


async def test_export_records_are_counted_by_destination_type_and_outcome(
    store: Store, tenant: Tenant, sink: HttpSink
) -> None:
    """The batcher's outcomes, labelled by the destination's type: never its (user-chosen) id."""
    settings = WebhookDestination(url=f"{sink.url}/exports", signing_secret="s", batch_size=10)
    async with store.begin() as conn:
        await destinations.put_destination(store, conn, tenant.id, "crm-of-acme", settings)
    await people(store, tenant, "p1")
    sink.replies["/exports"] = Reply(200, {"rejected": [{"id": "k1", "code": 7, "message": "unknown sku"}]})
    records = "flowline_export_records_total"
    before = {
        o: _count(records, destination="webhook", outcome=o) for o in ("delivered", "rejected", "retried")
    }
    await add(store, tenant, [event(f"k{i}", "p1", destination="crm-of-acme") for i in range(3)])
    assert await drain(store, tenant) == {"delivered": 2, "rejected": 1}
    sink.replies["/exports"] = Reply(503)
    await add(store, tenant, [event("k9", "p1", destination="crm-of-acme")])
    assert await drain(store, tenant, replace(QUICK, backoff_initial_seconds=60)) == {"retried": 1}
    after = {o: _count(records, destination="webhook", outcome=o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {"delivered": 2, "rejected": 1, "retried": 1}
    assert "crm-of-acme" not in metrics.exposition().decode()
