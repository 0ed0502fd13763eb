"""Journeys end to end: API -> Temporal (time-skipping server) -> worker -> inbox and webhook."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from flowline.channels import webhook
from flowline.store import workspaces
from flowline.store.database import Store
from flowline.store.events import JOURNEY_EVENTS
from flowline.store.tables import events
from tests.conftest import Tenant, finish
from tests.flows import send_then_exit_flow, welcome_flow
from tests.servers import HttpSink
from workflows import search_attributes as sa


async def publish(api: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    assert (await api.put(f"/v1/flows/{doc['id']}", json=doc)).status_code == 200
    published = await api.post(f"/v1/flows/{doc['id']}/publish")
    assert published.status_code == 200, published.text


async def signed_up(
    api: httpx.AsyncClient, event_id: str, profile: str = "ada", plan: str = "pro"
) -> list[str]:
    response = await api.post(
        "/v1/events",
        json={"id": event_id, "profile_id": profile, "name": "signed_up", "properties": {"plan": plan}},
    )
    assert response.status_code == 202, response.text
    journeys: list[str] = response.json()["journeys"]
    return journeys


async def test_event_starts_a_journey_that_pauses_then_sends_in_app_and_webhook(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    sink: HttpSink,
    store: Store,
    tenant: Tenant,
) -> None:
    await publish(api, welcome_flow(sink.url, pause="2d"))
    await api.put("/v1/profiles/ada", json={"attributes": {"first_name": "Ada"}})
    [journey_id] = await signed_up(api, "evt-1")

    handle = temporal.client.get_workflow_handle(journey_id)
    before = await handle.describe()
    start_time = before.start_time
    await finish(temporal, journey_id)  # the time-skipping server jumps over the two-day pause
    assert (await temporal.get_current_time()) - start_time >= timedelta(days=2)

    inbox = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert [(m["title"], m["body"], m["data"]) for m in inbox] == [
        ("Welcome", "Hi Ada, enjoy pro", {"cta": "open:pro"})
    ]

    [hook] = sink.on("/hook")
    payload = hook.json()
    assert payload["journey"]["id"] == journey_id
    assert payload["flow"] == {"id": "welcome", "version": 1, "name": "Welcome"}
    assert payload["step"] == {"id": "notify", "iteration": 1}
    assert payload["profile"] == {"id": "ada", "first_name": "Ada"}
    assert payload["data"] == {"who": "ada"}
    async with store.connect() as conn:
        secret = await workspaces.webhook_secret(conn, tenant.id)
    assert webhook.verify(secret, hook.body, hook.headers[webhook.SIGNATURE_HEADER])
    assert hook.headers[webhook.IDEMPOTENCY_HEADER]

    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    assert detail["status"] == "completed" and detail["exit_reason"] == "exit_step"
    assert [(p["step"], p["branch"]) for p in detail["path"]] == [
        ("wait", "next"),
        ("hello", "sent"),
        ("notify", "sent"),
        ("done", "exit"),
    ]
    listed = (await api.get("/v1/journeys", params={"flow": "welcome", "profile": "ada"})).json()["journeys"]
    assert [j["id"] for j in listed] == [journey_id]
    profile = (await api.get("/v1/profiles/ada")).json()
    assert [j["id"] for j in profile["journeys"]] == [journey_id]

    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED
    attributes = described.typed_search_attributes
    assert attributes.get(sa.WORKSPACE_ID) == tenant.id
    assert attributes.get(sa.FLOW_ID) == "welcome"
    assert attributes.get(sa.FLOW_VERSION) == 1
    assert attributes.get(sa.PROFILE_ID) == "ada"
    # The exit step is not shown: the attribute keeps the last step that did something.
    assert attributes.get(sa.STEP_ID) == "notify"


async def test_journey_in_flight_shows_its_current_step(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    await publish(api, welcome_flow(sink.url, pause="365d"))
    [journey_id] = await signed_up(api, "evt-1")
    # Query waits for the first workflow task, so the journey is inside its pause by then.
    handle = temporal.client.get_workflow_handle(journey_id)
    await handle.query("state")
    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    assert detail["live"] is True and detail["status"] == "running"
    assert detail["current_step"] == "wait" and detail["waiting_for"] == "pause: 365d"
    assert sink.received == []
    await finish(temporal, journey_id)  # a year goes by in the test server's clock
    assert len(sink.on("/hook")) == 1


async def test_where_filter_and_other_events_start_nothing(
    api: httpx.AsyncClient, worker: None, sink: HttpSink
) -> None:
    await publish(api, welcome_flow(sink.url))
    assert await signed_up(api, "evt-free", plan="free") == []
    response = await api.post("/v1/events", json={"id": "evt-x", "profile_id": "ada", "name": "logged_in"})
    assert response.json()["journeys"] == []
    assert (await api.get("/v1/journeys")).json()["journeys"] == []


async def test_the_same_event_twice_starts_one_journey(
    api: httpx.AsyncClient, worker: None, sink: HttpSink
) -> None:
    await publish(api, welcome_flow(sink.url))
    first = await signed_up(api, "evt-1")
    assert len(first) == 1
    assert await signed_up(api, "evt-1") == []
    assert len((await api.get("/v1/journeys")).json()["journeys"]) == 1


async def test_reentry_after_exit_waits_for_the_journey_to_end(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    await publish(api, welcome_flow(sink.url))
    [first] = await signed_up(api, "evt-1")
    assert await signed_up(api, "evt-2") == [], "refused while the first journey runs"
    await finish(temporal, first)
    [second] = await signed_up(api, "evt-3")
    assert second != first
    await finish(temporal, second)
    assert len(sink.on("/hook")) == 2


async def test_reentry_never(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    await publish(api, welcome_flow(sink.url, reentry="never"))
    [first] = await signed_up(api, "evt-1")
    await finish(temporal, first)
    assert await signed_up(api, "evt-2") == []
    assert await signed_up(api, "evt-3", profile="grace") != []


async def test_webhook_failure_is_recorded_and_the_journey_goes_on(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    sink.status = 410  # a client error: retrying will not help
    await publish(api, welcome_flow(sink.url))
    [journey_id] = await signed_up(api, "evt-1")
    await finish(temporal, journey_id)
    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    notify = next(p for p in detail["path"] if p["step"] == "notify")
    assert "answered 410" in notify["error"]
    assert detail["path"][-1]["step"] == "done"
    assert len(sink.on("/hook")) == 1


async def test_webhook_server_errors_are_retried_until_delivered(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    sink.status = 503
    await publish(api, welcome_flow(sink.url, pause="1m"))
    [journey_id] = await signed_up(api, "evt-1")
    # Let a few attempts fail, then heal the receiver.
    while len(sink.on("/hook")) < 2:
        await temporal.sleep(timedelta(seconds=5))
    sink.status = 200
    await finish(temporal, journey_id)
    attempts = sink.on("/hook")
    assert len(attempts) >= 3
    keys = {a.headers[webhook.IDEMPOTENCY_HEADER] for a in attempts}
    assert len(keys) == 1, "every retry carries the same idempotency key"


async def test_api_starts_a_journey_for_a_profile_idempotently(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    doc = welcome_flow(sink.url, reentry="concurrent")
    doc["trigger"] = {"type": "flow"}
    await publish(api, doc)
    body = {"profile_id": "ada", "entry_id": "req-1", "variables": {"coupon": "X"}}
    first = await api.post("/v1/flows/welcome/journeys", json=body)
    assert first.status_code == 201, first.text
    again = await api.post("/v1/flows/welcome/journeys", json=body)  # a retry of the same request
    assert again.status_code == 201 and again.json()["journey_id"] == first.json()["journey_id"]
    state = await finish(temporal, first.json()["journey_id"])
    assert state.variables == {"coupon": "X"}
    assert (await api.post("/v1/flows/nope/journeys", json=body)).status_code == 409


async def test_a_new_version_routes_events_at_once_despite_the_flow_cache(
    api: httpx.AsyncClient, worker: None, sink: HttpSink
) -> None:
    doc = welcome_flow(sink.url)
    await publish(api, doc)
    assert len(await signed_up(api, "evt-1", profile="a")) == 1  # fills the cache
    doc["trigger"]["event"] = "registered"
    await publish(api, doc)
    assert await signed_up(api, "evt-2", profile="b") == [], "the old trigger is gone"
    response = await api.post(
        "/v1/events",
        json={"id": "evt-3", "profile_id": "c", "name": "registered", "properties": {"plan": "pro"}},
    )
    [journey] = response.json()["journeys"]
    detail = (await api.get(f"/v1/journeys/{journey}")).json()
    assert detail["version"] == 2


async def test_every_stored_event_ends_up_routed(
    api: httpx.AsyncClient, worker: None, sink: HttpSink, store: Store, tenant: Tenant
) -> None:
    await publish(api, welcome_flow(sink.url))
    await signed_up(api, "evt-start")  # starts a journey
    await signed_up(api, "evt-filtered", profile="b", plan="free")  # trigger name, filter fails
    await api.post("/v1/events", json={"id": "evt-other", "profile_id": "c", "name": "page_viewed"})
    async with store.connect() as conn:
        rows = await conn.execute(
            select(events.c.id, events.c.routed_at).where(
                events.c.workspace_id == tenant.id, events.c.name.not_in(JOURNEY_EVENTS)
            )
        )
        routed = {row.id: row.routed_at is not None for row in rows}
    assert routed == {"evt-start": True, "evt-filtered": True, "evt-other": True}


async def test_the_last_activity_records_the_end_without_a_local_activity(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store
) -> None:
    await publish(api, send_then_exit_flow())
    [journey_id] = await signed_up(api, "evt-1")
    await finish(temporal, journey_id)
    history = await temporal.client.get_workflow_handle(journey_id).fetch_history()
    markers = [
        e.marker_recorded_event_attributes.marker_name
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
    ]
    # The lean-bookkeeping and send-channels patches; no local-activity marker.
    assert markers == ["core_patch", "core_patch"], "no local-activity marker, only the patches"
    upserted = [
        name
        for e in history.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
        for name in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    ]
    assert upserted == ["TemporalChangeVersion"] * 2, "the SDK's own patch attribute, no StepId upsert"
    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    assert (detail["status"], detail["last_step"], detail["exit_reason"]) == ("completed", "bye", "exit_step")
    assert detail["ended_at"] is not None


async def test_a_failed_last_activity_still_records_the_end(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    sink.status = 400
    doc = {
        "id": "hook-only",
        "name": "Hook",
        "trigger": {"type": "event", "event": "signed_up"},
        "steps": [{"id": "hook", "type": "webhook", "url": f"{sink.url}/hook"}],
    }
    await publish(api, doc)
    [journey_id] = await signed_up(api, "evt-1")
    await finish(temporal, journey_id)
    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    assert (detail["status"], detail["last_step"], detail["exit_reason"]) == (
        "completed",
        "hook",
        "completed",
    )
