"""Email end to end: a flow sends through a real SMTP server (aiosmtpd), the person opens it (the
pixel read from the received HTML), and a journey waiting for the open hears it; without an open
it takes the fallback after 4 hours (time-skipping server); a scanner opening the unsubscribe
link unsubscribes nobody, and after a one-click unsubscribe (POST) the next email is skipped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from flowline.channels.config import ChannelSettings
from flowline.journey import JourneyState
from flowline.store import workspaces
from flowline.store.database import Store
from tests.conftest import Tenant, _terminate_leftovers, finish
from tests.smtp import ReceivedMail, SmtpServer
from tests.test_journeys import publish
from worker import running_worker

PUBLIC = "http://flowline"


@pytest_asyncio.fixture
async def mail_worker(
    temporal: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    tenant: Tenant,
    smtp: SmtpServer,
) -> AsyncIterator[None]:
    """A worker whose emails carry tracking links the app (the api fixture) accepts, and the
    tenant's email going to the test SMTP server."""
    async with store.begin() as conn:
        await workspaces.set_channel_settings(conn, tenant.id, ChannelSettings(email=smtp.settings()))
    async with running_worker(
        temporal.client, store, task_queue, webhook_timeout=5, allow_private_outbound=True, public_url=PUBLIC
    ):
        yield
    await _terminate_leftovers(temporal, store)


def _flow(flow_id: str = "welcome", *, then_wait: bool = True) -> dict[str, Any]:
    opened = {"event": "message_opened", "where": [{"property": "step_id", "op": "is", "value": "mail"}]}
    mail = {
        "id": "mail",
        "type": "send",
        "channel": "email",
        "content": {
            "subject": "Welcome, {{ profile.name }}",
            "html": '<p>Hi {{ profile.name }}, see <a href="https://shop.example/sale">the sale</a>.</p>'
            '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
            "text": "Hi {{ profile.name }}",
        },
        "next": {"sent": "wait" if then_wait else "done", "skipped": "done", "failed": "done"},
    }
    wait = {
        "id": "wait",
        "type": "wait_for_event",
        "conditions": [opened],
        "timeout": "4h",
        "next": {"happened": "done", "timeout": "fallback"},
    }
    fallback = {"id": "fallback", "type": "send", "channel": "in_app", "content": {"body": "no open"}}
    steps = [mail, wait, fallback] if then_wait else [mail]
    return {
        "id": flow_id,
        "name": flow_id,
        "trigger": {"type": "flow"},
        "steps": [*steps, {"id": "done", "type": "exit"}],
    }


async def _person(api: httpx.AsyncClient) -> tuple[str, str]:
    person = f"p-{uuid.uuid4().hex[:8]}"
    address = f"{person}@example.test"
    response = await api.put(f"/v1/profiles/{person}", json={"attributes": {"email": address, "name": "Ada"}})
    assert response.status_code == 200, response.text
    return person, address


async def _start(api: httpx.AsyncClient, flow_id: str, person: str) -> str:
    started = await api.post(f"/v1/flows/{flow_id}/journeys", json={"profile_id": person})
    assert started.status_code == 201, started.text
    journey_id: str = started.json()["journey_id"]
    return journey_id


async def _arrival(smtp: SmtpServer, address: str) -> ReceivedMail:
    """The message once the worker has sent it (the journey runs on its own meanwhile)."""
    for _ in range(400):
        if found := smtp.to(address):
            return found[0]
        await asyncio.sleep(0.025)
    raise AssertionError(f"no email to {address}")


async def _waiting(temporal: WorkflowEnvironment, journey_id: str) -> None:
    """Until the journey waits for the open: an open before the wait began would not count."""
    handle = temporal.client.get_workflow_handle(journey_id)
    for _ in range(400):
        state = await handle.query("state", result_type=JourneyState)
        if state.current_step == "wait":
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{journey_id} never reached the wait")


def _src(html: str, marker: str) -> list[str]:
    return [part.split('"', 1)[0] for part in html.split(marker)[1:]]


async def test_a_journey_hears_the_open_of_the_email_it_sent(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, mail_worker: None, smtp: SmtpServer
) -> None:
    await publish(api, _flow())
    person, address = await _person(api)
    journey_id = await _start(api, "welcome", person)
    received = await _arrival(smtp, address)
    assert received.message["Subject"] == "Welcome, Ada"
    html = received.part("html")
    [unsubscribe] = [h for h in _src(html, 'href="') if "/t/u/" in h]
    assert received.message["List-Unsubscribe"] == f"<{unsubscribe}>"
    [click] = [h for h in _src(html, 'href="') if "/t/c/" in h]
    redirected = await api.get(click)
    assert redirected.status_code == 302 and redirected.headers["location"] == "https://shop.example/sale"
    [pixel] = _src(html, '<img src="')
    await _waiting(temporal, journey_id)
    assert (await api.get(pixel)).status_code == 200
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path] == [
        ("mail", "sent"),
        ("wait", "happened"),
        ("done", "exit"),
    ]


async def test_without_an_open_the_journey_falls_back_after_4_hours(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, mail_worker: None, smtp: SmtpServer
) -> None:
    await publish(api, _flow())
    person, address = await _person(api)
    journey_id = await _start(api, "welcome", person)
    await _arrival(smtp, address)
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path][:2] == [("mail", "sent"), ("wait", "timeout")]
    wait = state.path[1]
    assert wait.left_at is not None and (wait.left_at - wait.entered_at).total_seconds() >= 4 * 3600
    inbox = (await api.get(f"/v1/profiles/{person}/inbox")).json()["messages"]
    assert [m["body"] for m in inbox] == ["no open"]


async def test_a_scanner_opening_the_links_unsubscribes_nobody_the_one_click_post_does(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, mail_worker: None, smtp: SmtpServer
) -> None:
    for flow_id in ("first", "second", "third"):
        await publish(api, _flow(flow_id, then_wait=False))
    person, address = await _person(api)
    await finish(temporal, await _start(api, "first", person))
    received = await _arrival(smtp, address)
    one_click = received.message["List-Unsubscribe"].strip("<>")
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # A mail scanner or link prefetcher follows the header's URL and every link of the body.
    [in_body] = [h for h in _src(received.part("html"), 'href="') if "/t/u/" in h]
    for url in (one_click, in_body):
        page = await api.get(url)
        assert page.status_code == 200 and 'method="post"' in page.text
    state = await finish(temporal, await _start(api, "second", person))
    assert [(p.step, p.branch) for p in state.path][:1] == [("mail", "sent")]
    # The mail client's RFC 8058 one-click POST to the header's URL is what unsubscribes.
    response = await api.post(one_click, content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    state = await finish(temporal, await _start(api, "third", person))
    assert [(p.step, p.branch) for p in state.path][:1] == [("mail", "skipped")]
    assert len(smtp.to(address)) == 2
