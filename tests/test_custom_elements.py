"""custom steps end to end on the time-skipping Temporal server, against real HTTP servers on
127.0.0.1: every outcome of a declarative element, the example plugin's code element, the SSRF
guard, and element versions for journeys in flight."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from flowline.channels.webhook import IDEMPOTENCY_HEADER
from flowline.journey import JourneyState
from flowline.store.database import Store
from tests.conftest import finish
from tests.servers import HttpSink, Reply, closed_port_url
from tests.test_journeys import publish
from worker import running_worker

OUTCOMES = ("registered", "already", "rejected", "fallback", "error")


def register_element(url: str, **changes: Any) -> dict[str, Any]:
    """A declarative element: POST <url>/register, outcomes by status class and by the answer."""
    element: dict[str, Any] = {
        "description": "Registers a person for a webinar",
        "inputs": {
            "email": {"type": "string", "required": True},
            "seats": {"type": "integer", "default": 1},
            "tags": {"type": "array", "default": ["lead"]},
        },
        "request": {
            "method": "POST",
            "url": url,
            "headers": {"Authorization": "Bearer element-secret", "X-Person": "{{ profile.id }}"},
            "body": {
                "json": {
                    "email": "{{ params.email }}",
                    "seats": "{{ params.seats }}",
                    "tags": "{{ params.tags }}",
                    "plan": "{{ event.plan }}",
                }
            },
        },
        "save": {"registration": "$.id", "codes": "$.codes[*]"},
        "timeout": "2s",
        "outcomes": [
            {"name": "already", "when": "response.status == 409 && response.body.code == 'taken'"},
            {"name": "registered", "status": "2xx"},
            {"name": "rejected", "status": "4xx", "when": "params.seats > 1"},
        ],
    }
    return element | changes


def custom_flow(
    step: dict[str, Any], flow_id: str = "customs", before: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Event ``flow_id`` -> ``before`` -> the custom step -> an exit step per outcome."""
    nxt = step.pop("next", {name: f"on_{name}" for name in OUTCOMES})
    targets = sorted(set(nxt.values()) if isinstance(nxt, dict) else {nxt})
    custom = {"id": "custom", "type": "custom", **step, "next": nxt}
    steps = [*(before or []), custom, *({"id": target, "type": "exit"} for target in targets)]
    return {"id": flow_id, "name": "Customs", "trigger": {"type": "event", "event": flow_id}, "steps": steps}


async def put_element(api: httpx.AsyncClient, element_id: str, element: dict[str, Any]) -> dict[str, Any]:
    response = await api.put(f"/v1/elements/{element_id}", json=element)
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = response.json()
    return shown


async def go(
    api: httpx.AsyncClient, flow_id: str = "customs", profile: str = "ada", **properties: Any
) -> str:
    event = {
        "id": f"evt-{profile}-{time.time_ns()}",
        "profile_id": profile,
        "name": flow_id,
        "properties": properties,
    }
    response = await api.post("/v1/events", json=event)
    assert response.status_code == 202, response.text
    [journey_id] = response.json()["journeys"]
    return str(journey_id)


def took(state: JourneyState) -> tuple[str | None, str]:
    """(the outcome the custom step took, the step it led to)."""
    [custom] = [entry for entry in state.path if entry.step == "custom"]
    return custom.branch, state.path[state.path.index(custom) + 1].step


async def run_once(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    flow_id: str,
    step: dict[str, Any],
    **properties: Any,
) -> JourneyState:
    await publish(api, custom_flow(step, flow_id))
    return await finish(temporal, await go(api, flow_id, **properties))


async def test_a_declarative_element_takes_each_of_its_outcomes(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    await put_element(api, "register", register_element(f"{sink.url}/register"))
    await put_element(api, "late", register_element(f"{sink.url}/late"))
    await put_element(api, "nowhere", register_element(f"{closed_port_url()}/x"))
    step = {"element": "register", "params": {"email": "{{ profile.id }}@example.com"}}

    # 2xx: saves by the single-value rule; the body rendered with params, defaults and the scope.
    sink.replies["/register"] = Reply(201, {"id": "R-1", "codes": ["a", "b"]})
    state = await run_once(api, temporal, "ok", step, plan="pro")
    assert took(state) == ("registered", "on_registered")
    assert state.variables == {"registration": "R-1", "codes": None}
    assert "codes: $.codes[*] matched 2 values" in (state.path[0].error or "")
    [received] = sink.on("/register")
    assert received.json() == {"email": "ada@example.com", "seats": 1, "tags": ["lead"], "plan": "pro"}
    assert received.headers["Authorization"] == "Bearer element-secret"
    assert received.headers["X-Person"] == "ada" and len(received.headers[IDEMPOTENCY_HEADER]) == 32

    # A condition on the answer, listed before the status class that would match too.
    sink.replies["/register"] = Reply(409, {"code": "taken", "id": "R-0"})
    state = await run_once(api, temporal, "taken", step)
    assert took(state) == ("already", "on_already")
    assert state.variables["registration"] == "R-0"

    # 4xx with a condition over params: only two seats or more are "rejected"; else fallback.
    sink.replies["/register"] = Reply(422, {"error": "full"})
    two = {"element": "register", "params": {"email": "x@example.com", "seats": 2}}
    state = await run_once(api, temporal, "rejected", two)
    assert took(state) == ("rejected", "on_rejected")
    assert state.path[0].error is not None and "answered 422" in state.path[0].error
    state = await run_once(api, temporal, "fallback4xx", dict(step))
    assert took(state) == ("fallback", "on_fallback")
    assert len([r for r in sink.on("/register") if r.json()["email"] == "x@example.com"]) == 1  # no retry

    # 5xx: three attempts with one idempotency key, then the outcomes decide (none holds: fallback).
    before = len(sink.on("/register"))
    sink.replies["/register"] = Reply(503, b"down")
    state = await run_once(api, temporal, "down", dict(step))
    assert took(state) == ("fallback", "on_fallback")
    attempts = sink.on("/register")[before:]
    assert len(attempts) == 3 and len({a.headers[IDEMPOTENCY_HEADER] for a in attempts}) == 1
    assert "answered 503: down" in (state.path[0].error or "")
    assert state.variables == {"registration": None, "codes": None}

    # No usable answer: a refused connection, and a timeout; every save null.
    state = await run_once(api, temporal, "refused", {"element": "nowhere", "params": {"email": "a@b.c"}})
    assert took(state) == ("error", "on_error") and "ConnectError" in (state.path[0].error or "")
    assert state.variables == {"registration": None, "codes": None}
    sink.replies["/late"] = Reply(200, {"id": "never"}, delay=3)
    state = await run_once(api, temporal, "slow", {"element": "late", "params": {"email": "a@b.c"}})
    assert took(state) == ("error", "on_error") and "timed out after 2s" in (state.path[0].error or "")

    # A templated param whose rendered value is not of its input's type: error, nothing sent.
    sent = len(sink.received)
    bad = {"element": "register", "params": {"email": "a@b.c", "seats": "{{ event.seats }}"}}
    state = await run_once(api, temporal, "badparam", bad, seats="two")
    assert took(state) == ("error", "on_error")
    assert "params.seats: expected an integer" in (state.path[0].error or "")
    assert len(sink.received) == sent


async def test_one_target_for_every_outcome_and_unnamed_outcomes_go_on(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    await put_element(api, "register", register_element(f"{sink.url}/register"))
    sink.replies["/register"] = Reply(200, {"id": "R-9"})
    state = await run_once(
        api, temporal, "one", {"element": "register", "params": {"email": "a@b.c"}, "next": "done"}
    )
    assert took(state) == ("registered", "done")
    # An outcome `next` does not name continues with the step listed next.
    flow = custom_flow(
        {"element": "register", "params": {"email": "a@b.c"}, "next": {"error": "failed"}}, "partial"
    )
    flow["steps"].insert(1, {"id": "listed_next", "type": "exit"})
    await publish(api, flow)
    state = await finish(temporal, await go(api, "partial"))
    assert took(state) == ("registered", "listed_next")


async def test_the_example_plugin_element_runs_in_a_journey(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    listed = (await api.get("/v1/elements")).json()["elements"]
    [score] = [e for e in listed if e["id"] == "example.score"]
    assert score["kind"] == "code" and score["outcomes"] == ["hot", "cold", "unknown", "error"]
    assert score["input_schema"]["required"] == ["service", "email"]

    step = {
        "element": "example.score",
        "params": {"service": sink.url, "email": "{{ profile.id }}@example.com", "threshold": 70},
        "next": {"hot": "on_hot", "cold": "on_cold", "unknown": "on_unknown", "error": "on_error"},
    }
    sink.replies["/scores"] = Reply(200, {"score": 81})
    state = await run_once(api, temporal, "hot", dict(step))
    assert took(state) == ("hot", "on_hot") and state.variables == {"score": 81}
    [asked] = sink.on("/scores")
    assert asked.method == "GET" and asked.path == "/scores?email=ada%40example.com"

    sink.replies["/scores"] = Reply(200, {"score": 12})
    state = await run_once(api, temporal, "cold", dict(step))
    assert took(state) == ("cold", "on_cold") and state.variables == {"score": 12}

    sink.replies["/scores"] = Reply(404, {})
    state = await run_once(api, temporal, "unknown", dict(step))
    assert took(state) == ("unknown", "on_unknown") and state.variables == {"score": None}

    # The function raises on a 500: retried like a call, then the error outcome.
    before = len(sink.on("/scores"))
    sink.replies["/scores"] = Reply(500, {})
    state = await run_once(api, temporal, "broken", dict(step))
    assert took(state) == ("error", "on_error")
    assert "answered 500" in (state.path[0].error or "") and len(sink.on("/scores")) - before == 3


@pytest_asyncio.fixture
async def guarded_worker(temporal: WorkflowEnvironment, store: Store, task_queue: str) -> AsyncIterator[None]:
    """A worker whose outbound requests may reach only public addresses (production's default)."""
    async with running_worker(
        temporal.client, store, task_queue, webhook_timeout=5, allow_private_outbound=False
    ):
        yield


async def test_private_addresses_are_refused_when_not_allowed(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, guarded_worker: None, sink: HttpSink
) -> None:
    await put_element(api, "register", register_element(f"{sink.url}/register"))
    state = await run_once(api, temporal, "guarded", {"element": "register", "params": {"email": "a@b.c"}})
    assert took(state) == ("error", "on_error")
    assert "non-public address" in (state.path[0].error or "")
    # So is a code element's request through Flowline's helper.
    step = {
        "element": "example.score",
        "params": {"service": sink.url, "email": "a@b.c"},
        "next": {"error": "on_error"},
    }
    state = await run_once(api, temporal, "guarded_code", step)
    assert took(state) == ("error", "on_error") and "non-public address" in (state.path[0].error or "")
    assert sink.received == []


async def test_a_journey_in_flight_keeps_the_element_version_it_started_with(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    first = await put_element(api, "register", register_element(f"{sink.url}/v1"))
    pause = [{"id": "wait", "type": "pause", "for": "1h"}]
    await publish(api, custom_flow({"element": "register", "params": {"email": "a@b.c"}}, "versions", pause))
    early = await go(api, "versions", "early")
    second = await put_element(api, "register", register_element(f"{sink.url}/v2"))
    assert (first["version"], second["version"]) == (1, 2)
    late = await go(api, "versions", "late")

    assert took(await finish(temporal, early))[0] == "registered"
    assert took(await finish(temporal, late))[0] == "registered"
    assert [r.headers["X-Person"] for r in sink.on("/v1")] == ["early"]
    assert [r.headers["X-Person"] for r in sink.on("/v2")] == ["late"]


async def test_a_rate_holds_runs_of_the_step(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    await put_element(api, "register", register_element(f"{sink.url}/register"))
    step = {"element": "register", "params": {"email": "a@b.c"}, "rate": {"max": 1, "per": "day"}}
    await publish(api, custom_flow(step, "rated"))
    journeys = [await go(api, "rated", profile) for profile in ("ann", "bob")]
    states = [await finish(temporal, journey) for journey in journeys]
    assert all(took(state)[0] == "registered" for state in states)
    runs = sorted((state.path[0] for state in states), key=lambda entry: entry.left_at or entry.entered_at)
    # One run per day: the second journey's run waited for the first slot of the next (UTC) day.
    assert runs[0].left_at is not None and runs[1].left_at is not None
    assert runs[0].left_at.date() == runs[0].entered_at.date()
    assert runs[1].left_at.date() > runs[1].entered_at.date()
