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

from flowline.store.database import Store
from tests.conftest import Tenant, app_client
from worker import running_worker


@pytest_asyncio.fixture
async def api(
    store: Store, dev_server: WorkflowEnvironment, task_queue: str, tenant: Tenant, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the dev server, with a worker on ``task_queue``."""
    worker = running_worker(dev_server.client, store, task_queue, allow_private_outbound=True)
    async with worker, app_client(store, dev_server, task_queue, tenant, tmp_path) as client:
        yield client


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


async def found(dev_server: WorkflowEnvironment, query: str, expected: set[str]) -> set[str]:
    """The running workflows ``query`` lists, once visibility (eventually consistent) shows
    ``expected`` (at most ~10 s)."""
    ids: set[str] = set()
    for _ in range(100):
        listed = dev_server.client.list_workflows(f"{query} AND ExecutionStatus = 'Running'")
        ids = {w.id async for w in listed}
        if ids == expected:
            break
        await asyncio.sleep(0.1)
    return ids


async def test_journeys_are_found_by_flow_version_profile_and_step(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, tenant: Tenant
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
    assert await found(dev_server, f"{flow} AND FlowVersion = 1 AND StepId = 'wait'", {ada, bob}) == {
        ada,
        bob,
    }
    assert await found(dev_server, f"{flow} AND ProfileId = 'ada'", {ada}) == {ada}

    # Version 2 waits a second at "wait": a journey moved there goes on to "listen" at once.
    assert (await api.put("/v1/flows/findable", json=findable_flow("1s"))).status_code == 200
    moved = await api.post("/v1/flows/findable/publish", json={"move_journeys": True})
    assert moved.json()["journeys_asked_to_move"] == 2
    on_v2 = f"{flow} AND FlowVersion = 2 AND StepId = 'listen'"
    assert await found(dev_server, on_v2, {ada, bob}) == {ada, bob}
    assert await found(dev_server, f"{flow} AND FlowVersion = 1", set()) == set()
