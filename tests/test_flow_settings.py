"""Flow settings at entry (start_at / end_at, declared variables) and versions in flight."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.store.database import utcnow
from tests.conftest import finish
from tests.test_journeys import publish


def simple_flow(body: str = "v1", **settings: Any) -> dict[str, Any]:
    return {
        "id": "simple",
        "name": "Simple",
        "trigger": {"type": "event", "event": "go"},
        "settings": settings,
        "steps": [
            {"id": "wait", "type": "pause", "for": "1d"},
            {"id": "say", "type": "send", "channel": "in_app", "content": {"body": body}},
        ],
    }


async def go(api: httpx.AsyncClient, event_id: str, profile: str = "ada") -> list[str]:
    response = await api.post("/v1/events", json={"id": event_id, "profile_id": profile, "name": "go"})
    assert response.status_code == 202, response.text
    journeys: list[str] = response.json()["journeys"]
    return journeys


async def test_a_journey_keeps_its_version_when_a_new_one_is_published(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, simple_flow("from version 1"))
    [old] = await go(api, "e-1", "ada")
    await publish(api, simple_flow("from version 2"))
    [new] = await go(api, "e-2", "bob")
    await finish(temporal, old)
    await finish(temporal, new)
    ada = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    bob = (await api.get("/v1/profiles/bob/inbox")).json()["messages"]
    assert [m["body"] for m in ada] == ["from version 1"]
    assert [m["body"] for m in bob] == ["from version 2"]
    assert (await api.get(f"/v1/journeys/{old}")).json()["version"] == 1
    assert (await api.get(f"/v1/journeys/{new}")).json()["version"] == 2


async def test_entries_are_taken_only_between_start_at_and_end_at(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    later = (utcnow() + timedelta(days=3)).isoformat()
    await publish(api, simple_flow(start_at=later))
    assert await go(api, "e-early") == []
    refused = await api.post("/v1/flows/simple/journeys", json={"profile_id": "ada"})
    assert refused.status_code == 409 and "takes entries from" in refused.json()["message"]

    earlier = (utcnow() - timedelta(days=3)).isoformat()
    await publish(api, simple_flow(start_at=earlier, end_at=(utcnow() - timedelta(days=1)).isoformat()))
    assert await go(api, "e-late") == []

    await publish(api, simple_flow(start_at=earlier, end_at=later))
    [journey_id] = await go(api, "e-on-time")
    await finish(temporal, journey_id)


async def order(api: httpx.AsyncClient, event_id: str, order_id: str | None) -> list[str]:
    properties = {} if order_id is None else {"order_id": order_id}
    event = {"id": event_id, "profile_id": "ada", "name": "go", "properties": properties}
    response = await api.post("/v1/events", json=event)
    assert response.status_code == 202, response.text
    journeys: list[str] = response.json()["journeys"]
    return journeys


async def test_concurrent_reentry_runs_one_journey_per_entry_key_at_a_time(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    """reentry: concurrent with entry_key: one person in several journeys at once, one per order;
    a second event of an order whose journey runs starts nothing; once it ended, it enters again."""
    await publish(api, simple_flow("{{ event.order_id }}", reentry="concurrent", entry_key="order_id"))
    [first] = await order(api, "e-1", "A")
    [second] = await order(api, "e-2", "B")
    assert await order(api, "e-3", "A") == []  # order A's journey is still paused
    # Without the property every event is an entry of its own.
    [bare] = await order(api, "e-4", None)
    [other_bare] = await order(api, "e-5", None)
    assert len({first, second, bare, other_bare}) == 4
    for journey in (first, second, bare, other_bare):
        await finish(temporal, journey)
    [again] = await order(api, "e-6", "A")
    await finish(temporal, again)
    inbox = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert sorted(m["body"] for m in inbox) == ["", "", "A", "A", "B"]


async def test_declared_variables_are_checked_and_filled_with_defaults(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    variables = {"coupon": {"type": "text", "default": "WELCOME"}, "cap": {"type": "number"}}
    await publish(api, simple_flow("{{ vars.coupon }} {{ vars.cap }}", variables=variables))
    wrong = await api.post(
        "/v1/flows/simple/journeys", json={"profile_id": "ada", "variables": {"cap": "ten"}}
    )
    assert wrong.status_code == 422
    assert wrong.json()["faults"] == [{"path": "$.variables.cap", "message": "must be a number"}]
    started = await api.post(
        "/v1/flows/simple/journeys", json={"profile_id": "ada", "variables": {"cap": 10}}
    )
    assert started.status_code == 201, started.text
    state = await finish(temporal, started.json()["journey_id"])
    assert state.variables == {"coupon": "WELCOME", "cap": 10}, state
    assert state.path[-1].branch == "sent", state.path
    inbox = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert [m["body"] for m in inbox] == ["WELCOME 10"]


async def test_settings_are_validated_with_their_paths(api: httpx.AsyncClient) -> None:
    typed = simple_flow(variables={"n": {"type": "number", "default": "x"}})
    response = await api.put("/v1/flows/simple", json=typed)
    assert response.status_code == 422
    assert [f["path"] for f in response.json()["faults"]] == ["$.settings.variables.n"]
    window = simple_flow(
        start_at=datetime(2027, 1, 1, tzinfo=UTC).isoformat(),
        end_at=datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
    )
    response = await api.put("/v1/flows/simple", json=window)
    assert response.status_code == 422
    [fault] = response.json()["faults"]
    assert fault["path"] == "$.settings" and "end_at must come after start_at" in fault["message"]


def test_a_template_that_does_not_parse_is_a_fault_at_validation() -> None:
    flow = simple_flow("{{ vars.limit }}")  # 'limit' is a Liquid keyword, not a variable name
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(flow)
    [fault] = caught.value.faults
    assert fault.path == "$.steps[1].content.body"


async def test_a_json_document_is_read_as_json_not_as_yaml(api: httpx.AsyncClient) -> None:
    # YAML 1.1 reads 1e5 (no dot) as a string: a JSON body read as YAML lost the number.
    text = json.dumps(simple_flow(variables={"cap": {"type": "number", "default": 1}})).replace(
        '"default": 1', '"default": 1e5'
    )
    response = await api.put("/v1/flows/simple", content=text, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["draft"]["settings"]["variables"]["cap"]["default"] == 100000.0
    as_yaml = await api.put(
        "/v1/flows/simple",
        content=yaml.safe_dump(simple_flow()),
        headers={"Content-Type": "application/yaml"},
    )
    assert as_yaml.status_code == 200, as_yaml.text
