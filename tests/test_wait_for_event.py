"""wait_for_event: events routed to journeys in flight, on the time-skipping server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from flowline.flow.event_waits import completing_event
from flowline.flow.steps import WaitForEventStep
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.journey import EVENT_SIGNAL, HeardEvent, JourneyState, TriggerEvent
from tests.conftest import finish
from tests.test_journeys import publish

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def wait_flow(
    wait: dict[str, Any], *, before: list[dict[str, Any]] | None = None, **settings: Any
) -> dict[str, Any]:
    """An API-started flow: [before...], the wait, then 'yes' (happened) or 'no' (timeout) messages."""
    return {
        "id": "waiting",
        "name": "Waiting",
        "trigger": {"type": "flow"},
        "settings": settings,
        "steps": [
            *(before or []),
            {"id": "wait", "type": "wait_for_event", "next": {"happened": "yes", "timeout": "no"}, **wait},
            {
                "id": "yes",
                "type": "send",
                "channel": "in_app",
                "content": {"body": "yes {{ vars.total }}"},
                "next": "done",
            },
            {"id": "no", "type": "send", "channel": "in_app", "content": {"body": "no"}},
            {"id": "done", "type": "exit"},
        ],
    }


async def start(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, profile: str = "ada"
) -> tuple[str, JourneyState]:
    """Start a journey through the API; returns its id and its state after its first workflow task."""
    started = await api.post("/v1/flows/waiting/journeys", json={"profile_id": profile})
    assert started.status_code == 201, started.text
    journey_id: str = started.json()["journey_id"]
    state = await temporal.client.get_workflow_handle(journey_id).query("state", result_type=JourneyState)
    return journey_id, state


async def send(api: httpx.AsyncClient, *events: dict[str, Any], profile: str = "ada") -> None:
    batch = [{"profile_id": profile, **event} for event in events]
    response = await api.post("/v1/events", json=batch)
    assert response.status_code == 202, response.text


async def inbox(api: httpx.AsyncClient, profile: str = "ada") -> list[str]:
    return [m["body"] for m in (await api.get(f"/v1/profiles/{profile}/inbox")).json()["messages"]]


async def test_the_event_ends_the_wait_and_saves_its_properties(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    wait = {
        "conditions": [
            {"event": "checkout", "where": [{"property": "total", "op": "greater_than", "value": 0}]}
        ],
        "timeout": "1d",
        "save": {"total": "total", "coupon": "coupon.code"},
    }
    await publish(api, wait_flow(wait))
    journey_id, state = await start(api, temporal)
    assert state.current_step == "wait" and state.waiting_for is not None
    assert state.waiting_for.startswith("event: checkout")
    await send(
        api,
        {"id": "e-0", "name": "checkout", "properties": {"total": 0}},  # filtered out
        {"id": "e-other", "name": "page_view"},  # not listened to
        {"id": "e-1", "name": "checkout", "properties": {"total": 30}},
    )
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path] == [
        ("wait", "happened"),
        ("yes", "sent"),
        ("done", "exit"),
    ]
    assert state.variables == {"total": 30, "coupon": None}
    assert await inbox(api) == ["yes 30"]
    # The wait ended when the event came, not at its timeout.
    assert state.path[0].left_at is not None
    assert state.path[0].left_at - state.path[0].entered_at < timedelta(hours=1)


async def test_without_the_event_the_wait_times_out(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, wait_flow({"conditions": [{"event": "checkout"}], "timeout": "3d"}))
    journey_id, _ = await start(api, temporal)
    state = await finish(temporal, journey_id)
    wait = state.path[0]
    assert (wait.step, wait.branch) == ("wait", "timeout")
    assert wait.left_at is not None and wait.left_at - wait.entered_at >= timedelta(days=3)
    assert await inbox(api) == ["no"]


async def test_counts_and_not_happened_conditions(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    wait = {
        "conditions": [
            {"event": "view", "count": {"op": ">=", "value": 3}},
            {"event": "purchase", "happened": False},
        ],
        "timeout": "2d",
    }
    await publish(api, wait_flow(wait))
    first, _ = await start(api, temporal, "ada")
    await send(api, *({"id": f"a-{i}", "name": "view"} for i in range(3)), profile="ada")
    assert [p.branch for p in (await finish(temporal, first)).path][:1] == ["happened"]

    # A purchase among the views: the not-happened condition fails, the wait times out.
    second, _ = await start(api, temporal, "bob")
    await send(
        api,
        {"id": "b-0", "name": "view"},
        {"id": "b-1", "name": "purchase"},
        {"id": "b-2", "name": "view"},
        {"id": "b-3", "name": "view"},
        profile="bob",
    )
    assert [p.branch for p in (await finish(temporal, second)).path][:1] == ["timeout"]


async def test_an_event_signalled_twice_counts_once(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(
        api,
        wait_flow({"conditions": [{"event": "view", "count": {"op": ">=", "value": 2}}], "timeout": "1d"}),
    )
    journey_id, _ = await start(api, temporal)
    handle = temporal.client.get_workflow_handle(journey_id)
    view = TriggerEvent(id="same", name="view", timestamp=T0)
    await handle.signal(EVENT_SIGNAL, view)
    await handle.signal(EVENT_SIGNAL, view)  # a router retry after a lost answer
    assert [p.branch for p in (await finish(temporal, journey_id)).path][:1] == ["timeout"]


@pytest.mark.parametrize("include", [True, False])
async def test_include_since_entry_counts_events_from_before_the_wait(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, include: bool
) -> None:
    before = [{"id": "first", "type": "pause", "for": "1h"}]
    wait = {"conditions": [{"event": "opened"}], "timeout": "1d", "include_since_entry": include}
    await publish(api, wait_flow(wait, before=before))
    journey_id, state = await start(api, temporal)
    assert state.current_step == "first" and state.entered_at is not None
    # The event happens during the pause, before the journey reaches the wait.
    at = (state.entered_at + timedelta(seconds=1)).isoformat()
    await send(api, {"id": "o-1", "name": "opened", "timestamp": at})
    state = await finish(temporal, journey_id)
    assert state.path[1].step == "wait"
    assert state.path[1].branch == ("happened" if include else "timeout")


async def test_an_indefinite_wait_ends_at_the_flows_max_duration(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(
        api, wait_flow({"conditions": [{"event": "never"}], "timeout": "indefinite"}, max_duration="30d")
    )
    journey_id, _ = await start(api, temporal)
    state = await finish(temporal, journey_id)
    assert state.exit_reason == "max_duration"
    [wait] = state.path
    assert wait.branch == "max_duration"
    assert wait.left_at is not None
    assert timedelta(days=30) <= wait.left_at - wait.entered_at < timedelta(days=30, seconds=1)
    assert await inbox(api) == []


def test_not_happened_alone_is_a_fault_with_its_path() -> None:
    wait = {"conditions": [{"event": "purchase", "happened": False}], "timeout": "1d"}
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(wait_flow(wait))
    [fault] = caught.value.faults
    assert fault.path == "$.steps[0].conditions"
    assert "'not happened'" in fault.message


def test_timeouts_out_of_range_are_faults() -> None:
    for timeout in ("0s", "3000d"):
        with pytest.raises(FlowInvalid) as caught:
            parse_flow(wait_flow({"conditions": [{"event": "x"}], "timeout": timeout}))
        assert caught.value.faults[0].path == "$.steps[0].timeout"


def test_counts_within_a_window_slide_with_the_clock() -> None:
    step = WaitForEventStep.model_validate(
        {
            "id": "w",
            "type": "wait_for_event",
            "timeout": "30d",
            "conditions": [{"event": "view", "count": {"op": ">=", "value": 3}, "within": "7d"}],
        }
    )

    def heard(*days: int) -> list[HeardEvent]:
        return [
            HeardEvent(
                event=TriggerEvent(id=f"v{d}", name="view", timestamp=T0), heard_at=T0 + timedelta(days=d)
            )
            for d in days
        ]

    assert completing_event(step, heard(0, 1, 2), T0 + timedelta(days=2)) is not None
    # Three views, but the first fell out of the 7-day window by the third.
    assert completing_event(step, heard(0, 5, 8), T0 + timedelta(days=8)) is None
    exactly = WaitForEventStep.model_validate(
        {
            "id": "w",
            "type": "wait_for_event",
            "timeout": "30d",
            "conditions": [{"event": "view", "count": {"op": "=", "value": 2}}],
        }
    )
    assert completing_event(exactly, heard(0, 1), T0 + timedelta(days=1)) is not None
    assert completing_event(exactly, heard(0, 1, 2), T0 + timedelta(days=2)) is None
