"""Journeys in the Temporal UI: found by workspace, flow, version, profile and step through
search attributes, and a moved journey shows its new version and step without its history
being read. On a dev server: the time-skipping server has no visibility queries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from flowline.settings import Settings
from flowline.store.database import Store
from tests.conftest import Tenant
from tests.servers import start_dev_server
from worker import running_worker


@pytest_asyncio.fixture(scope="module")
async def dev() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    yield env
    await env.shutdown()


@pytest_asyncio.fixture
async def api(
    store: Store, dev: WorkflowEnvironment, task_queue: str, tenant: Tenant, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=str(store.url), task_queue=task_queue, data_dir=tmp_path, sweep_seconds=0
    )
    app = create_app(settings, store=store, temporal=dev.client)
    async with app.router.lifespan_context(app), running_worker(dev.client, store, task_queue):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {tenant.key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://flowline", headers=headers
        ) as client:
            yield client
            await client.post("/v1/flows/findable/stop")


def findable_flow(first_pause: str) -> dict[str, Any]:
    return {
        "id": "findable",
        "name": "Findable",
        "trigger": {"type": "event", "event": "go"},
        "steps": [
            {"id": "wait", "type": "pause", "for": first_pause},
            {"id": "listen", "type": "pause", "for": "7d"},
        ],
    }


async def found(dev: WorkflowEnvironment, query: str, expected: set[str]) -> set[str]:
    """The running workflows ``query`` lists, once visibility (eventually consistent) shows
    ``expected`` (at most ~10 s)."""
    ids: set[str] = set()
    for _ in range(100):
        listed = dev.client.list_workflows(f"{query} AND ExecutionStatus = 'Running'")
        ids = {w.id async for w in listed}
        if ids == expected:
            break
        await asyncio.sleep(0.1)
    return ids


async def test_journeys_are_found_by_flow_version_profile_and_step(
    api: httpx.AsyncClient, dev: WorkflowEnvironment, tenant: Tenant
) -> None:
    assert (await api.put("/v1/flows/findable", json=findable_flow("7d"))).status_code == 200
    assert (await api.post("/v1/flows/findable/publish")).status_code == 200
    entered = []
    for profile in ("ada", "bob"):
        response = await api.post(
            "/v1/events", json={"id": f"e-{profile}", "profile_id": profile, "name": "go"}
        )
        entered += response.json()["journeys"]
    ada, bob = entered

    flow = f"WorkspaceId = '{tenant.id}' AND FlowId = 'findable'"
    assert await found(dev, f"{flow} AND FlowVersion = 1 AND StepId = 'wait'", {ada, bob}) == {ada, bob}
    assert await found(dev, f"{flow} AND ProfileId = 'ada'", {ada}) == {ada}

    # Version 2 waits a second at "wait": a journey moved there goes on to "listen" at once.
    assert (await api.put("/v1/flows/findable", json=findable_flow("1s"))).status_code == 200
    moved = await api.post("/v1/flows/findable/publish", json={"move_journeys": True})
    assert moved.json()["journeys_asked_to_move"] == 2
    on_v2 = f"{flow} AND FlowVersion = 2 AND StepId = 'listen'"
    assert await found(dev, on_v2, {ada, bob}) == {ada, bob}
    assert await found(dev, f"{flow} AND FlowVersion = 1", set()) == set()
