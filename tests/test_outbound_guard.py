"""SSRF protection: with the guard on (the default outside `cli.py run`), webhooks and call_api
steps cannot reach loopback, private, link-local or other non-public addresses; nothing is
sent, the step records why, and nothing is retried."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from flowline.channels.outbound import OutboundRefused, check_host, outbound_client, public_address
from flowline.store.database import Store
from flowline.store.tables import deliveries
from tests.conftest import Tenant, finish
from tests.servers import HttpSink
from worker import running_worker


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("0.0.0.0", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("fe80::1", False),
        ("fd00::1", False),
        ("224.0.0.1", False),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert public_address(address) is public


async def test_names_are_resolved_before_the_request() -> None:
    with pytest.raises(OutboundRefused, match="localhost resolves to a non-public address"):
        await check_host("localhost", 80)


async def test_the_guarded_client_refuses_a_local_server_the_open_one_reaches(sink: HttpSink) -> None:
    async with outbound_client(timeout=5, allow_private=False) as guarded:
        with pytest.raises(OutboundRefused):
            await guarded.get(f"{sink.url}/x")
    assert sink.received == []
    async with outbound_client(timeout=5, allow_private=True) as open_client:
        assert (await open_client.get(f"{sink.url}/x")).status_code == 200
    assert len(sink.received) == 1


def _flow(sink_url: str) -> dict[str, Any]:
    return {
        "id": "outbound",
        "name": "outbound",
        "trigger": {"type": "event", "event": "go"},
        "steps": [
            {"id": "hook", "type": "webhook", "url": f"{sink_url}/hook"},
            {
                "id": "call",
                "type": "call_api",
                "method": "GET",
                "url": f"{sink_url}/call",
                "next": {"success": "done", "error": "done"},
            },
            {"id": "done", "type": "exit"},
        ],
    }


async def test_webhooks_and_calls_to_private_addresses_are_refused_once(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    store: Store,
    task_queue: str,
    tenant: Tenant,
    sink: HttpSink,
) -> None:
    assert (await api.put("/v1/flows/outbound", json=_flow(sink.url))).status_code == 200
    assert (await api.post("/v1/flows/outbound/publish")).status_code == 200
    async with running_worker(temporal.client, store, task_queue, webhook_timeout=5):  # the guard is on
        response = await api.post("/v1/events", json={"id": "e1", "profile_id": "ada", "name": "go"})
        [journey_id] = response.json()["journeys"]
        state = await finish(temporal, journey_id)
    assert sink.received == [], "nothing reached the local server"
    hook, call = state.path[0], state.path[1]
    assert hook.error is not None and "non-public address (127.0.0.1)" in hook.error
    assert (call.branch, call.error is not None and "non-public address" in call.error) == ("error", True)
    async with store.connect() as conn:
        [row] = (await conn.execute(select(deliveries).where(deliveries.c.workspace_id == tenant.id))).all()
    assert (row.status, "non-public address" in (row.detail or "")) == ("failed", True)
