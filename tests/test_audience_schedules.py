"""Audience triggers on real Temporal Schedules (a dev server: the time-skipping server has no
Schedules): the specs publishing creates, runs that start exactly the audience's journeys, and
the schedule's removal. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from temporalio.client import Client, ScheduleHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.entries import EntryActivities, EntryProgress
from flowline.entry_runs import EntryRunRequest, EntryRunResult
from flowline.store.database import Store
from flowline.store.tables import events, journeys
from launch.entry_schedules import schedule_id
from launch.routing import JourneyLauncher
from tests.conftest import Tenant, app_client
from worker import running_worker
from workflows.entry_run import EntryRunWorkflow

PRO = {"attribute": "plan", "op": "is", "value": "pro"}


@pytest_asyncio.fixture
async def api(
    store: Store, dev_server: WorkflowEnvironment, task_queue: str, tenant: Tenant, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the dev server, with a worker on ``task_queue``."""
    worker = running_worker(dev_server.client, store, task_queue, allow_private_outbound=True)
    async with worker, app_client(store, dev_server, task_queue, tenant, tmp_path) as client:
        yield client


def audience_flow(
    flow_id: str = "monthly", *, reentry: str = "concurrent", **schedule: Any
) -> dict[str, Any]:
    return {
        "id": flow_id,
        "name": "Audience",
        "trigger": {"type": "audience", "segment": "pros", "schedule": schedule or {"every": "1h"}},
        "settings": {"reentry": reentry},
        "steps": [
            {"id": "note", "type": "update_variable", "set": {"seen": "1"}},
            {"id": "done", "type": "exit"},
        ],
    }


async def publish(api: httpx.AsyncClient, doc: dict[str, Any]) -> httpx.Response:
    response = await api.put(f"/v1/flows/{doc['id']}", json=doc)
    if response.status_code != 200:
        return response
    published = await api.post(f"/v1/flows/{doc['id']}/publish")
    assert published.status_code == 200, published.text
    return published


async def next_times(client: Client, tenant: Tenant, flow_id: str) -> list[str]:
    described = await client.get_schedule_handle(schedule_id(tenant.id, flow_id)).describe()
    return [t.astimezone(UTC).isoformat() for t in described.info.next_action_times]


async def test_second_monday_at_22_in_berlin_across_both_dst_changes(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, tenant: Tenant
) -> None:
    await setup_audience(api)
    calendar = {"at": "22:00", "weekdays": ["monday"], "week_of_month": 2}
    doc = audience_flow(calendar=calendar, timezone="Europe/Berlin")
    doc["settings"]["start_at"] = "2027-01-15T00:00:00Z"
    assert (await publish(api, doc)).status_code == 200
    # Berlin is UTC+1 until 28 March 2027 and from 31 October, UTC+2 between.
    expected = [
        "2027-02-08T21:00:00+00:00",
        "2027-03-08T21:00:00+00:00",
        "2027-04-12T20:00:00+00:00",
        "2027-05-10T20:00:00+00:00",
        "2027-06-14T20:00:00+00:00",
        "2027-07-12T20:00:00+00:00",
        "2027-08-09T20:00:00+00:00",
        "2027-09-13T20:00:00+00:00",
        "2027-10-11T20:00:00+00:00",
        "2027-11-08T21:00:00+00:00",
    ]
    assert (await next_times(dev_server.client, tenant, "monthly"))[: len(expected)] == expected
    # Without a zone of its own the schedule reads the workspace's.
    assert (await api.put("/v1/workspace", json={"timezone": "Europe/Berlin"})).status_code == 200
    doc = audience_flow("monthly-ws", calendar=calendar)
    doc["settings"]["start_at"] = "2027-01-15T00:00:00Z"
    assert (await publish(api, doc)).status_code == 200
    assert (await next_times(dev_server.client, tenant, "monthly-ws"))[: len(expected)] == expected


async def test_a_schedule_without_a_zone_follows_the_workspace_zone_when_it_changes(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, tenant: Tenant
) -> None:
    await setup_audience(api)
    calendar = {"at": "22:00", "weekdays": ["monday"], "week_of_month": 2}
    for flow_id, zone in (("follows", None), ("own-zone", "America/New_York")):
        doc = audience_flow(flow_id, calendar=calendar, **({"timezone": zone} if zone else {}))
        doc["settings"]["start_at"] = "2027-01-15T00:00:00Z"
        assert (await publish(api, doc)).status_code == 200
    assert (await next_times(dev_server.client, tenant, "follows"))[:2] == [
        "2027-02-08T22:00:00+00:00",  # no workspace zone yet: UTC
        "2027-03-08T22:00:00+00:00",
    ]
    new_york = await next_times(dev_server.client, tenant, "own-zone")

    assert (await api.put("/v1/workspace", json={"timezone": "Europe/Berlin"})).status_code == 200
    assert (await next_times(dev_server.client, tenant, "follows"))[:3] == [
        "2027-02-08T21:00:00+00:00",  # 22:00 in Berlin, UTC+1, then UTC+2 from 28 March
        "2027-03-08T21:00:00+00:00",
        "2027-04-12T20:00:00+00:00",
    ]
    assert await next_times(dev_server.client, tenant, "own-zone") == new_york


async def test_cron_in_new_york_across_dst_and_every_hour(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, tenant: Tenant
) -> None:
    await setup_audience(api)
    doc = audience_flow("tenth", cron="0 9 10 * *", timezone="America/New_York")
    doc["settings"]["start_at"] = "2027-01-15T00:00:00Z"
    assert (await publish(api, doc)).status_code == 200
    # New York is UTC-5 until 14 March 2027 and from 7 November, UTC-4 between.
    summer = [f"2027-{m:02d}-10T13:00:00+00:00" for m in range(4, 11)]
    expected = [
        "2027-02-10T14:00:00+00:00",
        "2027-03-10T14:00:00+00:00",
        *summer,
        "2027-11-10T14:00:00+00:00",
    ]
    assert (await next_times(dev_server.client, tenant, "tenth"))[: len(expected)] == expected

    assert (await publish(api, audience_flow("hourly", every="1h"))).status_code == 200
    times = [datetime.fromisoformat(t) for t in await next_times(dev_server.client, tenant, "hourly")]
    assert len(times) >= 3
    assert all(t.minute == 0 and t.second == 0 for t in times)
    assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(times))


async def entry_run(client: Client, handle: ScheduleHandle, seen: set[str]) -> EntryRunResult:
    """The result of the schedule's newest run not in ``seen``."""
    for _ in range(100):
        actions = (await handle.describe()).info.recent_actions
        fresh = [a for a in actions if a.action.workflow_id not in seen]  # type: ignore[attr-defined]
        if fresh:
            workflow_id = fresh[-1].action.workflow_id  # type: ignore[attr-defined]
            seen.add(workflow_id)
            result: EntryRunResult = await client.get_workflow_handle(
                workflow_id, result_type=EntryRunResult
            ).result()
            return result
        await asyncio.sleep(0.1)  # the schedule records the action a moment after the trigger
    raise AssertionError("the schedule did not run")


async def journey_rows(store: Store, tenant: Tenant, flow_id: str) -> list[tuple[str, str]]:
    async with store.connect() as conn:
        rows = await conn.execute(
            select(journeys.c.profile_id, journeys.c.id)
            .where(journeys.c.workspace_id == tenant.id, journeys.c.flow_id == flow_id)
            .order_by(journeys.c.profile_id, journeys.c.id)
        )
        return [(r.profile_id, r.id) for r in rows]


async def setup_audience(api: httpx.AsyncClient, *profiles: tuple[str, str]) -> None:
    response = await api.put("/v1/segments/pros", json={"name": "Pros", "rule": PRO})
    assert response.status_code == 200, response.text
    for profile_id, plan in profiles:
        assert (
            await api.put(f"/v1/profiles/{profile_id}", json={"attributes": {"plan": plan}})
        ).status_code == 200


async def test_a_run_starts_exactly_the_audience_and_a_repeated_run_starts_no_duplicates(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, store: Store, tenant: Tenant, task_queue: str
) -> None:
    await setup_audience(api, ("ada", "pro"), ("bob", "pro"), ("cy", "free"))
    assert (await publish(api, audience_flow())).status_code == 200
    handle = dev_server.client.get_schedule_handle(schedule_id(tenant.id, "monthly"))
    await handle.trigger()
    result = await entry_run(dev_server.client, handle, set())
    assert (result.skipped, result.considered, result.started) == (None, 2, 2)
    # The run's time is the schedule's (TemporalScheduledStartTime, whole seconds).
    assert result.scheduled_at is not None and result.scheduled_at.microsecond == 0
    first = await journey_rows(store, tenant, "monthly")
    assert [p for p, _ in first] == ["ada", "bob"]
    for _, journey_id in first:
        state = await dev_server.client.get_workflow_handle(journey_id).result()
        assert state["status"] == "completed" and state["variables"] == {"seen": 1}

    # The same run again (a retried activity, a repeated workflow): the same journeys, no others.
    request = EntryRunRequest(workspace_id=tenant.id, flow_id="monthly", scheduled_at=result.scheduled_at)
    again = await dev_server.client.execute_workflow(
        EntryRunWorkflow.run, request, id=f"again-{task_queue}", task_queue=task_queue
    )
    assert (again.considered, again.started) == (2, 2)
    launcher = JourneyLauncher(store, dev_server.client, task_queue)
    direct = await EntryActivities(store, launcher).run(request)
    assert (direct.considered, direct.started) == (2, 2)
    assert await journey_rows(store, tenant, "monthly") == first
    async with store.connect() as conn:
        entered = await conn.scalar(
            select(func.count()).where(events.c.workspace_id == tenant.id, events.c.name == "flow_entered")
        )
    assert entered == 2

    # A later run (another time) enters them again: re-entry is concurrent, one entry per run.
    request = EntryRunRequest(
        workspace_id=tenant.id, flow_id="monthly", scheduled_at=result.scheduled_at + timedelta(hours=1)
    )
    assert (await EntryActivities(store, launcher).run(request)).started == 2
    assert [p for p, _ in await journey_rows(store, tenant, "monthly")] == ["ada", "ada", "bob", "bob"]


async def test_reentry_never_holds_across_runs(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, store: Store, tenant: Tenant, task_queue: str
) -> None:
    await setup_audience(api, ("ada", "pro"), ("bob", "free"))
    assert (await publish(api, audience_flow(reentry="never"))).status_code == 200
    handle = dev_server.client.get_schedule_handle(schedule_id(tenant.id, "monthly"))
    seen: set[str] = set()
    await handle.trigger()
    assert (await entry_run(dev_server.client, handle, seen)).started == 1
    # Bob joins the audience; the next run enters him, never Ada again.
    assert (await api.put("/v1/profiles/bob", json={"attributes": {"plan": "pro"}})).status_code == 200
    launcher = JourneyLauncher(store, dev_server.client, task_queue)
    later = datetime.now(UTC) + timedelta(minutes=5)
    request = EntryRunRequest(workspace_id=tenant.id, flow_id="monthly", scheduled_at=later)
    result = await EntryActivities(store, launcher).run(request)
    assert (result.considered, result.started) == (2, 1)
    assert [p for p, _ in await journey_rows(store, tenant, "monthly")] == ["ada", "bob"]


async def schedule_exists(client: Client, tenant: Tenant, flow_id: str) -> bool:
    try:
        await client.get_schedule_handle(schedule_id(tenant.id, flow_id)).describe()
    except RPCError as error:
        assert error.status == RPCStatusCode.NOT_FOUND
        return False
    return True


async def test_stopping_the_flow_or_changing_its_trigger_deletes_the_schedule(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, store: Store, tenant: Tenant, task_queue: str
) -> None:
    await setup_audience(api, ("ada", "pro"))
    assert (await publish(api, audience_flow())).status_code == 200
    assert await schedule_exists(dev_server.client, tenant, "monthly")
    response = await api.post("/v1/flows/monthly/stop")
    assert response.status_code == 200 and response.json()["status"] == "stopped"
    assert not await schedule_exists(dev_server.client, tenant, "monthly")
    # A run already on its way starts nobody once the flow stopped.
    launcher = JourneyLauncher(store, dev_server.client, task_queue)
    request = EntryRunRequest(workspace_id=tenant.id, flow_id="monthly", scheduled_at=datetime.now(UTC))
    result = await EntryActivities(store, launcher).run(request)
    assert result.skipped == "flow 'monthly' is not running" and result.started == 0

    # Published again: a schedule; a version with an event trigger: none; draining: none.
    assert (await publish(api, audience_flow())).status_code == 200
    assert await schedule_exists(dev_server.client, tenant, "monthly")
    doc = audience_flow()
    doc["trigger"] = {"type": "event", "event": "signed_up"}
    assert (await publish(api, doc)).status_code == 200
    assert not await schedule_exists(dev_server.client, tenant, "monthly")
    assert (await publish(api, audience_flow())).status_code == 200
    assert (await api.post("/v1/flows/monthly/drain")).json()["status"] == "draining"
    assert not await schedule_exists(dev_server.client, tenant, "monthly")
    assert (await api.post("/v1/flows/nope/stop")).status_code == 404


@pytest.mark.parametrize(
    ("schedule", "path", "words"),
    [
        ({"cron": "0 22 * * MON#2"}, "$.trigger.schedule.cron", "calendar form"),
        ({"every": "30m"}, "$.trigger.schedule.every", "at least 1h"),
        (
            {"calendar": {"at": "22:00", "week_of_month": 2}},
            "$.trigger.schedule.calendar",
            "needs 'weekdays'",
        ),
        (
            {"calendar": {"at": "22:00", "weekdays": ["monday"], "week_of_month": 2, "days_of_month": [1]}},
            "$.trigger.schedule.calendar",
            "not both",
        ),
        ({"every": "1h", "cron": "0 * * * *"}, "$.trigger.schedule", "exactly one"),
        ({"every": "1h", "timezone": "Mars/Olympus"}, "$.trigger.schedule", "Mars/Olympus"),
    ],
)
async def test_bad_schedules_are_a_422_with_their_path(
    api: httpx.AsyncClient, schedule: dict[str, Any], path: str, words: str
) -> None:
    response = await publish(api, audience_flow(**schedule))
    assert response.status_code == 422, response.text
    faults = {f["path"]: f["message"] for f in response.json()["faults"]}
    assert path in faults, faults
    assert words in faults[path]


async def test_a_retried_attempt_resumes_after_the_last_page_it_started(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, store: Store, tenant: Tenant, task_queue: str
) -> None:
    await setup_audience(api, ("ada", "pro"), ("bob", "pro"), ("cy", "pro"))
    assert (await publish(api, audience_flow())).status_code == 200
    launcher = JourneyLauncher(store, dev_server.client, task_queue)
    request = EntryRunRequest(workspace_id=tenant.id, flow_id="monthly", scheduled_at=datetime.now(UTC))
    beats: list[EntryProgress] = []
    # As the heartbeat left it: Ada's page started.
    result = await EntryActivities(store, launcher).run(
        request, EntryProgress("ada", 1, 1), heartbeat=lambda p: beats.append(copy.copy(p))
    )
    assert (result.considered, result.started) == (3, 3)
    assert [p for p, _ in await journey_rows(store, tenant, "monthly")] == ["bob", "cy"]
    assert beats == [EntryProgress("cy", 3, 3)]


async def test_stopping_a_flow_stops_its_journeys_in_flight(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, store: Store, tenant: Tenant
) -> None:
    doc = {
        "id": "slow",
        "name": "Slow",
        "trigger": {"type": "event", "event": "signed_up"},
        "steps": [{"id": "wait", "type": "pause", "for": "7d"}, {"id": "done", "type": "exit"}],
    }
    assert (await publish(api, doc)).status_code == 200
    response = await api.post("/v1/events", json={"id": "e-1", "profile_id": "ada", "name": "signed_up"})
    [journey_id] = response.json()["journeys"]
    stopped = await api.post("/v1/flows/slow/stop")
    assert stopped.json() == {"id": "slow", "status": "stopped", "journeys_stopped": 1}
    state = await dev_server.client.get_workflow_handle(journey_id).result()
    assert (state["status"], state["exit_reason"]) == ("stopped", "flow stopped")


async def test_an_audience_of_a_missing_segment_is_a_422(api: httpx.AsyncClient) -> None:
    assert (await api.put("/v1/flows/monthly", json=audience_flow())).status_code == 200
    response = await api.post("/v1/flows/monthly/publish")
    assert response.status_code == 422
    assert response.json()["faults"] == [{"path": "$.trigger.segment", "message": "no segment 'pros'"}]
