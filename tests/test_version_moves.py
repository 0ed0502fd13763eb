"""Publishing with move_journeys: journeys waiting at a step the new version has move to it; the
others stay on their version and record why (workflows/interpreter/moves.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from flowline.store.database import Store
from tests.conftest import finish
from tests.servers import HttpSink, Reply
from tests.test_flow_settings import go
from tests.test_journeys import publish
from tests.test_stop_and_goal import record
from tests.test_wait_for_event import inbox, send, start, wait_flow
from worker import running_worker


def hooked_flow(sink: HttpSink, hook: str, *, wait: str = "wait", pause: str = "2d") -> dict[str, Any]:
    """A pause (step ``wait``), then a webhook to the sink's path ``hook``, then the exit."""
    return {
        "id": "moving",
        "name": "Moving",
        "trigger": {"type": "event", "event": "go"},
        "steps": [
            {"id": wait, "type": "pause", "for": pause},
            {
                "id": "hook",
                "type": "webhook",
                "url": f"{sink.url}{hook}",
                "data": {"who": "{{ profile.id }}"},
            },
            {"id": "done", "type": "exit"},
        ],
    }


async def publish_moving(api: httpx.AsyncClient, doc: dict[str, Any]) -> dict[str, Any]:
    assert (await api.put(f"/v1/flows/{doc['id']}", json=doc)).status_code == 200
    published = await api.post(f"/v1/flows/{doc['id']}/publish", json={"move_journeys": True})
    assert published.status_code == 200, published.text
    body: dict[str, Any] = published.json()
    return body


async def moved_in_store(store: Store, journey_id: str) -> None:
    """Wait (real time, briefly) for the new run to record the move."""
    for _ in range(200):
        if (await record(store, journey_id))["version"] == 2:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the move was not recorded")


async def at_steps(api: httpx.AsyncClient) -> dict[int, dict[str, int]]:
    """Per version of the flow "moving": the journeys at each step now (steps with none left out)."""
    stats = (await api.get("/v1/flows/moving/stats")).json()
    return {
        v["version"]: {s["id"]: s["at_step"] for s in v["steps"] if s["at_step"]} for v in stats["versions"]
    }


async def test_a_paused_journey_moves_to_the_new_version_and_follows_it(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, sink: HttpSink
) -> None:
    await publish(api, hooked_flow(sink, "/v1", pause="2d"))
    [journey_id] = await go(api, "e-1", "ada")
    await temporal.client.get_workflow_handle(journey_id).query("state")  # it waits at "wait"
    # Version 2 pauses three days at "wait", then calls another URL.
    published = await publish_moving(api, hooked_flow(sink, "/v2", pause="3d"))
    assert published == {"id": "moving", "status": "running", "version": 2, "journeys_asked_to_move": 1}

    await moved_in_store(store, journey_id)
    # While it waits at version 2's "wait", the stats show it there, not at version 1's.
    assert await at_steps(api) == {1: {}, 2: {"wait": 1}}

    state = await finish(temporal, journey_id)
    assert (state.status, state.exit_reason) == ("completed", "exit_step")
    assert await at_steps(api) == {1: {}, 2: {}}
    versions = {v["version"]: v for v in (await api.get("/v1/flows/moving/stats")).json()["versions"]}
    assert {s["id"]: s["entered"] for s in versions[2]["steps"]} == {"wait": 1, "hook": 1, "done": 1}
    assert {s["id"]: s["entered"] for s in versions[1]["steps"]} == {"wait": 0, "hook": 0, "done": 0}
    assert [r.json() for r in sink.on("/v2")] and sink.on("/v1") == []
    assert [(p.step, p.branch) for p in state.path] == [
        ("wait", "next"),
        ("hook", "sent"),
        ("done", "exit"),
    ]
    # The new pause counts from entering the step: three days in all, not two, nor two plus three.
    wait = state.path[0]
    assert wait.left_at is not None and timedelta(days=3) <= wait.left_at - wait.entered_at < timedelta(
        days=3, hours=1
    )
    [move] = state.moves
    assert (move.moved, move.version, move.from_version, move.step, move.reason) == (True, 2, 1, "wait", None)
    assert state.runs == 2
    assert (await record(store, journey_id))["version"] == 2
    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    assert detail["version"] == 2
    versions = (await api.get("/v1/flows/moving/versions")).json()["versions"]
    assert [(v["version"], v["journeys"]) for v in versions] == [(1, 0), (2, 1)]


async def test_a_journey_at_a_step_the_new_version_lacks_stays_on_its_version(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, sink: HttpSink
) -> None:
    await publish(api, hooked_flow(sink, "/v1"))
    [journey_id] = await go(api, "e-1", "ada")
    await temporal.client.get_workflow_handle(journey_id).query("state")
    published = await publish_moving(api, hooked_flow(sink, "/v2", wait="hold"))
    assert published["journeys_asked_to_move"] == 1

    state = await finish(temporal, journey_id)
    assert len(sink.on("/v1")) == 1 and sink.on("/v2") == []
    [move] = state.moves
    assert (move.moved, move.version, move.step) == (False, 2, "wait")
    assert move.reason == "version 2 has no step 'wait'"
    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    assert [(m["moved"], m["reason"]) for m in detail["moves"]] == [(False, "version 2 has no step 'wait'")]
    assert state.runs == 1
    assert (await record(store, journey_id))["version"] == 1


async def test_without_move_journeys_nobody_moves(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, sink: HttpSink
) -> None:
    await publish(api, hooked_flow(sink, "/v1"))
    [journey_id] = await go(api, "e-1", "ada")
    await temporal.client.get_workflow_handle(journey_id).query("state")
    doc = hooked_flow(sink, "/v2")
    assert (await api.put("/v1/flows/moving", json=doc)).status_code == 200
    published = await api.post("/v1/flows/moving/publish")
    assert published.json() == {"id": "moving", "status": "running", "version": 2}

    state = await finish(temporal, journey_id)
    assert len(sink.on("/v1")) == 1 and sink.on("/v2") == []
    assert state.moves == [] and state.runs == 1
    assert (await record(store, journey_id))["version"] == 1


async def test_a_journey_that_is_not_waiting_stays_and_says_why(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, sink: HttpSink
) -> None:
    """The move comes while the journey's webhook is on its way (the sink answers slowly)."""
    sink.replies["/slow"] = Reply(status=200, delay=3)
    await publish(api, hooked_flow(sink, "/slow", pause="1h"))
    [journey_id] = await go(api, "e-1", "ada")
    async with temporal.time_skipping_unlocked():  # type: ignore[attr-defined]
        for _ in range(200):  # past the pause, until the webhook is on its way
            if sink.on("/slow"):
                break
            await asyncio.sleep(0.02)
    published = await publish_moving(api, hooked_flow(sink, "/v2"))
    assert published["journeys_asked_to_move"] == 1

    state = await finish(temporal, journey_id)
    [move] = state.moves
    assert (move.moved, move.step) == (False, "hook")
    assert move.reason == "not waiting: the journey was running step 'hook'"
    assert len(sink.on("/slow")) == 1 and sink.on("/v2") == []
    assert (await record(store, journey_id))["version"] == 1


async def test_a_moved_wait_for_event_keeps_the_events_it_heard(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store
) -> None:
    twice = {"conditions": [{"event": "view", "count": {"op": ">=", "value": 2}}], "timeout": "1d"}
    await publish(api, wait_flow(twice))
    journey_id, _ = await start(api, temporal)
    await send(api, {"id": "v-1", "name": "view"})
    v2 = wait_flow({**twice, "timeout": "2d"})
    v2["steps"][1]["content"]["body"] = "moved"
    assert (await publish_moving(api, v2))["journeys_asked_to_move"] == 1
    await moved_in_store(store, journey_id)
    await send(api, {"id": "v-2", "name": "view"})  # the second view: the wait on version 2 ends
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path][:2] == [("wait", "happened"), ("yes", "sent")]
    assert await inbox(api) == ["moved"]
    assert [m.moved for m in state.moves] == [True]


async def test_a_move_signalled_before_the_journeys_first_workflow_task_is_taken(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, store: Store, sink: HttpSink, task_queue: str
) -> None:
    """Published with move_journeys right after a journey started, before any worker ran it: the
    move signal reaches the run with its start, in its first workflow task. The run takes it once
    its walk waits at "wait" (PATCHES.early_signals; before, the move was dropped unrecorded)."""
    await publish(api, hooked_flow(sink, "/v1", pause="2d"))
    [journey_id] = await go(api, "e-1", "ada")
    published = await publish_moving(api, hooked_flow(sink, "/v2", pause="3d"))
    assert published["journeys_asked_to_move"] == 1
    async with running_worker(temporal.client, store, task_queue, allow_private_outbound=True):
        await moved_in_store(store, journey_id)
        state = await finish(temporal, journey_id)
    [move] = state.moves
    assert (move.moved, move.version, move.from_version, move.step) == (True, 2, 1, "wait")
    assert [r.json() for r in sink.on("/v2")] and sink.on("/v1") == []
