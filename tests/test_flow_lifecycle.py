"""The flow lifecycle (docs/flows.md#lifecycle) through the API: each change of state and what it does to the
journeys in flight, the versions with their journeys, and the changes refused with 409."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from flowline.store.database import Store, utcnow
from tests.conftest import finish
from tests.test_add_to_flow import caller_flow, run_caller
from tests.test_flow_settings import go, simple_flow
from tests.test_journeys import publish
from tests.test_stop_and_goal import record


async def inbox(api: httpx.AsyncClient, profile: str) -> list[str]:
    return [m["body"] for m in (await api.get(f"/v1/profiles/{profile}/inbox")).json()["messages"]]


async def flow(api: httpx.AsyncClient, flow_id: str = "simple") -> dict[str, Any]:
    response = await api.get(f"/v1/flows/{flow_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 409, response.text
    assert message in response.json()["message"], response.json()


async def test_two_versions_in_flight_keep_theirs_and_are_counted_per_version(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, simple_flow("from version 1"))
    [old] = await go(api, "e-1", "ada")
    await publish(api, simple_flow("from version 2"))
    [new] = await go(api, "e-2", "bob")
    [bea] = await go(api, "e-3", "bea")

    shown = await flow(api)
    assert (shown["status"], shown["current_version"], shown["in_flight"]) == ("running", 2, 3)
    listed = (await api.get("/v1/flows/simple/versions")).json()
    assert [(v["version"], v["current"], v["journeys"], v["in_flight"]) for v in listed["versions"]] == [
        (1, False, 1, 1),
        (2, True, 2, 2),
    ]
    assert all(v["published_at"] for v in listed["versions"])
    assert (listed["status"], listed["journeys"], listed["in_flight"]) == ("running", 3, 3)

    for journey_id in (old, new, bea):
        await finish(temporal, journey_id)
    assert await inbox(api, "ada") == ["from version 1"]
    assert await inbox(api, "bob") == ["from version 2"]
    listed = (await api.get("/v1/flows/simple/versions")).json()
    assert [(v["journeys"], v["in_flight"]) for v in listed["versions"]] == [(1, 0), (2, 0)]
    assert (listed["journeys"], listed["in_flight"]) == (3, 0)
    assert (await api.get("/v1/flows/nope/versions")).status_code == 404


async def test_draining_refuses_new_entries_while_journeys_in_flight_finish(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store
) -> None:
    await publish(api, simple_flow("still sent"))
    [in_flight] = await go(api, "e-1", "ada")
    await publish(api, caller_flow(flow="simple", failed_step=True, next={"failed": "sorry"}))

    drained = await api.post("/v1/flows/simple/drain")
    assert drained.status_code == 200 and drained.json()["status"] == "draining"
    assert ((await flow(api))["status"], (await flow(api))["in_flight"]) == ("draining", 1)
    # No entry by event, by the API, or by another flow's add_to_flow (its failed branch).
    assert await go(api, "e-2", "bob") == []
    await refused(
        await api.post("/v1/flows/simple/journeys", json={"profile_id": "bob"}),
        "flow 'simple' is draining: it takes no new entries",
    )
    caller = await run_caller(api, temporal, profile="cy")
    assert (caller.path[0].branch, caller.path[0].error) == (
        "failed",
        "flow 'simple' is draining, not running",
    )
    assert await inbox(api, "cy") == ["sorry"]
    await refused(await api.post("/v1/flows/simple/drain"), "flow 'simple' is draining already")

    # The journey in flight goes on to its end.
    state = await finish(temporal, in_flight)
    assert (state.status, state.exit_reason) == ("completed", "completed")
    assert await inbox(api, "ada") == ["still sent"]
    assert (await record(store, in_flight))["status"] == "completed"
    assert ((await flow(api))["status"], (await flow(api))["in_flight"]) == ("draining", 0)
    assert [j["profile_id"] for j in (await api.get("/v1/journeys?flow=simple")).json()["journeys"]] == [
        "ada"
    ]

    # Publishing runs it again.
    resumed = await api.post("/v1/flows/simple/publish")
    assert resumed.json() == {"id": "simple", "status": "running", "version": 2}
    [again] = await go(api, "e-3", "bob")
    await finish(temporal, again)


async def test_stop_stops_every_journey_of_every_version_with_the_reason(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store
) -> None:
    await publish(api, simple_flow("v1"))
    [first] = await go(api, "e-1", "ada")
    await publish(api, simple_flow("v2"))
    [second] = await go(api, "e-2", "bob")
    await api.post("/v1/flows/simple/drain")  # stopping a draining flow is allowed too

    stopped = await api.post("/v1/flows/simple/stop")
    assert stopped.json() == {"id": "simple", "status": "stopped", "journeys_stopped": 2}
    for journey_id in (first, second):
        state = await finish(temporal, journey_id)
        assert (state.status, state.exit_reason) == ("stopped", "flow stopped")
        row = await record(store, journey_id)
        assert (row["status"], row["exit_reason"], row["last_step"]) == ("stopped", "flow stopped", "wait")
    assert await inbox(api, "ada") == [] and await inbox(api, "bob") == []
    assert ((await flow(api))["status"], (await flow(api))["in_flight"]) == ("stopped", 0)
    assert await go(api, "e-3", "cy") == []
    await refused(await api.post("/v1/flows/simple/stop"), "flow 'simple' is stopped already")
    await refused(await api.post("/v1/flows/simple/drain"), "publish it to run it again")

    # Publishing a stopped flow runs it again, on the new version.
    assert (await api.post("/v1/flows/simple/publish")).json()["version"] == 3
    assert (await flow(api))["status"] == "running"
    [back] = await go(api, "e-4", "cy")
    await finish(temporal, back)
    assert await inbox(api, "cy") == ["v2"]


async def test_a_draft_can_be_neither_drained_nor_stopped(api: httpx.AsyncClient) -> None:
    assert (await api.put("/v1/flows/simple", json=simple_flow())).status_code == 200
    assert (await flow(api))["status"] == "draft"
    await refused(await api.post("/v1/flows/simple/drain"), "flow 'simple' is a draft: publish it first")
    await refused(await api.post("/v1/flows/simple/stop"), "flow 'simple' is a draft: publish it first")
    await refused(await api.post("/v1/flows/simple/journeys", json={"profile_id": "ada"}), "is draft")
    assert (await api.post("/v1/flows/nope/stop")).status_code == 404
    assert (await api.post("/v1/flows/nope/drain")).status_code == 404


async def test_a_flow_is_finished_once_end_at_passed_and_nobody_is_in_flight(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, simple_flow("v1", end_at=(utcnow() + timedelta(days=3)).isoformat()))
    [in_flight] = await go(api, "e-1", "ada")
    # The new version's entries ended a minute ago: the journey of version 1 is still in flight.
    await publish(api, simple_flow("v2", end_at=(utcnow() - timedelta(minutes=1)).isoformat()))
    assert ((await flow(api))["status"], (await flow(api))["in_flight"]) == ("draining", 1)
    assert await go(api, "e-2", "bob") == []
    await refused(
        await api.post("/v1/flows/simple/journeys", json={"profile_id": "bob"}), "took entries until"
    )
    await refused(await api.post("/v1/flows/simple/drain"), "draining already")

    await finish(temporal, in_flight)
    assert await inbox(api, "ada") == ["v1"]
    shown = await flow(api)
    assert (shown["status"], shown["in_flight"]) == ("finished", 0)
    [listed] = (await api.get("/v1/flows")).json()["flows"]
    assert (listed["id"], listed["status"]) == ("simple", "finished")
    await refused(await api.post("/v1/flows/simple/stop"), "flow 'simple' is finished")
    await refused(await api.post("/v1/flows/simple/drain"), "publish a version with a later end_at")

    await publish(api, simple_flow("v3"))
    assert (await flow(api))["status"] == "running"
    [back] = await go(api, "e-3", "bob")
    await finish(temporal, back)
    assert await inbox(api, "bob") == ["v3"]
