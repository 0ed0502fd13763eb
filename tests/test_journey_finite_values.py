"""Non-finite numbers a flow computes at run time (issue 12): a CEL expression overflowing to
Infinity or giving NaN, a call_api answer with ``1e400`` or ``NaN`` (Python's json reads both), a
Liquid template. None of them is ever kept: the step records the error on the path, naming the
variable or attribute, the value is stored neither in the journey's variables nor in the database,
and the journey goes on as after any failed step. Real journeys on the time-skipping server, a real
HTTP server on 127.0.0.1, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.testing import WorkflowEnvironment

from flowline.flow.graph import CONTINUE
from flowline.journey import CallApiResult, ExpressionsResult, JourneyState, PathEntry
from flowline.store import profile_changes as changes
from flowline.store.database import Store
from launch.payload_codec import data_converter
from tests.conftest import Tenant, finish
from tests.payload_keys import TEST_PAYLOAD_KEYS
from tests.servers import HttpSink, Reply
from tests.test_journeys import publish
from tests.test_profile_changes import profile, system_events

NOT_FINITE = "NaN or Infinity (not a finite number)"


def flow(step: dict[str, Any], variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """``step``, then a message the journey must still reach."""
    return {
        "id": "computes",
        "name": "Computes",
        "trigger": {"type": "flow"},
        "settings": {"variables": variables or {}},
        "steps": [
            {"id": "compute", **step},
            {"id": "after", "type": "send", "channel": "in_app", "content": {"body": "went on"}},
        ],
    }


async def run(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, document: dict[str, Any]
) -> JourneyState:
    saved = await api.put(f"/v1/flows/{document['id']}", json=document)
    assert saved.status_code == 200, saved.text
    await publish(api, document)
    assert (await api.put("/v1/profiles/ada", json={"attributes": {"plan": "free"}})).status_code in (
        200,
        201,
    )
    started = await api.post("/v1/flows/computes/journeys", json={"profile_id": "ada"})
    assert started.status_code == 201, started.text
    return await finish(temporal, started.json()["journey_id"])


def went_on(state: JourneyState) -> PathEntry:
    """The computing step's entry, after checking that the journey went on at once and ended well."""
    assert state.status == "completed", state
    assert [(p.step, p.branch) for p in state.path][1:] == [("after", "sent")], state.path
    entry = state.path[0]
    assert entry.left_at is not None and entry.left_at - entry.entered_at < timedelta(minutes=1)
    return entry


async def test_an_expression_giving_infinity_or_nan_leaves_the_variable_as_it_was(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    step = {
        "type": "update_variable",
        "set": {
            "ratio": "1.0 / 0.0",
            "undefined": "0.0 / 0.0",
            "huge": "[1.0, 1e308 * 10.0]",
            "fine": "vars.ratio + 1.0",
        },
    }
    declared = {"ratio": {"type": "number", "default": 2.5}}
    state = await run(api, temporal, flow(step, declared))
    entry = went_on(state)
    assert entry.error is not None
    errors = dict(part.split(": ", 1) for part in entry.error.split("; "))
    assert errors == {
        "ratio": f"'1.0 / 0.0' gave {NOT_FINITE}",
        "undefined": f"'0.0 / 0.0' gave {NOT_FINITE}",
        "huge": f"'[1.0, 1e308 * 10.0]' gave {NOT_FINITE} at $[1]",
    }
    # The refused ones were not set (ratio keeps its default); the finite one was.
    assert state.variables == {"ratio": 2.5, "fine": 3.5}


async def test_an_attribute_set_to_infinity_by_a_profile_step_is_not_stored(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    step = {
        "type": "update_profile",
        "set": {
            "score": {"expression": "1e308 * 10.0"},
            "ratios": {"expression": "{'a': [0.0 / 0.0]}"},
            "plan": "pro",
        },
    }
    entry = went_on(await run(api, temporal, flow(step)))
    assert entry.branch == CONTINUE
    assert entry.error is not None
    assert sorted(entry.error.split("; ")) == [
        f"ratios: \"{{'a': [0.0 / 0.0]}}\" gave {NOT_FINITE} at $.a[0]",
        f"score: '1e308 * 10.0' gave {NOT_FINITE}",
    ]
    # The finite change was made (with its event); the refused ones are nowhere.
    assert (await profile(store, tenant, "ada"))["attributes"] == {"plan": "pro"}
    [changed] = [
        e
        for e in await system_events(store, tenant, changes.PROFILE_CHANGED)
        if e["properties"]["source"] == "flow"
    ]
    assert changed["properties"]["changed"] == {"plan": {"from": "free", "to": "pro"}}


async def test_a_template_renders_text_so_an_overflow_is_stored_as_the_text_it_shows(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    """Liquid cannot make a number: ``times`` overflowing to Infinity renders the text "inf", a
    string any JSON reader takes (no number is stored, so no NaN or Infinity either)."""
    step = {"type": "update_profile", "set": {"label": {"template": "{{ vars.big | times: 10 }}"}}}
    declared = {"big": {"type": "number", "default": 1.5e308}}
    entry = went_on(await run(api, temporal, flow(step, declared)))
    assert entry.error is None
    label = (await profile(store, tenant, "ada"))["attributes"]["label"]
    # "inf" on SQLite; PostgreSQL's JSONB gives the flow's 1.5e308 back as an integer, which Liquid
    # multiplies exactly. Text either way, which the store took.
    assert label in ("inf", str(15 * 10**308)), label


async def test_a_call_answering_1e400_or_nan_saves_null_and_takes_its_error_branch(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    # Not what json.dumps writes: the raw text a server may send.
    sink.replies["/score"] = Reply(200, b'{"total": 1e400, "parts": [1, NaN], "id": "A-1", "low": -Infinity}')
    call = {
        "type": "call_api",
        "method": "GET",
        "url": f"{sink.url}/score",
        "save": {"total": "$.total", "parts": "$.parts", "id": "$.id", "low": "$.low"},
    }
    state = await run(api, temporal, flow(call))
    entry = went_on(state)
    assert entry.branch == "error"
    assert entry.error is not None
    # In the order of the stored document's keys (PostgreSQL's JSONB orders them its own way).
    assert sorted(entry.error.split("; ")) == [
        f"save low: $.low selected {NOT_FINITE}",
        f"save parts: $.parts selected {NOT_FINITE} at $.parts[1]",
        f"save total: $.total selected {NOT_FINITE}",
    ]
    assert state.variables == {"total": None, "parts": None, "id": "A-1", "low": None}
    assert len(sink.on("/score")) == 1  # a bad answer is not retried


async def test_add_to_flow_with_an_infinite_variable_starts_nothing_and_takes_failed(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    target = {
        "id": "target",
        "name": "Target",
        "trigger": {"type": "flow"},
        "steps": [{"id": "end", "type": "exit"}],
    }
    await publish(api, target)
    add = {"type": "add_to_flow", "flow": "target", "variables": {"n": {"expression": "-1e308 * 10.0"}}}
    entry = went_on(await run(api, temporal, flow(add)))
    assert entry.branch == "failed"
    assert entry.error == f"variable n: '-1e308 * 10.0' gave {NOT_FINITE}"
    assert entry.started_journey is None
    assert (await api.get("/v1/journeys", params={"flow": "target"})).json()["journeys"] == []


def test_no_nan_or_infinity_reaches_workflow_code() -> None:
    """Why the interpreter needs no check (and no patch): every value crosses into the workflow
    in a pydantic model, and pydantic writes a NaN or Infinity as null. Before the activities
    refused them, ``1.0 / 0.0`` thus set its variable to null with no error on the path."""
    converter = data_converter(TEST_PAYLOAD_KEYS).payload_converter
    results = [
        ExpressionsResult(values={"x": math.inf, "y": [math.nan]}),
        CallApiResult(branch="success", variables={"t": -math.inf}),
    ]
    expression, call = [
        converter.from_payload(payload, type(result))
        for payload, result in zip(converter.to_payloads(results), results, strict=True)
    ]
    assert expression.values == {"x": None, "y": [None]}
    assert call.variables == {"t": None}


def _strict_json(body: bytes) -> Any:
    """JSON as RFC 8259 has it: Python's json.loads would take NaN and Infinity."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


async def test_a_nan_stored_before_goes_out_as_null_in_webhooks_and_calls(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    sink: HttpSink,
    store: Store,
    tenant: Tenant,
) -> None:
    """A profile attribute SQLite still holds as NaN from before the store refused it (until the
    repair runs) reaches no receiver: the journey's activities read it as null."""
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL's JSONB never held NaN or Infinity")
    assert (await api.put("/v1/profiles/ada", json={"attributes": {"plan": "free"}})).status_code in (
        200,
        201,
    )
    async with store.begin() as conn:
        await conn.execute(
            text("UPDATE profiles SET attributes = :a WHERE workspace_id = :w AND id = 'ada'"),
            {"a": '{"plan": "free", "score": NaN, "deep": [Infinity]}', "w": tenant.id},
        )
    hook = {"type": "webhook", "url": f"{sink.url}/hook", "data": {"n": 1}}
    call = {
        "id": "call",
        "type": "call_api",
        "method": "POST",
        "url": f"{sink.url}/call",
        "body": {"json": {"score": "{{ profile.score }}", "deep": "{{ profile.deep }}"}},
    }
    document = flow(hook)
    document["steps"].insert(1, call)
    await publish(api, document)
    started = await api.post("/v1/flows/computes/journeys", json={"profile_id": "ada"})
    state = await finish(temporal, started.json()["journey_id"])
    assert [(p.step, p.branch) for p in state.path] == [
        ("compute", "sent"),
        ("call", "success"),
        ("after", "sent"),
    ]
    [sent] = sink.on("/hook")
    assert _strict_json(sent.body)["profile"] == {"id": "ada", "plan": "free", "score": None, "deep": [None]}
    [called] = sink.on("/call")
    assert _strict_json(called.body) == {"score": None, "deep": [None]}
