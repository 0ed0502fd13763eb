"""The in-app inbox: read and consume, their events, and journeys that wait for them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from flowline.store.database import Store
from tests.conftest import Tenant, finish, new_tenant
from tests.deliveries_for_tests import delivery_row, events_named, in_app_message
from tests.test_journeys import publish
from tests.test_profiles_api import in_pause


async def messages(api: httpx.AsyncClient, query: str = "") -> list[dict[str, Any]]:
    answer = await api.get(f"/v1/profiles/ada/inbox{query}")
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["messages"]
    return result


async def test_read_is_idempotent_and_raises_message_opened_once(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    delivery_id, message_id = await in_app_message(store, tenant.id, "ada", {"cta": "open"})
    _, other_id = await in_app_message(store, tenant.id, "ada", {})
    [listed, _] = await messages(api)
    assert {listed["read"], listed["consumed"], listed["consumable"]} == {False}

    first = await api.post(f"/v1/inbox/{message_id}/read")
    assert first.status_code == 200, first.text
    assert first.json()["read"] is True and first.json()["read_at"] is not None
    second = await api.post(f"/v1/inbox/{message_id}/read")
    assert second.json()["read_at"] == first.json()["read_at"]

    [event] = await events_named(store, tenant.id, "message_opened")
    assert event["id"] == f"{delivery_id}:opened" and event["profile_id"] == "ada"
    assert event["properties"]["channel"] == "in_app" and event["properties"]["delivery_id"] == delivery_id
    assert (await delivery_row(store, delivery_id))["opened_at"] is not None
    assert [m["id"] for m in await messages(api, "?unread=true")] == [other_id]
    assert len(await messages(api, "?unread=false")) == 2


async def test_consume_only_consumable_messages_and_only_once(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    delivery_id, reward = await in_app_message(
        store, tenant.id, "ada", {"consumable": True, "reward": "gold"}
    )
    _, plain = await in_app_message(store, tenant.id, "ada", {"consumable": "yes"})

    refused = await api.post(f"/v1/inbox/{plain}/consume")
    assert refused.status_code == 409 and "not consumable" in refused.json()["message"]
    consumed = await api.post(f"/v1/inbox/{reward}/consume")
    assert consumed.status_code == 200, consumed.text
    assert consumed.json()["consumed"] is True and consumed.json()["consumable"] is True
    again = await api.post(f"/v1/inbox/{reward}/consume")
    assert again.status_code == 409 and "consumed already" in again.json()["message"]

    [event] = await events_named(store, tenant.id, "message_consumed")
    assert event["id"] == f"{delivery_id}:consumed"
    assert event["properties"]["data"] == {"consumable": True, "reward": "gold"}
    assert event["properties"]["message_id"] == reward and event["properties"]["channel"] == "in_app"
    states = {m["id"]: (m["consumed"], m["consumed_at"] is not None) for m in await messages(api)}
    assert states == {reward: (True, True), plain: (False, False)}


async def test_another_workspaces_message_is_not_found(api: httpx.AsyncClient, store: Store) -> None:
    other = await new_tenant(store)
    _, theirs = await in_app_message(store, other.id, "ada", {"consumable": True})
    assert (await api.post(f"/v1/inbox/{theirs}/read")).status_code == 404
    assert (await api.post(f"/v1/inbox/{theirs}/consume")).status_code == 404
    assert (await api.post("/v1/inbox/nothing/read")).status_code == 404
    assert await events_named(store, other.id, "message_opened") == []
    assert await events_named(store, other.id, "message_consumed") == []


def reward_flow(event: str) -> dict[str, Any]:
    """Send a consumable reward, wait a week for ``event``, then say thanks or remind."""
    return {
        "id": "reward",
        "name": "Reward",
        "trigger": {"type": "flow"},
        "steps": [
            {
                "id": "gift",
                "type": "send",
                "channel": "in_app",
                "content": {
                    "title": "A gift",
                    "body": "Tap to redeem",
                    "data": {"coins": 50},
                },
                "consumable": True,
                "next": "wait",
            },
            {
                "id": "wait",
                "type": "wait_for_event",
                "conditions": [
                    {"event": event, "where": [{"property": "channel", "op": "is", "value": "in_app"}]}
                ],
                "timeout": "7d",
                "next": {"happened": "thanks", "timeout": "remind"},
            },
            {
                "id": "thanks",
                "type": "send",
                "channel": "in_app",
                "content": {"body": "thanks"},
                "next": "done",
            },
            {"id": "remind", "type": "send", "channel": "in_app", "content": {"body": "remind"}},
            {"id": "done", "type": "exit"},
        ],
    }


async def run_until_waiting(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, event: str
) -> tuple[str, str]:
    await publish(api, reward_flow(event))
    started = await api.post("/v1/flows/reward/journeys", json={"profile_id": "ada"})
    assert started.status_code == 201, started.text
    journey_id: str = started.json()["journey_id"]
    await in_pause(temporal, journey_id)  # reached "wait", after the gift
    [gift] = await messages(api)
    assert gift["consumable"] is True and gift["data"] == {"consumable": True, "coins": 50}
    return journey_id, gift["id"]


async def test_a_journey_waits_for_the_reward_to_be_consumed(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    journey_id, gift = await run_until_waiting(api, temporal, "message_consumed")
    assert (await api.post(f"/v1/inbox/{gift}/consume")).status_code == 200
    state = await finish(temporal, journey_id)
    assert state.status == "completed"
    assert [m["body"] for m in await messages(api)] == ["thanks", "Tap to redeem"]


async def test_a_journey_waits_for_the_message_to_be_read(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    journey_id, gift = await run_until_waiting(api, temporal, "message_opened")
    assert (await api.post(f"/v1/inbox/{gift}/read")).status_code == 200
    await finish(temporal, journey_id)
    assert [m["body"] for m in await messages(api)] == ["thanks", "Tap to redeem"]


async def test_concurrent_consumes_redeem_once(api: httpx.AsyncClient, store: Store, tenant: Tenant) -> None:
    _, reward = await in_app_message(store, tenant.id, "ada", {"consumable": True})
    answers = await asyncio.gather(*(api.post(f"/v1/inbox/{reward}/consume") for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 5
    assert len(await events_named(store, tenant.id, "message_consumed")) == 1
