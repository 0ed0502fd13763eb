"""call_api journeys against a real HTTP server on 127.0.0.1 (time-skipping Temporal server)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
from temporalio.testing import WorkflowEnvironment

from flowline.channels.webhook import IDEMPOTENCY_HEADER
from flowline.flow.base import WEEKDAYS
from flowline.journey import JourneyState, PathEntry
from tests.conftest import finish
from tests.servers import HttpSink, Reply, closed_port_url
from tests.test_journeys import publish

BRANCHES = ("success", "client_error", "server_error", "error")


def call_flow(
    call: dict[str, Any],
    nxt: dict[str, str] | None = None,
    *,
    then: list[dict[str, Any]] | None = None,
    flow_id: str = "calls",
) -> dict[str, Any]:
    """Event ``flow_id`` -> the call -> the steps ``then``, and an exit step for every other target."""
    nxt = nxt if nxt is not None else {branch: f"on_{branch}" for branch in BRANCHES}
    then = then or []
    given = {step["id"] for step in then}
    ends = [{"id": target, "type": "exit"} for target in sorted(set(nxt.values()) - given)]
    step = {"id": "call", "type": "call_api", "method": "POST", **call, "next": nxt}
    trigger = {"type": "event", "event": flow_id}
    return {"id": flow_id, "name": "Calls", "trigger": trigger, "steps": [step, *then, *ends]}


async def go(api: httpx.AsyncClient, profile: str = "ada", flow_id: str = "calls", **properties: Any) -> str:
    """Send the event that starts ``flow_id``; its journey's id."""
    event_id = f"evt-{profile}-{time.time_ns()}"
    event = {"id": event_id, "profile_id": profile, "name": flow_id, "properties": properties}
    response = await api.post("/v1/events", json=event)
    assert response.status_code == 202, response.text
    [journey_id] = response.json()["journeys"]
    return str(journey_id)


async def run(api: httpx.AsyncClient, temporal: WorkflowEnvironment, flow: dict[str, Any]) -> JourneyState:
    await publish(api, flow)
    return await finish(temporal, await go(api))


def went(state: JourneyState) -> tuple[str | None, str]:
    """(branch the call took, the step it led to)."""
    call, after = state.path[0], state.path[1]
    assert call.step == "call"
    return call.branch, after.step


async def test_success_saves_single_values_and_headers_for_later_steps(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    answer = {"order": {"id": "A-1", "total": 42.5}, "items": [{"sku": "x"}, {"sku": "y"}]}
    sink.replies["/orders"] = Reply(201, answer, headers={"X-Request-Id": "req-7"})
    call = {
        "url": f"{sink.url}/orders",
        "body": {"json": {"sku": "x"}},
        "save": {
            "order_id": "$.order.id",
            "total": "$.order.total",
            "sku": "$.items[*].sku",
            "none": "$.nope",
        },
        "save_headers": {"request": "X-Request-Id", "missing": "X-Nothing"},
    }
    body = "{{ vars.order_id }}/{{ vars.request }}"
    tell = {"id": "tell", "type": "send", "channel": "in_app", "content": {"body": body}, "next": "done"}
    flow = call_flow(call, {"success": "tell", "error": "done"}, then=[tell])
    state = await run(api, temporal, flow)

    assert went(state) == ("success", "tell")
    assert state.variables == {
        "order_id": "A-1",
        "total": 42.5,
        "sku": None,  # two values: the single-value rule saves null
        "none": None,
        "request": "req-7",
        "missing": None,
    }
    error = state.path[0].error or ""
    assert "sku: $.items[*].sku matched 2 values" in error and "no X-Nothing header" in error
    [received] = sink.on("/orders")
    assert received.method == "POST" and received.json() == {"sku": "x"}
    assert received.headers["Content-Type"] == "application/json"
    assert len(received.headers[IDEMPOTENCY_HEADER]) == 32
    inbox = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert [m["body"] for m in inbox] == ["A-1/req-7"]


async def test_a_client_error_is_not_retried(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    sink.replies["/users"] = Reply(404, {"error": "no such user"})
    state = await run(api, temporal, call_flow({"method": "GET", "url": f"{sink.url}/users?key=secret"}))
    assert went(state) == ("client_error", "on_client_error")
    assert len(sink.on("/users")) == 1
    error = state.path[0].error or ""
    assert error.startswith(f"GET {sink.url}/users answered 404") and "no such user" in error
    assert "secret" not in error  # the query string may carry keys


async def test_a_server_error_is_retried_with_the_same_key_then_branches(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    sink.replies["/flaky"] = Reply(503, b"down for maintenance")
    state = await run(api, temporal, call_flow({"url": f"{sink.url}/flaky", "save": {"x": "$.x"}}))
    assert went(state) == ("server_error", "on_server_error")
    attempts = sink.on("/flaky")
    assert len(attempts) == 3
    assert len({a.headers[IDEMPOTENCY_HEADER] for a in attempts}) == 1
    assert "answered 503: down for maintenance" in (state.path[0].error or "")
    assert state.variables == {"x": None}


async def test_no_answer_goes_down_error_and_sets_saves_to_null(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    refused = call_flow({"url": f"{closed_port_url()}/x", "save_headers": {"h": "X-Id"}})
    state = await run(api, temporal, refused)
    assert went(state) == ("error", "on_error")
    assert "ConnectError" in (state.path[0].error or "") and state.variables == {"h": None}

    sink.replies["/slow"] = Reply(200, {"ok": True}, delay=3)
    await publish(api, call_flow({"url": f"{sink.url}/slow", "timeout": "1s"}, flow_id="slow"))
    state = await finish(temporal, await go(api, "grace", "slow"))
    assert went(state) == ("error", "on_error")
    assert "timed out after 1s" in (state.path[0].error or "")
    assert len(sink.on("/slow")) == 3


async def test_a_missing_branch_falls_back_to_error(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    sink.replies["/gone"] = Reply(410)
    sink.replies["/redirect"] = Reply(302, headers={"Location": "/elsewhere"})
    flow = call_flow({"url": f"{sink.url}/gone"}, {"success": "fine", "error": "failed"})
    assert went(await run(api, temporal, flow)) == ("client_error", "failed")
    # A redirect is not followed: no usable answer.
    await publish(api, call_flow({"url": f"{sink.url}/redirect"}, {"error": "failed"}, flow_id="redirect"))
    assert went(await finish(temporal, await go(api, "grace", "redirect"))) == ("error", "failed")
    assert sink.on("/elsewhere") == []


async def test_templates_in_url_headers_and_json_body(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    compute = {"id": "compute", "type": "update_variable", "set": {"n": "event.properties.qty + 1"}}
    call = {
        "method": "PATCH",
        "url": sink.url + "/users/{{ profile.id }}?plan={{ event.plan | url_encode }}",
        "headers": {"X-Name": "{{ profile.first_name }}", "Accept": "text/plain"},
        "body": {
            "json": {"n": "{{ vars.n }}", "text": "n={{ vars.n }}", "who": ["{{ profile.first_name }}"]}
        },
    }
    flow = call_flow(call)
    flow["steps"].insert(0, compute)
    await publish(api, flow)
    await api.put("/v1/profiles/ada", json={"attributes": {"first_name": "Ada"}})
    state = await finish(temporal, await go(api, "ada", qty=2, plan="pro plus"))
    assert state.path[1].branch == "success"
    [received] = sink.on("/users/ada")
    assert received.method == "PATCH" and received.path == "/users/ada?plan=pro+plus"
    assert received.headers["X-Name"] == "Ada" and received.headers["Accept"] == "text/plain"
    assert received.json() == {"n": 3, "text": "n=3", "who": ["Ada"]}


async def test_a_form_body_is_url_encoded(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    call = {"url": f"{sink.url}/form", "body": {"form": {"who": "{{ profile.id }}", "n": 2, "vip": True}}}
    state = await run(api, temporal, call_flow(call))
    assert went(state) == ("success", "on_success")
    [received] = sink.on("/form")
    assert received.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(received.body.decode()) == {"who": ["ada"], "n": ["2"], "vip": ["true"]}


async def test_without_waiting_for_the_response_the_journey_goes_on_once_sent(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    sink.replies["/fire"] = Reply(500, delay=4)
    began = time.monotonic()
    state = await run(api, temporal, call_flow({"url": f"{sink.url}/fire", "wait_for_response": False}))
    assert time.monotonic() - began < 3.5  # not held up by the four-second answer
    assert went(state) == ("success", "on_success")
    # The request is out; the server's thread records it once it has read it (later under load).
    for _ in range(100):
        if sink.on("/fire"):
            break
        await asyncio.sleep(0.05)
    assert len(sink.on("/fire")) == 1


async def waiting_for(api: httpx.AsyncClient, journey_id: str, prefix: str) -> dict[str, Any]:
    """The journey's detail once it waits for something starting with ``prefix``."""
    for _ in range(100):
        detail: dict[str, Any] = (await api.get(f"/v1/journeys/{journey_id}")).json()
        if (detail.get("waiting_for") or "").startswith(prefix):
            return detail
        await asyncio.sleep(0.05)
    raise AssertionError(f"journey never waited for {prefix!r}: {detail}")


async def test_a_call_waits_for_its_window_in_the_windows_zone(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    today = (await temporal.get_current_time()).astimezone(tokyo).date()
    day = today + timedelta(days=2)  # neither today nor yesterday: the journey starts outside
    window = {
        "days": [WEEKDAYS[day.weekday()]],
        "from": "09:00",
        "to": "10:00",
        "timezone": "Asia/Tokyo",
    }
    await publish(api, call_flow({"url": f"{sink.url}/window", "window": window}))
    # The step's zone wins over the person's (as for pauses and date waits).
    await api.put("/v1/profiles/ada", json={"attributes": {"timezone": "America/New_York"}})
    journey_id = await go(api)

    await waiting_for(api, journey_id, "call window opens")
    assert sink.on("/window") == []  # nothing is sent before the window opens
    state = await finish(temporal, journey_id)
    assert went(state) == ("success", "on_success")
    assert len(sink.on("/window")) == 1
    call: PathEntry = state.path[0]
    opens = datetime(day.year, day.month, day.day, 9, 0, tzinfo=tokyo)
    assert call.entered_at < opens - timedelta(days=1)
    assert call.left_at is not None and opens <= call.left_at < opens + timedelta(minutes=1)


async def test_a_rate_spreads_journeys_over_periods_and_loses_none(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    await publish(api, call_flow({"url": f"{sink.url}/rated", "rate": {"max": 2, "per": "minute"}}))
    journeys = [await go(api, f"p{i}") for i in range(5)]
    await waiting_for(api, journeys[-1], "call rate")
    handles = [temporal.client.get_workflow_handle(j, result_type=JourneyState) for j in journeys]
    async with temporal.time_skipping_unlocked():  # type: ignore[attr-defined]  # once for all five
        states = await asyncio.gather(*(handle.result() for handle in handles))
    assert all(went(state) == ("success", "on_success") for state in states)
    assert len(sink.on("/rated")) == 5
    called = [state.path[0].left_at for state in states]
    per_minute = Counter(moment.replace(second=0, microsecond=0) for moment in called if moment)
    assert max(per_minute.values()) == 2 and len(per_minute) == 3
