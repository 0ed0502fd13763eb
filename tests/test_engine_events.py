"""The engine's own events: the registry says what they carry, and filters naming anything else are
faults (issue 12, item 7). The registry is checked against what the engine really writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.channels.feedback import FEEDBACK_KINDS, record_feedback
from flowline.engine_events import ENGINE_EVENTS, Property, property_fault
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.store import flows as flows_store
from flowline.store.database import Store, utcnow
from flowline.store.tables import events, flow_versions
from launch.routing import JourneyLauncher
from tests.conftest import Tenant, finish
from tests.flows import profile_steps_flow
from tests.test_journeys import publish

ROOT = Path(__file__).resolve().parent.parent


def _flow(**parts: Any) -> dict[str, Any]:
    return {
        "id": "f",
        "name": "F",
        "trigger": {"type": "flow"},
        "steps": [{"id": "bye", "type": "exit"}],
    } | parts


def _faults(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document)
    return {f.path: f.message for f in caught.value.faults}


def test_a_property_an_engine_event_never_carries_is_named() -> None:
    assert property_fault("message_opened", "step_id") is None
    assert property_fault("message_opened", "step") == (
        "'message_opened' never carries 'step'; it carries delivery_id, channel, flow_id, version, "
        "step_id, journey_id, reason, message_id (docs/engine-events.md)"
    )
    assert property_fault("profile_changed", "changed.plan.to") is None
    assert "never carries 'value'" in str(property_fault("profile_changed", "changed.plan.value"))
    assert "is a list" in str(property_fault("tags_changed", "added.0"))
    assert "is a string" in str(property_fault("flow_exited", "status.code"))
    assert property_fault("message_consumed", "data.reward.kind") is None, "the message's own data"
    assert property_fault("signed_up", "anything") is None, "a client's events are free"


def test_every_kind_of_filter_on_an_engine_event_is_checked_in_flows() -> None:
    wrong = [{"property": "step", "op": "is", "value": "remind"}]
    right = [{"property": "step_id", "op": "is", "value": "remind"}]
    waits = {
        "id": "wait",
        "type": "wait_for_event",
        "conditions": [
            {"event": "message_opened", "where": right},
            {"event": "message_clicked", "where": wrong},
        ],
        "timeout": "1d",
        "save": {"opened_step": "step_id", "opened_at": "at"},
    }
    branch = {
        "id": "pick",
        "type": "branch",
        "branches": [
            {
                "name": "b",
                "when": {"any": [{"event": "flow_exited", "where": [{"property": "reason", "op": "is"}]}]},
            }
        ],
    }
    document = _flow(
        trigger={
            "type": "event",
            "event": "segment_entered",
            "where": [{"property": "segment_id", "op": "is", "value": "vip"}],
            "match": [{"event_property": "flow", "profile_attribute": "x"}],
            "profile": {"event": "message_sent", "where": wrong},
        },
        settings={
            "stop_when": [{"event": "message_unsubscribed", "where": wrong}, {"segment": "churned"}],
            "goal": {"event": "flow_entered", "where": [{"property": "flow_id", "op": "is", "value": "x"}]},
        },
        steps=[branch, waits, {"id": "bye", "type": "exit"}],
    )
    faults = _faults(document)
    assert set(faults) == {
        "$.trigger.where[0].property",
        "$.trigger.match[0].event_property",
        "$.trigger.profile.where[0].property",
        "$.settings.stop_when[0].where[0].property",
        "$.steps[0].branches[0].when.any[0].where[0].property",
        "$.steps[1].conditions[1].where[0].property",
        "$.steps[1].save.opened_at",
    }
    assert faults["$.trigger.where[0].property"].startswith("'segment_entered' never carries 'segment_id'")
    # Client events and the right names pass.
    document["trigger"] = {"type": "event", "event": "cart_updated", "where": wrong}
    document["settings"] = {
        "goal": {"event": "message_clicked", "where": [{"property": "url", "op": "is_not_empty"}]}
    }
    document["steps"] = [
        {**waits, "conditions": waits["conditions"][:1], "save": {"s": "step_id"}},
        {"id": "bye", "type": "exit"},
    ]
    parse_flow(document)


async def test_stored_flows_still_load_and_new_documents_are_refused(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    opened = {"event": "message_opened", "where": [{"property": "step", "op": "is", "value": "remind"}]}
    document = _flow(settings={"stop_when": [opened]})
    refused = await api.put("/v1/flows/f", json=document)
    assert refused.status_code == 422
    assert [f["path"] for f in refused.json()["faults"]] == ["$.settings.stop_when[0].where[0].property"]
    # A version published before the check still loads, and journeys still start on it.
    await publish(api, _flow())
    async with store.begin() as conn:
        await conn.execute(
            flow_versions.update()
            .where(flow_versions.c.workspace_id == tenant.id, flow_versions.c.flow_id == "f")
            .values(document=parse_flow(_flow()).dump() | {"settings": {"stop_when": [opened]}})
        )
        published = await flows_store.current_version(conn, tenant.id, "f")
    assert published is not None and published.document.settings.stop_when[0].event == "message_opened"
    started = await api.post("/v1/flows/f/journeys", json={"profile_id": "ada"})
    assert started.status_code == 201, started.text


async def test_segment_rules_filtering_engine_events_are_checked(api: httpx.AsyncClient) -> None:
    rule = {
        "all": [
            {"event": "message_clicked", "where": [{"property": "link", "op": "is", "value": "x"}]},
            {
                "not": {
                    "event": "message_clicked",
                    "where": [{"property": "url", "op": "contains", "value": "x"}],
                }
            },
        ]
    }
    refused = await api.put("/v1/segments/s", json={"name": "S", "rule": rule})
    assert refused.status_code == 422, refused.text
    assert refused.json()["faults"] == [
        {
            "path": "$.rule.all[0].where[0].property",
            "message": "'message_clicked' never carries 'link'; it carries delivery_id, channel, flow_id, "
            "version, step_id, journey_id, url (docs/engine-events.md)",
        }
    ]
    rule["all"] = rule["all"][1:]
    assert (await api.put("/v1/segments/s", json={"name": "S", "rule": rule})).status_code == 200


def test_the_examples_and_the_page_agree_with_the_registry() -> None:
    page = (ROOT / "docs" / "engine-events.md").read_text()
    for name, event in ENGINE_EVENTS.items():
        assert f"`{name}`" in page, name
        for prop in event.properties:
            assert f"`{prop}`" in page, (name, prop)
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        document = __import__("yaml").safe_load(example.read_text())
        parse_flow(document)  # an example with a filter that can never match is refused


def _undeclared(name: str, properties: dict[str, Any]) -> list[str]:
    """Property paths the registry does not declare for ``name``."""

    def walk(value: Any, shape: Property | None, path: str) -> list[str]:
        if shape is None or not isinstance(value, dict):
            return []
        if shape.each is not None:
            return [p for key, item in value.items() for p in walk(item, shape.each, f"{path}.{key}")]
        if shape.keys is None:
            return []
        found = [f"{path}.{key}" for key in value if key not in shape.keys]
        return found + [
            p
            for key, item in value.items()
            if key in shape.keys
            for p in walk(item, shape.keys[key], f"{path}.{key}")
        ]

    top = Property("object", name, keys=ENGINE_EVENTS[name].properties)
    return walk(properties, top, name)


async def test_what_the_engine_writes_is_what_the_registry_says(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    store: Store,
    tenant: Tenant,
    task_queue: str,
) -> None:
    """Every engine event written by a flow's steps and sends, the API, segments and feedback
    carries only properties the registry declares, and every event of the registry is seen."""
    flow = profile_steps_flow() | {"id": "f"}
    flow["steps"][4] |= {"consumable": True, "content": {"body": "gift", "data": {"reward": "gold"}}}
    await publish(api, flow)
    segment = {"name": "Pros", "rule": {"attribute": "plan", "op": "is", "value": "pro"}}
    assert (await api.put("/v1/segments/pros", json=segment)).status_code == 200
    changed = {"attributes": {"first_name": "Ada"}, "referrer_id": "bob", "friends": ["cy"]}
    assert (await api.put("/v1/profiles/ada", json=changed)).status_code == 200
    started = await api.post("/v1/flows/f/journeys", json={"profile_id": "ada"})
    assert started.status_code == 201, started.text
    await finish(temporal, started.json()["journey_id"])
    assert (await api.put("/v1/profiles/ada", json={"attributes": {"plan": "free"}})).status_code == 200
    [message] = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert (await api.post(f"/v1/inbox/{message['id']}/read")).status_code == 200
    assert (await api.post(f"/v1/inbox/{message['id']}/consume")).status_code == 200
    async with store.connect() as conn:
        delivery_id = await conn.scalar(
            select(events.c.properties["delivery_id"].as_string()).where(
                events.c.workspace_id == tenant.id, events.c.name == "message_sent"
            )
        )
    launcher = JourneyLauncher(store, temporal.client, task_queue)
    for kind in FEEDBACK_KINDS:
        detail = {"url": "https://shop.example/"} if kind == "clicked" else {"reason": "report"}
        if kind == "unsubscribed":
            detail = {}
        await record_feedback(
            store, launcher, delivery_id=str(delivery_id), kind=kind, at=utcnow(), detail=detail
        )

    async with store.connect() as conn:
        rows = (
            await conn.execute(
                select(events.c.name, events.c.properties).where(events.c.workspace_id == tenant.id)
            )
        ).all()
    written = {name for name, _ in rows if name in ENGINE_EVENTS}
    assert written == set(ENGINE_EVENTS), f"not seen: {set(ENGINE_EVENTS) - written}"
    undeclared = [
        p for name, properties in rows if name in ENGINE_EVENTS for p in _undeclared(name, properties)
    ]
    assert undeclared == []
