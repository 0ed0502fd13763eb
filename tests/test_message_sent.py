"""message_sent: the send activity writes it when a person's message leaves (the ledger row closes
'sent'), once whatever retries happened, never for skipped or failed sends, the team's messages
or an erased person; the sweeper routes it to triggers and waits. On the time-skipping server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.sends import SendActivities
from flowline.channels.config import ChannelSettings, TwilioSmsSettings
from flowline.channels.feedback import record_sent
from flowline.flow.validation import parse_flow
from flowline.journey import JourneyRef, SendRequest, TemplateScope
from flowline.store import deliveries, workspaces
from flowline.store.database import Store
from flowline.store.tables import deliveries as deliveries_table
from flowline.store.tables import journeys
from launch.routing import JourneyLauncher
from tests.conftest import Tenant, finish
from tests.deliveries_for_tests import delivery, events_named
from tests.providers import FakeTwilio, fake_twilio
from tests.smtp import SmtpServer
from tests.test_journeys import publish
from tests.test_profiles_api import in_pause


@pytest.fixture
def twilio_server() -> Iterator[FakeTwilio]:
    with fake_twilio() as fake:
        yield fake


async def channels(store: Store, tenant: Tenant, sms: FakeTwilio, smtp: SmtpServer | None = None) -> None:
    twilio = {
        "base_url": sms.url,
        "account_sid": sms.account_sid,
        "auth_token": sms.auth_token,
        "from_number": "+15005550001",
    }
    settings = ChannelSettings(
        sms=TwilioSmsSettings.model_validate(twilio), email=smtp.settings() if smtp else None
    )
    async with store.begin() as conn:
        await workspaces.set_channel_settings(conn, tenant.id, settings)


def sms_flow(flow_id: str = "texts") -> dict[str, Any]:
    return {
        "id": flow_id,
        "name": flow_id,
        "trigger": {"type": "flow"},
        "steps": [
            {"id": "text", "type": "send", "channel": "sms", "content": {"body": "Hi {{ profile.name }}"}},
            {"id": "done", "type": "exit"},
        ],
    }


async def start(api: httpx.AsyncClient, flow_id: str, profile: str = "ada") -> str:
    started = await api.post(f"/v1/flows/{flow_id}/journeys", json={"profile_id": profile})
    assert started.status_code == 201, started.text
    journey_id: str = started.json()["journey_id"]
    return journey_id


async def test_a_message_retried_at_every_stage_raises_one_message_sent(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    store: Store,
    tenant: Tenant,
    twilio_server: FakeTwilio,
) -> None:
    await channels(store, tenant, twilio_server)
    person = {"attributes": {"phone": "+15005550006", "name": "Ada"}}
    assert (await api.put("/v1/profiles/ada", json=person)).status_code == 200
    doc = sms_flow()
    await publish(api, doc)
    # Twilio fails the first attempt: Temporal retries the activity, which sends and closes once.
    twilio_server.fail_next = [500]
    journey_id = await start(api, "texts")
    state = await finish(temporal, journey_id)
    assert (state.path[0].step, state.path[0].branch) == ("text", "sent")
    async with store.connect() as conn:
        rows = await conn.execute(
            deliveries_table.select().where(deliveries_table.c.journey_id == journey_id)
        )
        [row] = [dict(r._mapping) for r in rows]
    assert len(twilio_server.requests) == 2 and len(twilio_server.accepted) == 1

    # The activity run again after its close committed (a lost completion), and after a crash
    # between the provider's answer and the close (the row still pending): the same message.
    step = parse_flow(doc).steps[0]
    request = SendRequest(
        journey=JourneyRef(
            journey_id=journey_id, workspace_id=tenant.id, flow_id="texts", version=1, profile_id="ada"
        ),
        step=step,  # type: ignore[arg-type]
        visit=row["visit"],
        scope=TemplateScope(),
        now=row["created_at"],
    )
    async with httpx.AsyncClient() as http:
        activities = SendActivities(store, http)
        assert (await activities._send_message(request)).delivery_id == row["id"]
        async with store.begin() as conn:
            await conn.execute(
                deliveries_table.update()
                .where(deliveries_table.c.id == row["id"])
                .values(status="pending", sent_at=None)
            )
        again = await activities._send_message(request)
    assert (again.branch, again.delivery_id) == ("sent", row["id"])
    assert len(twilio_server.accepted) == 1  # Twilio knew the idempotency token

    [sent] = await events_named(store, tenant.id, "message_sent")
    assert sent["id"] == f"{row['id']}:sent" and sent["profile_id"] == "ada"
    assert sent["properties"] == {
        "delivery_id": row["id"],
        "channel": "sms",
        "flow_id": "texts",
        "version": 1,
        "step_id": "text",
        "journey_id": journey_id,
    }
    assert sent["routed_at"] is None  # the sweeper's


async def test_skipped_failed_and_the_teams_messages_raise_none(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    store: Store,
    tenant: Tenant,
    twilio_server: FakeTwilio,
    smtp: SmtpServer,
) -> None:
    await channels(store, tenant, twilio_server, smtp)
    twilio_server.invalid_numbers.add("+15005550009")
    person = {"attributes": {"phone": "+15005550009"}}  # no email; Twilio refuses the number
    assert (await api.put("/v1/profiles/ada", json=person)).status_code == 200

    def send(step_id: str, channel: str, content: dict[str, Any], nxt: str) -> dict[str, Any]:
        branches = {"sent": nxt, "skipped": nxt, "failed": nxt}
        return {"id": step_id, "type": "send", "channel": channel, "content": content, "next": branches}

    doc = {
        "id": "mixed",
        "name": "mixed",
        "trigger": {"type": "flow"},
        "steps": [
            send("mail", "email", {"subject": "Hi", "text": "Hi"}, "text"),
            send("text", "sms", {"body": "Hi"}, "team"),
            {
                "id": "team",
                "type": "notify_internal",
                "channel": "email",
                "to": [f"team-{tenant.id}@example.test"],
                "subject": "New lead",
                "body": "ada",
                "next": "inbox",
            },
            send("inbox", "in_app", {"body": "Hi"}, "done"),
            {"id": "done", "type": "exit"},
        ],
    }
    await publish(api, doc)
    state = await finish(temporal, await start(api, "mixed"))
    assert [(p.step, p.branch) for p in state.path][:4] == [
        ("mail", "skipped"),
        ("text", "failed"),
        ("team", "sent"),
        ("inbox", "sent"),
    ]
    [sent] = await events_named(store, tenant.id, "message_sent")
    assert (sent["properties"]["step_id"], sent["properties"]["channel"]) == ("inbox", "in_app")


async def test_no_message_sent_for_an_erased_person(store: Store, tenant: Tenant) -> None:
    row = delivery(tenant.id, "gone", "email")
    async with store.begin() as conn:
        opened, _ = await deliveries.open_delivery(store, conn, row)
        await deliveries.close_delivery(conn, opened["id"], "sent")
        assert not await record_sent(conn, opened, opened["created_at"])
    assert await events_named(store, tenant.id, "message_sent") == []


async def test_message_sent_completes_a_wait_and_triggers_a_flow_once_swept(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    store: Store,
    tenant: Tenant,
    task_queue: str,
) -> None:
    sent_here = {"event": "message_sent", "where": [{"property": "step_id", "op": "is", "value": "hi"}]}
    mailer = {
        "id": "mailer",
        "name": "mailer",
        "trigger": {"type": "flow"},
        "steps": [
            {"id": "hi", "type": "send", "channel": "in_app", "content": {"body": "hi"}, "next": "wait"},
            {
                "id": "wait",
                "type": "wait_for_event",
                "conditions": [sent_here],
                "timeout": "1h",
                "next": {"happened": "done", "timeout": "late"},
            },
            {"id": "late", "type": "send", "channel": "in_app", "content": {"body": "late"}},
            {"id": "done", "type": "exit"},
        ],
    }
    follow = {
        "id": "follow",
        "name": "follow",
        "settings": {"reentry": "concurrent"},
        "trigger": {"type": "event", "event": "message_sent"},
        "steps": [
            {"id": "thanks", "type": "send", "channel": "in_app", "content": {"body": "thanks"}},
            {"id": "done", "type": "exit"},
        ],
    }
    await publish(api, mailer)
    await publish(api, follow)
    assert (await api.put("/v1/profiles/ada", json={"attributes": {}})).status_code == 200
    journey_id = await start(api, "mailer")
    await in_pause(temporal, journey_id)

    launcher = JourneyLauncher(store, temporal.client, task_queue)
    assert await launcher.sweep(older_than=timedelta(0), workspace_id=tenant.id) >= 1
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path][:2] == [("hi", "sent"), ("wait", "happened")]
    async with store.connect() as conn:
        started = await conn.execute(
            journeys.select().where(journeys.c.workspace_id == tenant.id, journeys.c.flow_id == "follow")
        )
        [followed] = [r.id for r in started]
    assert (await finish(temporal, followed)).status == "completed"
    # The follow-up's own message_sent, swept too, does not start "follow" again.
    assert await launcher.sweep(older_than=timedelta(0), workspace_id=tenant.id) >= 1
    async with store.connect() as conn:
        rows = await conn.execute(
            deliveries_table.select().where(deliveries_table.c.workspace_id == tenant.id)
        )
        by_step = sorted((r.step_id, r.flow_id) for r in rows)
    assert by_step == [("hi", "mailer"), ("thanks", "follow")]
    sent = await events_named(store, tenant.id, "message_sent")
    assert len(sent) == 2 and all(e["routed_at"] is not None for e in sent)
