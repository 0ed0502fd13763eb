"""The export step and exported events, end to end: journeys on the time-skipping server write
the outbox and go on; the batcher delivers it to a fake CleverTap on 127.0.0.1; the flow's stats
and the destination's records show each record's outcome (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import ExportActivities
from flowline.destinations.clevertap import RetryPolicy
from flowline.exports.batcher import Batcher, BatcherSettings
from flowline.flow.steps import ExportStep
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.journey import ExportRequest, JourneyRef, TemplateScope
from flowline.store import export_records
from flowline.store.database import Store
from tests.conftest import Tenant, finish
from tests.fake_clevertap import FakeCleverTap, fake_clevertap
from tests.test_journeys import publish

EVENT_TIME = "2026-11-30T08:15:00+00:00"


def export_flow(*steps: dict[str, Any], flow_id: str = "exports", event: str = "purchased") -> dict[str, Any]:
    return {
        "id": flow_id,
        "name": "Exports",
        "trigger": {"type": "event", "event": event},
        "steps": [*steps, {"id": "bye", "type": "exit"}],
    }


def faults(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document)
    return {f.path: f.message for f in caught.value.faults}


def test_export_step_faults_name_their_path() -> None:
    found = faults(
        export_flow(
            {"id": "a", "type": "export", "destination": "ct", "fields": {"x": 1}},
            {
                "id": "b",
                "type": "export",
                "destination": "ct",
                "as": "profile",
                "event": "E",
                "fields": {"x": 1},
            },
            {"id": "c", "type": "export", "destination": "ct", "as": "profile", "referral": True},
            {"id": "d", "type": "export", "destination": "ct", "referral": True, "event": "E"},
            {
                "id": "e",
                "type": "export",
                "destination": "",
                "event": "{{ x ",
                "fields": {"bad": {"expression": "1 +"}, "worse": "{% if %}"},
                "colour": "red",
            },
            {"id": "f", "type": "export", "destination": "ct", "as": "table", "event": "E"},
        )
    )
    assert found["$.steps[0]"] == "an event export needs the 'event' name"
    assert found["$.steps[1]"] == "a profile export has no 'event'"
    assert found["$.steps[2]"] == "a referral export is an event ('as: event')"
    assert found["$.steps[3]"] == "a referral export is named after the journey's event: no 'event'"
    assert found["$.steps[4].destination"].startswith("String should have at least 1 character")
    assert found["$.steps[4].event"].startswith("not a valid template")
    assert found["$.steps[4].fields.bad.expression"].startswith("not a valid expression")
    assert found["$.steps[4].fields.worse"].startswith("not a valid template")
    assert found["$.steps[4].colour"] == "unknown field"
    assert found["$.steps[5].as"] == "Input should be 'event' or 'profile'"


async def put_clevertap(api: httpx.AsyncClient, fake: FakeCleverTap, **extra: Any) -> None:
    body = {
        "type": "clevertap",
        "account_id": fake.account_id,
        "passcode": fake.passcode,
        "base_url": fake.url,
        "identity": "email",
        **extra,
    }
    response = await api.put("/v1/destinations/ct", json=body)
    assert response.status_code == 200, response.text


async def person(
    api: httpx.AsyncClient, profile_id: str, referrer: str | None = None, **attributes: Any
) -> None:
    body: dict[str, Any] = {"attributes": {"email": f"{profile_id}@example.com", **attributes}}
    if referrer is not None:
        body["referrer_id"] = referrer
    response = await api.put(f"/v1/profiles/{profile_id}", json=body)
    assert response.status_code in (200, 201), response.text


async def send_event(api: httpx.AsyncClient, profile_id: str, name: str, **properties: Any) -> list[str]:
    event = {
        "id": f"evt-{profile_id}-{time.time_ns()}",
        "profile_id": profile_id,
        "name": name,
        "timestamp": EVENT_TIME,
        "properties": properties,
    }
    response = await api.post("/v1/events", json=event)
    assert response.status_code == 202, response.text
    journeys: list[str] = response.json()["journeys"]
    return journeys


async def deliver(store: Store, tenant: Tenant) -> dict[str, int]:
    settings = BatcherSettings(flush_seconds=0, request_retry=RetryPolicy(attempts=1))
    async with httpx.AsyncClient() as http:
        return (await Batcher(store, http, settings, workspace_id=tenant.id).drain()).counts


async def records(api: httpx.AsyncClient, destination: str = "ct") -> list[dict[str, Any]]:
    response = await api.get(f"/v1/destinations/{destination}/records")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["records"]
    return found


async def step_exports(api: httpx.AsyncClient, flow_id: str = "exports") -> dict[str, dict[str, int]]:
    stats = (await api.get(f"/v1/flows/{flow_id}/stats")).json()
    [version] = stats["versions"]
    return {s["id"]: s["exports"] for s in version["steps"] if s["type"] == "export"}


async def test_export_steps_write_the_outbox_and_the_batcher_delivers_it(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    with fake_clevertap() as fake:
        await put_clevertap(api, fake)
        await person(api, "grace")
        await person(api, "ada", referrer="grace", plan="pro")
        await publish(
            api,
            export_flow(
                {
                    "id": "bought",
                    "type": "export",
                    "destination": "ct",
                    "event": "Bought {{ event.sku }}",
                    "fields": {
                        "Plan": "{{ profile.plan }}",
                        "Amount": "{{ event.amount }}",
                        "Double": {"expression": "event.properties.amount * 2"},
                        "Source": "flowline",
                    },
                },
                {
                    "id": "sync",
                    "type": "export",
                    "destination": "ct",
                    "as": "profile",
                    "fields": {"Tier": "gold"},
                },
                {
                    "id": "refer",
                    "type": "export",
                    "destination": "ct",
                    "referral": True,
                    "fields": {"Sku": "{{ event.sku }}"},
                },
            ),
        )
        [journey_id] = await send_event(api, "ada", "purchased", sku="A-1", amount=20)
        state = await finish(temporal, journey_id)
        assert state.status == "completed"
        assert [(p.step, p.branch, p.error) for p in state.path[:3]] == [
            ("bought", "next", None),
            ("sync", "next", None),
            ("refer", "next", None),
        ]
        # Written, not yet delivered: the journey did not wait for CleverTap.
        assert fake.requests == []
        written = await records(api)
        assert [(r["record_key"].split(":", 1)[1], r["status"]) for r in written] == [
            ("bought:1", "pending"),
            ("sync:1", "pending"),
            ("refer:1:referred", "pending"),
            ("refer:1:generated", "pending"),
        ]
        assert (await step_exports(api))["refer"] == {
            "exported": 2,
            "delivered": 0,
            "rejected": 0,
            "pending": 2,
            "skipped": 0,
            "given_up": 0,
            "unknown": 0,
        }
        assert await deliver(store, tenant) == {"delivered": 4}
        sent = fake.accepted
    event_ts = int(datetime.fromisoformat(EVENT_TIME).timestamp())
    bought, sync, referred, generated = sent
    assert bought["evtName"] == "Bought A-1" and bought["identity"] == "ada@example.com"
    assert bought["evtData"] == {"Plan": "pro", "Amount": 20, "Double": 40, "Source": "flowline"}
    assert sync == {
        "type": "profile",
        "identity": "ada@example.com",
        "ts": sync["ts"],
        "profileData": {"Tier": "gold"},
    }
    assert referred == {
        "type": "event",
        "identity": "ada@example.com",
        "ts": event_ts,
        "evtName": "Referred Purchased",
        "evtData": {"Event Data": {"Sku": "A-1"}},
    }
    assert generated == {**referred, "identity": "grace@example.com", "evtName": "Generated Purchased"}
    assert (await step_exports(api))["bought"]["delivered"] == 1
    assert {r["status"] for r in await records(api)} == {"delivered"}


async def test_a_destination_that_refuses_every_record_strands_no_journey(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    with fake_clevertap(reject_identities={f"p{i}@example.com" for i in range(3)}) as fake:
        await put_clevertap(api, fake)
        await publish(api, export_flow({"id": "x", "type": "export", "destination": "ct", "event": "Bought"}))
        ended = []
        for i in range(3):
            await person(api, f"p{i}")
            [journey_id] = await send_event(api, f"p{i}", "purchased")
            ended.append((await finish(temporal, journey_id)).status)
        assert ended == ["completed"] * 3
        assert await deliver(store, tenant) == {"rejected": 3}
    assert (await step_exports(api))["x"] == {
        "exported": 3,
        "delivered": 0,
        "rejected": 3,
        "pending": 0,
        "skipped": 0,
        "given_up": 0,
        "unknown": 0,
    }
    assert {(r["code"], r["message"]) for r in await records(api)} == {(555, "Miscellaneous server error")}


async def test_publishing_needs_the_destination_and_deleting_it_waits_for_its_flows(
    api: httpx.AsyncClient, worker: None
) -> None:
    flow = export_flow({"id": "x", "type": "export", "destination": "crm", "event": "Bought"})
    assert (await api.put("/v1/flows/exports", json=flow)).status_code == 200
    refused = await api.post("/v1/flows/exports/publish")
    assert refused.status_code == 422
    assert refused.json()["faults"] == [{"path": "$.steps[0].destination", "message": "no destination 'crm'"}]
    with fake_clevertap() as fake:
        body = {
            "type": "clevertap",
            "account_id": fake.account_id,
            "passcode": fake.passcode,
            "base_url": fake.url,
        }
        assert (await api.put("/v1/destinations/crm", json=body)).status_code == 200
        assert (await api.post("/v1/flows/exports/publish")).status_code == 200
        in_use = await api.delete("/v1/destinations/crm")
        assert in_use.status_code == 409 and "'exports'" in in_use.json()["message"]
        assert (await api.post("/v1/flows/exports/stop")).status_code == 200
        assert (await api.delete("/v1/destinations/crm")).status_code == 204


async def test_a_retried_export_activity_writes_its_records_once(store: Store, tenant: Tenant) -> None:
    ref = JourneyRef(journey_id="j-1", workspace_id=tenant.id, flow_id="f", version=1, profile_id="ada")
    request = ExportRequest(
        journey=ref,
        step=ExportStep.model_validate({"id": "x", "type": "export", "destination": "ct", "event": "Bought"}),
        visit=1,
        scope=TemplateScope(),
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )
    env = ActivityEnvironment()
    activities = ExportActivities(store)
    for _ in range(2):
        result = await env.run(activities.export_record, request)
        assert (result.branch, result.error) == ("next", None)
    # A second visit of the step is a record of its own.
    await env.run(activities.export_record, request.model_copy(update={"visit": 2}))
    async with store.connect() as conn:
        found = await export_records.list_records(conn, tenant.id, "ct")
    assert [r["record_key"] for r in found] == ["j-1:x:1", "j-1:x:2"]


async def test_failing_fields_are_left_out_and_recorded_on_the_path(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    with fake_clevertap() as fake:
        await put_clevertap(api, fake)
        await person(api, "ada")
        fields = {
            "ok": "yes",
            "broken": {"expression": "1.0 / 0.0"},
            "missing": {"expression": "vars.nope.x"},
        }
        await publish(
            api,
            export_flow(
                {"id": "x", "type": "export", "destination": "ct", "event": "Bought", "fields": fields}
            ),
        )
        [journey_id] = await send_event(api, "ada", "purchased")
        state = await finish(temporal, journey_id)
    assert state.status == "completed"
    error = state.path[0].error or ""
    assert "fields.broken" in error and "fields.missing" in error
    [record] = await records(api)
    assert record["data"] == {"ok": "yes"}


async def test_referral_and_journey_events_are_exported_as_they_are_stored(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    with fake_clevertap() as fake:
        await put_clevertap(
            api,
            fake,
            referral_events=["app_install", "subscription_started"],
            events=["flow_entered", "flow_exited"],
        )
        await person(api, "grace")
        await person(api, "ada", referrer="grace")
        await person(api, "loner")
        await send_event(
            api, "ada", "app_install", channel="whatsapp", content="spring", status="ok", extra=1
        )
        await send_event(api, "loner", "app_install", channel="sms")  # nobody referred: no pair
        await send_event(api, "ada", "subscription_started")
        await publish(api, export_flow({"id": "wait", "type": "pause", "for": "1h"}, event="go"))
        [journey_id] = await send_event(api, "ada", "go")
        await finish(temporal, journey_id)
        assert await deliver(store, tenant) == {"delivered": 6}
        sent = fake.accepted
    event_ts = int(datetime.fromisoformat(EVENT_TIME).timestamp())
    by_name = {(r["evtName"], r["identity"]): r for r in sent}
    assert set(by_name) == {
        ("Referred App Install", "ada@example.com"),
        ("Generated App Install", "grace@example.com"),
        ("Referred Subscription Started", "ada@example.com"),
        ("Generated Subscription Started", "grace@example.com"),
        ("flow_entered", "ada@example.com"),
        ("flow_exited", "ada@example.com"),
    }
    install = by_name[("Generated App Install", "grace@example.com")]
    assert install["evtData"] == {"Channel": "whatsapp", "Content": "spring", "Status": "ok"}
    assert install["ts"] == event_ts
    assert by_name[("Referred Subscription Started", "ada@example.com")]["evtData"] == {}
    exited = by_name[("flow_exited", "ada@example.com")]["evtData"]
    assert exited["flow_id"] == "exports" and exited["journey_id"] == journey_id
