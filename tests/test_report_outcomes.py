"""What failed and bounced reports change: the step statistics count them as failed (beside sends
the provider refused), and a bounce puts the channel on the person's do-not-contact list, so the
next email to them is skipped. Real sends through SMTP, reports and statistics through the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.channels.config import ChannelSettings
from flowline.journey import JourneyState
from flowline.store import workspaces
from flowline.store.database import Store
from flowline.store.profiles import get_profile
from flowline.store.tables import deliveries
from tests.conftest import Tenant, _terminate_leftovers, finish
from tests.smtp import SmtpServer
from tests.test_journeys import publish
from worker import running_worker

NEWS: dict[str, Any] = {
    "id": "news",
    "name": "News",
    "trigger": {"type": "flow"},
    "steps": [
        {
            "id": "mail",
            "type": "send",
            "channel": "email",
            "content": {"subject": "News", "text": "Hello"},
            "next": {"sent": "done", "skipped": "done", "failed": "done"},
        },
        {"id": "done", "type": "exit"},
    ],
}


@pytest_asyncio.fixture
async def mail_worker(
    temporal: WorkflowEnvironment, store: Store, task_queue: str, tenant: Tenant, smtp: SmtpServer
) -> AsyncIterator[None]:
    async with store.begin() as conn:
        await workspaces.set_channel_settings(conn, tenant.id, ChannelSettings(email=smtp.settings()))
    async with running_worker(
        temporal.client, store, task_queue, webhook_timeout=5, allow_private_outbound=True
    ):
        yield
    await _terminate_leftovers(temporal, store)


async def mail(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, person: str
) -> tuple[str, JourneyState]:
    started = await api.post("/v1/flows/news/journeys", json={"profile_id": person})
    assert started.status_code == 201, started.text
    journey_id: str = started.json()["journey_id"]
    return journey_id, await finish(temporal, journey_id)


async def delivery_of(store: Store, journey_id: str) -> dict[str, Any]:
    async with store.connect() as conn:
        rows = await conn.execute(select(deliveries).where(deliveries.c.journey_id == journey_id))
        [row] = [dict(r._mapping) for r in rows]
    return row


async def report(api: httpx.AsyncClient, delivery_id: str, status: str) -> None:
    response = await api.post("/v1/reports/email", json={"delivery_id": delivery_id, "status": status})
    assert response.status_code == 200, response.text


async def mail_stats(api: httpx.AsyncClient) -> dict[str, int]:
    response = await api.get("/v1/flows/news/stats")
    assert response.status_code == 200, response.text
    [version] = response.json()["versions"]
    [step] = [s for s in version["steps"] if s["id"] == "mail"]
    sends: dict[str, int] = step["sends"]
    return sends


async def test_failed_and_bounced_reports_count_as_failed_and_a_bounce_stops_the_next_email(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    mail_worker: None,
    store: Store,
    tenant: Tenant,
) -> None:
    people = {"ada": "ada", "bob": "bob", "cy": "refused-cy", "dee": "dee"}  # the SMTP server refuses cy
    for person, local in people.items():
        body = {"attributes": {"email": f"{local}-{tenant.id}@example.test"}}
        assert (await api.put(f"/v1/profiles/{person}", json=body)).status_code == 200
    await publish(api, NEWS)
    first = {person: await mail(api, temporal, person) for person in people}
    branches = {person: state.path[0].branch for person, (_, state) in first.items()}
    assert branches == {"ada": "sent", "bob": "sent", "cy": "failed", "dee": "sent"}
    ids = {person: (await delivery_of(store, journey))["id"] for person, (journey, _) in first.items()}
    assert await mail_stats(api) == {"sends": 3, "deliveries": 0, "opens": 0, "clicks": 0, "failed": 1}

    # ada's message failed after all (twice reported, then also bounced): one failed message.
    await report(api, ids["ada"], "failed")
    await report(api, ids["ada"], "failed")
    await report(api, ids["bob"], "bounced")
    await report(api, ids["dee"], "delivered")
    assert await mail_stats(api) == {"sends": 3, "deliveries": 1, "opens": 0, "clicks": 0, "failed": 3}
    ada = await delivery_of(store, first["ada"][0])
    assert ada["status"] == "sent" and ada["failed_at"] is not None  # the send's status stays

    # bob bounced: the next email to him is skipped; ada's failure blocks nothing.
    again = {person: (await mail(api, temporal, person))[1] for person in ("ada", "bob")}
    assert (again["ada"].path[0].branch, again["bob"].path[0].branch) == ("sent", "skipped")
    assert again["bob"].path[0].error == "do_not_contact: email"
    async with store.connect() as conn:
        bob, ada_profile = [await get_profile(conn, tenant.id, p) for p in ("bob", "ada")]
    assert bob is not None and bob["do_not_contact"] == [{"channel": "email", "sender": None}]
    assert ada_profile is not None and ada_profile["do_not_contact"] == []
