"""Templates in journeys: what they see (profile, event, vars, flow, journey), and what happens
when they fail. Issue 3: "A template or expression error is caught at validation where possible and otherwise
sends the journey down a defined path with the error recorded, never a stuck workflow."

Each template here parses (validation lets it through) and fails only on the journey's data:
``divided_by`` a variable that is 0. The step records the error at once (no day of retries of a
template that cannot get better) and the journey goes on to its next step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from flowline.flow.document import FlowDocument
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.journey import JourneyState, PathEntry
from tests.conftest import finish
from tests.servers import HttpSink
from tests.test_journeys import publish

FAILS = "{{ 10 | divided_by: vars.zero }}"  # valid Liquid; 'zero' is 0 when the journey runs


def failing_flow(step: dict[str, Any]) -> dict[str, Any]:
    """``step`` (with a template that fails at run time), then a message the journey must reach."""
    return {
        "id": "fails",
        "name": "Fails",
        "trigger": {"type": "flow"},
        "settings": {"variables": {"zero": {"type": "number", "default": 0}}},
        "steps": [
            {"id": "bad", **step},
            {"id": "after", "type": "send", "channel": "in_app", "content": {"body": "went on"}},
        ],
    }


async def run(api: httpx.AsyncClient, temporal: WorkflowEnvironment, step: dict[str, Any]) -> JourneyState:
    document = failing_flow(step)
    parse_flow(document)  # not a fault at validation: only the data makes it fail
    await publish(api, document)
    started = await api.post("/v1/flows/fails/journeys", json={"profile_id": "ada"})
    assert started.status_code == 201, started.text
    return await finish(temporal, started.json()["journey_id"])


def failed_at_once(state: JourneyState) -> PathEntry:
    """The failing step's entry, after checking that the journey went on and ended well."""
    assert state.status == "completed", state
    assert [p.step for p in state.path] == ["bad", "after"]
    assert state.path[1].branch == "sent"
    bad = state.path[0]
    assert bad.error is not None and "divided_by: can't divide by 0" in bad.error, bad
    assert bad.left_at is not None and bad.left_at - bad.entered_at < timedelta(minutes=1)
    return bad


async def inbox(api: httpx.AsyncClient) -> list[str]:
    return [m["body"] for m in (await api.get("/v1/profiles/ada/inbox")).json()["messages"]]


async def test_templates_see_profile_event_vars_flow_and_journey(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    body = (
        "{{ profile.first_name }}|{{ event.plan }}|{{ event.name }}|{{ vars.zero | plus: 1 }}|"
        "{{ flow.id }}/{{ flow.name }}/{{ flow.version }}|{{ journey.id }}"
    )
    document = failing_flow({"type": "send", "channel": "in_app", "content": {"body": body}})
    document["trigger"] = {"type": "event", "event": "signed_up"}
    await publish(api, document)
    await api.put("/v1/profiles/ada", json={"attributes": {"first_name": "Ada"}})
    event = {"id": "s-1", "profile_id": "ada", "name": "signed_up", "properties": {"plan": "pro"}}
    [journey_id] = (await api.post("/v1/events", json=event)).json()["journeys"]
    state = await finish(temporal, journey_id)
    assert state.path[0].branch == "sent", state.path
    assert sorted(await inbox(api)) == [f"Ada|pro|signed_up|1|fails/Fails/1|{journey_id}", "went on"]


async def test_a_webhook_whose_data_fails_to_render_goes_on_with_the_error(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    state = await run(api, temporal, {"type": "webhook", "url": f"{sink.url}/hook", "data": {"n": FAILS}})
    failed_at_once(state)
    assert sink.on("/hook") == []  # nothing half-rendered was sent


async def test_a_message_whose_body_fails_to_render_is_not_sent_and_the_journey_goes_on(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    body = {"type": "send", "channel": "in_app", "content": {"body": f"you have {FAILS}"}}
    bad = failed_at_once(await run(api, temporal, body))
    assert bad.branch != "sent"
    assert await inbox(api) == ["went on"]


async def test_a_message_whose_data_fails_to_render_is_not_sent_and_the_journey_goes_on(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    data = {"type": "send", "channel": "in_app", "content": {"body": "hi", "data": {"n": FAILS}}}
    bad = failed_at_once(await run(api, temporal, data))
    assert bad.branch != "sent"
    assert await inbox(api) == ["went on"]


async def test_a_call_whose_body_fails_to_render_takes_its_error_branch(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, sink: HttpSink
) -> None:
    call = {
        "type": "call_api",
        "method": "POST",
        "url": f"{sink.url}/x",
        "body": {"json": {"n": f"n={FAILS}"}},
    }
    bad = failed_at_once(await run(api, temporal, call | {"next": {"error": "after"}}))
    assert bad.branch == "error"
    assert sink.on("/x") == []


UNKNOWN = "{{ profile.name | shout }}"  # no filter 'shout': known without running the journey


def faults(step: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(failing_flow(step))
    return {f.path: f.message for f in caught.value.faults}


@pytest.mark.parametrize(
    ("step", "path", "message"),
    [
        ({"type": "send", "channel": "in_app", "content": {"body": UNKNOWN}}, "content.body", ""),
        (
            {"type": "send", "channel": "in_app", "content": {"body": "hi", "data": {"a": {"b": UNKNOWN}}}},
            "content.data.a",
            "b: ",
        ),
        (
            {"type": "webhook", "url": "http://127.0.0.1:1/hook", "data": {"n": [1, UNKNOWN]}},
            "data.n",
            "[1]: ",
        ),
        (
            {
                "type": "call_api",
                "method": "POST",
                "url": "http://127.0.0.1:1/x",
                "body": {"json": {"n": UNKNOWN}},
            },
            "body.json",
            "",
        ),
        ({"type": "update_profile", "set": {"a": {"template": UNKNOWN}}}, "set.a.template", ""),
        ({"type": "add_to_flow", "flow": "other", "variables": {"a": UNKNOWN}}, "variables.a", ""),
    ],
)
def test_an_unknown_filter_is_a_fault_at_validation_with_its_path(
    step: dict[str, Any], path: str, message: str
) -> None:
    assert faults({"id": "bad", **step}) == {
        f"$.steps[0].{path}": f"{message}not a valid template: unknown filter 'shout'"
    }


def test_a_flow_saved_before_the_filter_rule_still_decodes() -> None:
    """Journeys in flight carry their flow in their input: decoding it (no validation context)
    must not fail on a filter the rule would now refuse; the step fails when it runs instead."""
    webhook = {"id": "bad", "type": "webhook", "url": "http://127.0.0.1:1/hook", "data": {"n": UNKNOWN}}
    decoded = FlowDocument.model_validate(failing_flow(webhook))
    assert decoded.steps[0].data == {"n": UNKNOWN}  # type: ignore[union-attr]
