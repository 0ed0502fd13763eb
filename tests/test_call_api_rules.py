"""call_api without a journey: validation faults, JSONPath's single-value rule, body templates,
delivery windows, and the shared rate counter on each database."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flowline.channels.http_call import render_json
from flowline.flow.steps import CallApiStep
from flowline.flow.timing import window_opens
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.flow.windows import CallWindow
from flowline.jsonpath import select_one
from flowline.store import call_rates
from flowline.store.database import Store
from tests.conftest import Tenant


def call_flow(**fields: Any) -> dict[str, Any]:
    step = {"id": "call", "type": "call_api", "method": "POST", "url": "https://api.example.com/x", **fields}
    return {"id": "calls", "name": "Calls", "trigger": {"type": "flow"}, "steps": [step]}


def faults(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(call_flow(**fields))
    return [(f.path, f.message) for f in caught.value.faults]


def test_a_valid_call_keeps_its_shape() -> None:
    call = {
        "id": "call",
        "type": "call_api",
        "method": "PUT",
        "url": "https://api.example.com/users/{{ profile.id }}",
        "headers": {"Authorization": "Bearer {{ vars.token }}"},
        "body": {"json": {"n": "{{ vars.n }}", "list": [1, True, None]}},
        "save": {"id": "$.data.id"},
        "save_headers": {"request": "X-Request-Id"},
        "window": {"days": ["monday"], "from": "09:00", "to": "17:00"},
        "rate": {"max": 10, "per": "minute"},
        "next": {"success": "wait", "error": "done"},
    }
    document = call_flow() | {
        "steps": [
            call,
            {"id": "wait", "type": "pause", "for": "1d", "next": "call"},
            {"id": "done", "type": "exit"},
        ]
    }
    flow = parse_flow(document)
    step = flow.steps[0]
    assert isinstance(step, CallApiStep) and step.timeout == timedelta(seconds=10)
    assert step.wait_for_response and step.saved_variables == ["id", "request"]
    assert parse_flow(flow.dump()) == flow
    assert flow.dump()["steps"][0]["body"] == {"json": {"n": "{{ vars.n }}", "list": [1, True, None]}}


def test_bad_jsonpath_method_and_timeout_are_faults_with_paths() -> None:
    assert faults(save={"x": "$.items["})[0][0] == "$.steps[0].save.x"
    assert faults(save={"x": "items"}) == [
        ("$.steps[0].save.x", "a JSONPath starts at the root: '$' or '$.field'")
    ]
    assert faults(method="FETCH")[0][0] == "$.steps[0].method"
    assert faults(timeout="2m") == [("$.steps[0].timeout", "a call's timeout is from 1s to 60s")]
    assert faults(timeout="0s")[0][0] == "$.steps[0].timeout"


def test_other_faults() -> None:
    assert faults(url="ftp://example.com")[0][0] == "$.steps[0].url"
    assert faults(url="https://x.example/{{ profile.id")[0][0] == "$.steps[0].url"
    assert faults(headers={"X-A": "{% if %}"})[0][0] == '$.steps[0].headers["X-A"]'
    assert faults(body={"json": {"a": ["{{ vars.x | }}"]}})[0][0].startswith("$.steps[0].body")
    assert faults(body={"form": {"a": "{{"}})[0][0].startswith("$.steps[0].body.form.a")
    assert faults(method="GET", body={"json": {}}) == [("$.steps[0]", "a GET request takes no body")]
    assert faults(body={"json": {"a": 1}, "form": {"b": 2}})[0][0] == "$.steps[0].body"
    assert faults(headers={"Content-Length": "1"})[0][0] == '$.steps[0].headers["Content-Length"]'
    assert faults(wait_for_response=False, save={"x": "$.a"})[0][0] == "$.steps[0]"
    assert faults(window={"from": "09:00", "to": "09:00"})[0][0] == "$.steps[0].window"
    assert (
        faults(window={"from": "09:00", "to": "10:00", "timezone": "Mars/Olympus"})[0][0]
        == "$.steps[0].window"
    )
    assert faults(rate={"max": 0, "per": "minute"})[0][0] == "$.steps[0].rate.max"
    assert faults(next={"success": "nowhere"}) == [
        ("$.steps[0].next.success", "no step has the id 'nowhere'")
    ]
    # A fallback is reported once, where it is written (not again for client_error, server_error).
    assert faults(next={"error": "nowhere"}) == [("$.steps[0].next.error", "no step has the id 'nowhere'")]


def test_a_path_saves_only_a_single_value() -> None:
    document = {"id": 7, "items": [{"sku": "a"}, {"sku": "b"}], "empty": None}
    assert select_one("$.id", document) == (7, None)
    assert select_one("$.items[?(@.sku == 'b')].sku", document) == ("b", None)
    assert select_one("$.empty", document) == (None, None)
    assert select_one("$.items[*].sku", document) == (None, "$.items[*].sku matched 2 values, not one")
    assert select_one("$.nothing", document) == (None, "$.nothing matched 0 values, not one")


def test_a_whole_value_template_keeps_its_json_type() -> None:
    context = {"vars": {"n": 3, "tags": ["a"]}, "profile": {"first_name": "Ada"}}
    body = {"n": "{{ vars.n }}", "tags": "{{vars.tags}}", "text": "n={{ vars.n }}", "gone": "{{ vars.x }}"}
    assert render_json([body, 1, None], context) == [
        {"n": 3, "tags": ["a"], "text": "n=3", "gone": None},
        1,
        None,
    ]
    assert render_json("{{ profile.first_name | upcase }}", context) == "ADA"


BERLIN = ZoneInfo("Europe/Berlin")


def window(**fields: Any) -> CallWindow:
    return CallWindow.model_validate(fields)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def test_windows_open_on_their_days_in_their_zone() -> None:
    office = window(days=["monday", "tuesday"], **{"from": "09:00", "to": "17:00"})
    # 2030-01-07 is a Monday.
    assert window_opens(office, at("2030-01-07T10:00"), BERLIN) == at("2030-01-07T10:00")
    assert window_opens(office, at("2030-01-07T08:00"), BERLIN) == at("2030-01-07T09:00")
    assert window_opens(office, at("2030-01-07T17:00"), BERLIN) == at("2030-01-08T09:00")
    assert window_opens(office, at("2030-01-08T18:00"), BERLIN) == at("2030-01-14T09:00")
    night = window(days=["friday"], **{"from": "22:00", "to": "02:00"})
    assert window_opens(night, at("2030-01-12T01:00"), BERLIN) == at("2030-01-12T01:00")  # Saturday 1am
    assert window_opens(night, at("2030-01-12T03:00"), BERLIN) == at("2030-01-18T22:00")
    # Across the spring-forward night the wall time still counts: 09:00 CEST is 07:00 UTC.
    opens = window_opens(office, datetime(2030, 3, 31, 12, tzinfo=UTC), BERLIN)
    assert opens.astimezone(UTC) == datetime(2030, 4, 1, 7, tzinfo=UTC)
    assert opens.astimezone(BERLIN).time() == time(9, 0)


async def test_the_rate_counter_hands_out_slots_period_by_period(store: Store, tenant: Tenant) -> None:
    start = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)

    async def reserve(when: datetime, limit: int = 2, step: str = "call") -> datetime:
        async with store.begin() as conn:
            return await call_rates.reserve(
                store,
                conn,
                workspace_id=tenant.id,
                flow_id="calls",
                step_id=step,
                period_seconds=60,
                limit=limit,
                at=when,
            )

    minute = timedelta(minutes=1)
    slots = [await reserve(start) for _ in range(5)]
    next_minute = datetime(2030, 1, 1, 12, 1, tzinfo=UTC)
    assert slots == [start, start, next_minute, next_minute, next_minute + minute]
    assert await reserve(start, step="other") == start  # each step counts on its own
    # Later, the reserved periods are past: the count starts again in the current one.
    later = start + timedelta(hours=1)
    assert [await reserve(later) for _ in range(3)] == [later, later, datetime(2030, 1, 1, 13, 1, tzinfo=UTC)]
    # Periods fill in order: a higher limit adds to the latest one, it does not reopen 13:00.
    assert await reserve(later, limit=5) == datetime(2030, 1, 1, 13, 1, tzinfo=UTC)
