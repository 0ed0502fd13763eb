"""Profiles through the API: typed attributes, referrer and friends, push tokens, erasure."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from flowline.journey import JourneyState
from flowline.store import deliveries as ledger
from flowline.store.database import Store
from flowline.store.erasure import erase_profile
from flowline.store.profile_changes import resolve_targets
from flowline.store.profiles import upsert_profile
from flowline.store.tables import (
    conversations,
    deliveries,
    events,
    inbox_messages,
    journeys,
    profile_friends,
    profiles,
    push_tokens,
)
from tests.conftest import Tenant, finish
from tests.servers import unreachable_temporal
from tests.test_journeys import publish

GOOD_AND_BAD: dict[str, tuple[list[Any], list[Any]]] = {
    "boolean": ([True, False], [1, "true", [True]]),
    "text": (["Paris", ""], [3, True, ["a"]]),
    "number": ([3, 2.5, -1], [True, "3", [1]]),
    "date": (
        ["2026-05-01", "2026-05-01T09:30:00+02:00", "2026-05-01T09:30:00"],
        ["tomorrow", 20260501, "2026-13-01"],
    ),
    "list": ([[], ["a", 1]], ["a", {"a": 1}, 1]),
}


async def declare(api: httpx.AsyncClient, name: str, kind: str) -> None:
    response = await api.put(f"/v1/attributes/{name}", json={"type": kind})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("kind", sorted(GOOD_AND_BAD))
async def test_declared_attributes_take_values_of_their_type_only(api: httpx.AsyncClient, kind: str) -> None:
    await declare(api, "field", kind)
    good, bad = GOOD_AND_BAD[kind]
    for value in good:
        response = await api.put("/v1/profiles/ada", json={"attributes": {"field": value}})
        assert response.status_code == 200, (value, response.text)
        assert response.json()["attributes"]["field"] == value
    for value in bad:
        response = await api.put("/v1/profiles/ada", json={"attributes": {"field": value, "free": 1}})
        assert response.status_code == 422, value
        assert [f["path"] for f in response.json()["faults"]] == ["$.attributes.field"]
    # Nothing of a refused call is written; null still erases.
    profile = (await api.get("/v1/profiles/ada")).json()
    assert profile["attributes"] == {"field": good[-1]}
    erased = await api.put("/v1/profiles/ada", json={"attributes": {"field": None}})
    assert erased.status_code == 200 and erased.json()["attributes"] == {}


async def test_every_fault_is_reported_and_undeclared_attributes_are_free(api: httpx.AsyncClient) -> None:
    await declare(api, "vip", "boolean")
    await declare(api, "age", "number")
    listed = (await api.get("/v1/attributes")).json()["attributes"]
    assert listed == [{"type": "number", "name": "age"}, {"type": "boolean", "name": "vip"}]
    assert (await api.put("/v1/attributes/x", json={"type": "color"})).status_code == 422

    both = {"vip": "yes", "age": "old", "email": 5, "anything": {"goes": [1]}}
    response = await api.put("/v1/profiles/ada", json={"attributes": both})
    assert response.status_code == 422
    paths = sorted(f["path"] for f in response.json()["faults"])
    assert paths == ["$.attributes.age", "$.attributes.email", "$.attributes.vip"]
    assert (await api.get("/v1/profiles/ada")).status_code == 404

    free = {"anything": {"goes": [1]}, "email": "ada@example.com", "phone": "+33 6 12 34 56 78"}
    response = await api.put("/v1/profiles/ada", json={"attributes": free})
    assert response.status_code == 200 and response.json()["attributes"] == free


async def test_referrer_and_friends_through_the_api(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    response = await api.put("/v1/profiles/ada", json={"referrer_id": "grace", "friends": ["bob", "eve"]})
    assert response.status_code == 200, response.text
    assert response.json()["referrer_id"] == "grace" and response.json()["friends"] == ["bob", "eve"]
    async with store.connect() as conn:
        assert await resolve_targets(conn, tenant.id, "ada", "referrer") == ["grace"]
        assert await resolve_targets(conn, tenant.id, "ada", "friends") == ["bob", "eve"]
        assert await resolve_targets(conn, tenant.id, "bob", "friends") == ["ada"]  # mutual

    # Friends are added, never replaced, by PUT; DELETE ends one both ways; null clears the referrer.
    await api.put("/v1/profiles/ada", json={"friends": ["zoe"]})
    removed = await api.delete("/v1/profiles/ada/friends/bob")
    assert removed.status_code == 200 and removed.json()["friends"] == ["eve", "zoe"]
    assert (await api.get("/v1/profiles/bob")).json()["friends"] == []
    cleared = await api.put("/v1/profiles/ada", json={"referrer_id": None})
    assert cleared.json()["referrer_id"] is None
    myself = await api.put("/v1/profiles/ada", json={"referrer_id": "ada"})
    assert myself.status_code == 422 and myself.json()["faults"][0]["path"] == "$.referrer_id"


async def test_push_tokens_are_replaced_as_a_list(api: httpx.AsyncClient) -> None:
    tokens = [{"token": "t-2", "platform": "android"}, {"token": "t-1", "platform": "ios"}]
    response = await api.put("/v1/profiles/ada/push_tokens", json={"tokens": tokens})
    assert response.status_code == 200, response.text
    assert response.json()["push_tokens"] == sorted(tokens, key=lambda t: t["token"])
    again = await api.put(
        "/v1/profiles/ada/push_tokens", json={"tokens": [{"token": "t-3", "platform": "web"}]}
    )
    assert again.json()["push_tokens"] == [{"token": "t-3", "platform": "web"}]
    bad = await api.put("/v1/profiles/ada/push_tokens", json={"tokens": [{"token": "t", "platform": "fax"}]})
    assert bad.status_code == 422


def erasable_flow() -> dict[str, Any]:
    return {
        "id": "cart",
        "name": "Cart",
        "trigger": {"type": "event", "event": "cart_updated"},
        "steps": [
            {"id": "hello", "type": "send", "channel": "in_app", "content": {"body": "hi"}},
            {"id": "agent", "type": "start_conversation", "note": "call back"},
            {"id": "wait", "type": "pause", "for": "7d"},
            {"id": "remind", "type": "send", "channel": "in_app", "content": {"body": "your cart"}},
        ],
    }


async def in_pause(temporal: WorkflowEnvironment, journey_id: str) -> None:
    handle = temporal.client.get_workflow_handle(journey_id)
    for _ in range(200):
        state = await handle.query("state", result_type=JourneyState)
        if state.current_step == "wait":
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the journey did not reach its pause")


async def personal_rows(store: Store, workspace_id: str, profile_id: str) -> dict[str, int]:
    async def count(table: Any, *where: Any) -> int:
        query = select(func.count()).select_from(table).where(table.c.workspace_id == workspace_id, *where)
        return int(await conn.scalar(query) or 0)

    async with store.connect() as conn:
        return {
            "profiles": await count(profiles, profiles.c.id == profile_id),
            "events": await count(events, events.c.profile_id == profile_id),
            "inbox": await count(inbox_messages, inbox_messages.c.profile_id == profile_id),
            "conversations": await count(conversations, conversations.c.profile_id == profile_id),
            "push_tokens": await count(push_tokens, push_tokens.c.profile_id == profile_id),
            "friends": await count(
                profile_friends,
                (profile_friends.c.profile_id == profile_id) | (profile_friends.c.friend_id == profile_id),
            ),
        }


async def test_erasure_stops_the_journeys_and_deletes_every_personal_row(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, erasable_flow())
    await api.put("/v1/profiles/ada", json={"attributes": {"email": "ada@example.com"}, "friends": ["bob"]})
    await api.put("/v1/profiles/ada/push_tokens", json={"tokens": [{"token": "t-1", "platform": "ios"}]})
    response = await api.post("/v1/events", json={"id": "c-1", "profile_id": "ada", "name": "cart_updated"})
    [journey_id] = response.json()["journeys"]
    await in_pause(temporal, journey_id)
    before = await personal_rows(store, tenant.id, "ada")
    assert all(before.values()), before

    erased = await api.delete("/v1/profiles/ada")
    assert erased.status_code == 204, erased.text
    state = await finish(temporal, journey_id)
    assert (state.status, state.exit_reason) == ("stopped", "profile erased")
    assert await personal_rows(store, tenant.id, "ada") == dict.fromkeys(before, 0)
    async with store.connect() as conn:
        # The journey record stays, ids only, for statistics; the delivery too, without detail.
        row = (await conn.execute(select(journeys).where(journeys.c.id == journey_id))).one()
        assert (row.status, row.exit_reason) == ("stopped", "profile erased")
        sent = (await conn.execute(select(deliveries).where(deliveries.c.journey_id == journey_id))).all()
        assert [d.detail for d in sent] == [None]
    assert (await api.get("/v1/profiles/bob")).json()["friends"] == []
    assert (await api.delete("/v1/profiles/ada")).status_code == 404


async def test_erasure_clears_the_address_a_message_went_to(store: Store, tenant: Tenant) -> None:
    delivery = ledger.Delivery(
        workspace_id=tenant.id,
        journey_id="j-1",
        step_id="mail",
        visit=1,
        recipient_id="ada",
        channel="email",
        address="ada@example.com",
    )
    async with store.begin() as conn:
        await upsert_profile(store, conn, tenant.id, "ada", {"email": "ada@example.com"})
        row, _ = await ledger.open_delivery(store, conn, delivery)
        await ledger.close_delivery(conn, row["id"], "failed", "mailbox full for ada@example.com")
    async with store.begin() as conn:
        assert await erase_profile(conn, tenant.id, "ada")
    async with store.connect() as conn:
        kept = await ledger.get_delivery(conn, row["id"])
    assert kept is not None and (kept["status"], kept["address"], kept["detail"]) == ("failed", None, None)


async def test_erasure_deletes_nothing_when_temporal_cannot_take_the_stop(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, erasable_flow())
    response = await api.post("/v1/events", json={"id": "c-1", "profile_id": "ada", "name": "cart_updated"})
    [journey_id] = response.json()["journeys"]
    await in_pause(temporal, journey_id)
    services = api._transport.app.state.services  # type: ignore[attr-defined]
    working = services.temporal
    services.temporal = await unreachable_temporal()
    try:
        refused = await api.delete("/v1/profiles/ada")
    finally:
        services.temporal = working
    assert refused.status_code == 503 and "nothing was deleted" in refused.json()["message"]
    assert (await personal_rows(store, tenant.id, "ada"))["profiles"] == 1
    state = await temporal.client.get_workflow_handle(journey_id).query("state", result_type=JourneyState)
    assert state.current_step == "wait"
