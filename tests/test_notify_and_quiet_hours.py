"""notify_internal (the team's email, to fixed addresses and one taken from a variable, once per
address) and quiet hours (an email due at night waits for the morning in the person's zone,
an in-app message does not), through a real SMTP server on the time-skipping server."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest_asyncio
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.channels.config import ChannelSettings
from flowline.store import workspaces
from flowline.store.database import Store
from flowline.store.tables import deliveries
from tests.conftest import Tenant, finish
from tests.smtp import SmtpServer
from tests.test_journeys import publish


@pytest_asyncio.fixture
async def mail(store: Store, tenant: Tenant, smtp: SmtpServer) -> SmtpServer:
    async with store.begin() as conn:
        await workspaces.set_channel_settings(conn, tenant.id, ChannelSettings(email=smtp.settings()))
    return smtp


async def start(api: httpx.AsyncClient, profile: str, event_id: str, **properties: Any) -> str:
    response = await api.post(
        "/v1/events", json={"id": event_id, "profile_id": profile, "name": "go", "properties": properties}
    )
    assert response.status_code == 202, response.text
    [journey_id] = response.json()["journeys"]
    return str(journey_id)


async def test_notify_internal_mails_each_address_once_including_one_from_a_variable(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    mail: SmtpServer,
    tenant: Tenant,
) -> None:
    tag = tenant.id  # addresses unique to this test: the SMTP server is shared by the session
    doc = {
        "id": "lead",
        "name": "New lead",
        "trigger": {"type": "event", "event": "go"},
        "settings": {"variables": {"owner": {"type": "text", "default": f"owner-{tag}@example.com"}}},
        "steps": [
            {
                "id": "tell",
                "type": "notify_internal",
                "channel": "email",
                # The same address twice (once literally, once from the event) is one message.
                "to": [f"sales-{tag}@example.com", "{{ vars.owner }}", "{{ event.cc }}"],
                "subject": "Lead: {{ profile.id }}",
                "body": "{{ profile.id }} signed up",
            },
            {"id": "done", "type": "exit"},
        ],
    }
    await publish(api, doc)
    state = await finish(temporal, await start(api, "ada", "e1", cc=f"sales-{tag}@example.com"))
    assert (state.path[0].branch, state.path[0].error) == ("sent", None)
    got = {m.recipients[0]: m.message["Subject"] for m in mail.received if tag in m.recipients[0]}
    assert got == {f"sales-{tag}@example.com": "Lead: ada", f"owner-{tag}@example.com": "Lead: ada"}


async def test_quiet_hours_hold_an_email_until_morning_but_not_an_in_app_message(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    mail: SmtpServer,
    store: Store,
    tenant: Tenant,
) -> None:
    doc = {
        "id": "night",
        "name": "Night",
        "trigger": {"type": "event", "event": "go"},
        # Quiet from 08:00 to 07:59 the next day in Tokyo: only 07:59-08:00 is open, so wherever
        # the test server's clock stands, the email waits for 07:59 Tokyo time.
        "settings": {"quiet_hours": {"from": "08:00", "to": "07:59"}},
        "steps": [
            {"id": "inbox", "type": "send", "channel": "in_app", "content": {"body": "now"}},
            {
                "id": "mail",
                "type": "send",
                "channel": "email",
                "content": {"subject": "Morning", "text": "Good morning"},
            },
            {"id": "done", "type": "exit"},
        ],
    }
    await publish(api, doc)
    address = f"ada-{tenant.id}@example.com"
    put = await api.put("/v1/profiles/ada", json={"attributes": {"email": address, "timezone": "Asia/Tokyo"}})
    assert put.status_code == 200
    state = await finish(temporal, await start(api, "ada", "e1"))
    assert [(e.step, e.branch) for e in state.path] == [("inbox", "sent"), ("mail", "sent"), ("done", "exit")]
    async with store.connect() as conn:
        rows = {
            r.channel: r.created_at
            for r in await conn.execute(select(deliveries).where(deliveries.c.workspace_id == tenant.id))
        }
    sent = rows["email"].astimezone(ZoneInfo("Asia/Tokyo"))
    assert (sent.hour, sent.minute) == (7, 59), sent
    assert rows["email"] > rows["in_app"], "the in-app message went at once, the email waited"
    assert len(mail.to(address)) == 1
