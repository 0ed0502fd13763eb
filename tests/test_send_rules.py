"""The send step's rules at send time, on the time-skipping server with the real store: who gets a
message (self, referrer, friends), do-not-contact per channel and sender, a missing address, the
frequency cap across flows, the delivery window and the flow's send_rate (durable waits)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.journey import JourneyState
from flowline.store.database import Store
from flowline.store.tables import deliveries
from tests.conftest import Tenant, finish


def flow(flow_id: str, send: dict[str, Any], *, event: str = "go", **settings: Any) -> dict[str, Any]:
    """event -> the send (each branch to its own marker step) -> exit."""
    return {
        "id": flow_id,
        "name": flow_id,
        "trigger": {"type": "event", "event": event},
        "settings": {"reentry": "concurrent", **settings},
        "steps": [
            {
                "id": "send",
                "type": "send",
                **send,
                "next": {"sent": "done", "skipped": "done", "failed": "done"},
            },
            {"id": "done", "type": "exit"},
        ],
    }


IN_APP = {"channel": "in_app", "content": {"title": "Hi", "body": "Hello {{ recipient.first_name }}"}}


async def publish(api: httpx.AsyncClient, doc: dict[str, Any]) -> None:
    assert (await api.put(f"/v1/flows/{doc['id']}", json=doc)).status_code == 200
    response = await api.post(f"/v1/flows/{doc['id']}/publish")
    assert response.status_code == 200, response.text


async def person(api: httpx.AsyncClient, profile_id: str, **body: Any) -> None:
    response = await api.put(f"/v1/profiles/{profile_id}", json=body)
    assert response.status_code == 200, response.text


async def trigger(api: httpx.AsyncClient, profile: str, event_id: str, name: str = "go") -> str:
    response = await api.post("/v1/events", json={"id": event_id, "profile_id": profile, "name": name})
    assert response.status_code == 202, response.text
    [journey_id] = response.json()["journeys"]
    return str(journey_id)


async def run(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, profile: str, event_id: str
) -> JourneyState:
    return await finish(temporal, await trigger(api, profile, event_id))


def send_entry(state: JourneyState) -> tuple[str | None, str | None]:
    entry = next(e for e in state.path if e.step == "send")
    return entry.branch, entry.error


async def ledger(store: Store, tenant: Tenant, journey_id: str | None = None) -> list[dict[str, Any]]:
    query = select(deliveries).where(deliveries.c.workspace_id == tenant.id).order_by(deliveries.c.created_at)
    if journey_id is not None:
        query = query.where(deliveries.c.journey_id == journey_id)
    async with store.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def inbox(api: httpx.AsyncClient, profile: str) -> list[str]:
    return [m["body"] for m in (await api.get(f"/v1/profiles/{profile}/inbox")).json()["messages"]]


# ---------------------------------------------------------------- recipients


async def test_in_app_to_self_lands_in_the_inbox_once_with_its_data(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    send = {
        **IN_APP,
        "content": {**IN_APP["content"], "data": {"reward": "{{ 5 | plus: 5 }}"}},
        "consumable": True,
    }
    await publish(api, flow("hello", send))
    await person(api, "ada", attributes={"first_name": "Ada"})
    state = await run(api, temporal, "ada", "e1")
    assert send_entry(state) == ("sent", None)
    messages = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert [(m["body"], m["data"]) for m in messages] == [("Hello Ada", {"reward": "10", "consumable": True})]
    [row] = await ledger(store, tenant)
    assert (row["status"], row["channel"], row["flow_id"], row["version"]) == ("sent", "in_app", "hello", 1)


async def test_friends_each_get_the_message_and_templates_see_the_recipient(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, flow("tell-friends", {**IN_APP, "to": "friends"}))
    await person(api, "bob", attributes={"first_name": "Bob"})
    await person(api, "cy", attributes={"first_name": "Cy"})
    await person(api, "ada", attributes={"first_name": "Ada"}, friends=["bob", "cy"])
    state = await run(api, temporal, "ada", "e1")
    assert send_entry(state) == ("sent", None)
    assert (await inbox(api, "bob"), await inbox(api, "cy"), await inbox(api, "ada")) == (
        ["Hello Bob"],
        ["Hello Cy"],
        [],
    )
    assert sorted(r["recipient_id"] for r in await ledger(store, tenant)) == ["bob", "cy"]


async def test_the_referrer_gets_it_and_nobody_to_send_to_is_skipped(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, tenant: Tenant
) -> None:
    await publish(api, flow("thank-referrer", {**IN_APP, "to": "referrer"}))
    await person(api, "mia", attributes={"first_name": "Mia"})
    await person(api, "ada", referrer_id="mia")
    await person(api, "lone")
    assert send_entry(await run(api, temporal, "ada", "e1")) == ("sent", None)
    assert await inbox(api, "mia") == ["Hello Mia"]
    assert send_entry(await run(api, temporal, "lone", "e2")) == ("skipped", "no referrer: nobody to send to")


# ---------------------------------------------------------------- do-not-contact and addresses


async def test_do_not_contact_skips_the_channel_and_only_the_named_sender(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, flow("promo", {**IN_APP, "sender": "promotions"}))
    await publish(api, flow("service", {**IN_APP, "sender": "service"}, event="service"))
    # The person opted out of in-app messages from the promotions sender only (a do_not_contact step).
    opt_out = {
        "id": "opt-out",
        "name": "opt out",
        "trigger": {"type": "event", "event": "opt_out"},
        "steps": [
            {
                "id": "dnc",
                "type": "do_not_contact",
                "action": "add",
                "channel": "in_app",
                "senders": ["promotions"],
            }
        ],
    }
    await publish(api, opt_out)
    await person(api, "ada", attributes={"first_name": "Ada"})
    await finish(temporal, await trigger(api, "ada", "o1", "opt_out"))

    promo = await run(api, temporal, "ada", "p1")
    assert send_entry(promo) == ("skipped", "do_not_contact: in_app from promotions")
    service = await finish(temporal, await trigger(api, "ada", "s1", "service"))
    assert send_entry(service) == ("sent", None)
    assert await inbox(api, "ada") == ["Hello Ada"]
    statuses = {(r["step_id"], r["sender"], r["status"], r["detail"]) for r in await ledger(store, tenant)}
    assert statuses == {
        ("send", "promotions", "skipped", "do_not_contact: in_app from promotions"),
        ("send", "service", "sent", None),
    }


async def test_no_address_is_skipped_and_no_provider_fails(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    email = {"channel": "email", "content": {"subject": "Hi", "text": "Hello"}}
    await publish(api, flow("mail", email))
    await person(api, "nomail")
    await person(api, "ada", attributes={"email": "ada@example.com"})
    assert send_entry(await run(api, temporal, "nomail", "e1")) == ("skipped", "no contact: no email address")
    branch, error = send_entry(await run(api, temporal, "ada", "e2"))
    assert (branch, error) == ("failed", "no email provider is configured for the workspace")
    rows = {r["recipient_id"]: (r["status"], r["address"]) for r in await ledger(store, tenant)}
    assert rows == {"nomail": ("skipped", None), "ada": ("failed", "ada@example.com")}


# ---------------------------------------------------------------- frequency caps


async def test_the_frequency_cap_counts_every_flow_and_frees_up_after_its_period(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    # The time-skipping server may jump a day after an activity (a stale schedule-to-close timer),
    # so the windows here are long: 30 days, and a pause past them.
    cap = [{"channel": "in_app", "max": 2, "per": "30d"}]
    await publish(api, flow("first", IN_APP, event="first"))  # no cap of its own, but its sends count
    await publish(api, flow("capped", IN_APP, frequency_cap=cap))
    later = flow("later", IN_APP, event="later", frequency_cap=cap)
    later["steps"].insert(0, {"id": "wait", "type": "pause", "for": "31d", "next": "send"})
    await publish(api, later)
    await person(api, "ada", attributes={"first_name": "Ada"})
    await finish(temporal, await trigger(api, "ada", "f1", "first"))
    assert send_entry(await run(api, temporal, "ada", "c1")) == ("sent", None)  # 2nd of 2
    assert send_entry(await run(api, temporal, "ada", "c2")) == (
        "skipped",
        "frequency_cap: 2 in_app messages within 30d",
    )
    # 31 days later the two sends are out of the window.
    assert send_entry(await finish(temporal, await trigger(api, "ada", "l1", "later"))) == ("sent", None)
    assert len(await inbox(api, "ada")) == 3


# ---------------------------------------------------------------- windows and rates (durable waits)


async def test_a_send_outside_its_window_waits_for_it_in_the_persons_zone(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    window = {"days": ["monday"], "from": "09:00", "to": "10:00"}
    await publish(api, flow("monday", {**IN_APP, "window": window}))
    await person(api, "ada", attributes={"first_name": "Ada", "timezone": "Asia/Tokyo"})
    journey_id = await trigger(api, "ada", "e1")
    state = await finish(temporal, journey_id)
    assert send_entry(state) == ("sent", None)
    [row] = await ledger(store, tenant)
    sent = row["created_at"].astimezone(ZoneInfo("Asia/Tokyo"))
    assert (sent.strftime("%A"), sent.hour) == ("Monday", 9), sent
    entry = next(e for e in state.path if e.step == "send")
    assert entry.left_at is not None and entry.left_at - entry.entered_at <= timedelta(days=7)


async def test_send_rate_spreads_the_flows_messages_over_periods(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, flow("paced", IN_APP, send_rate={"max": 2, "per": "hour"}))
    for n in range(5):
        await person(api, f"p{n}", attributes={"first_name": f"P{n}"})
    started = [await trigger(api, f"p{n}", f"e{n}") for n in range(5)]
    for journey_id in started:
        assert send_entry(await finish(temporal, journey_id)) == ("sent", None)
    hours = sorted(int(r["created_at"].timestamp()) // 3600 for r in await ledger(store, tenant))
    first = hours[0]
    assert [h - first for h in hours] == [0, 0, 1, 1, 2], "two per hour, the rest wait for the next hours"
