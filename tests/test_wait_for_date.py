"""wait_for_date: a date in a profile attribute, before / on / after it, every year."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from flowline.flow.steps import WaitForDateStep
from flowline.flow.timing import date_wait_end
from flowline.flow.validation import FlowInvalid, parse_flow
from tests.conftest import finish
from tests.flows import send_then_exit_flow
from tests.test_journeys import publish, signed_up

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def step(**fields: Any) -> WaitForDateStep:
    return WaitForDateStep.model_validate({"id": "w", "type": "wait_for_date", "attribute": "d", **fields})


@pytest.mark.parametrize(
    ("fields", "value", "zone", "expected"),
    [
        ({"is_in": "4h"}, "2026-11-23T10:00:00+00:00", "UTC", utc(2026, 11, 23, 6, 0)),
        ({"was": "1d"}, "2026-11-23", "Europe/Berlin", utc(2026, 11, 23, 23, 0)),
        (
            {"is_today": True, "at": "09:00"},
            "2026-12-01",
            "Asia/Tokyo",
            utc(2026, 12, 1, 0, 0),
        ),
        ({"is_tomorrow": True}, "2026-11-30", "America/New_York", utc(2026, 11, 29, 5, 0)),
        ({"was_yesterday": True}, "2026-11-30", "UTC", utc(2026, 12, 1, 0, 0)),
        # Already past: go on at once.
        ({"is_today": True}, "2020-01-01", "UTC", NOW),
        # Every year: the next birthday; 29 February is celebrated on the 28th in other years.
        (
            {"is_today": True, "every_year": True, "at": "09:00"},
            "1990-03-15",
            "Europe/Berlin",
            utc(2027, 3, 15, 8, 0),
        ),
        (
            {"is_today": True, "every_year": True},
            "1992-02-29",
            "UTC",
            utc(2027, 2, 28, 0, 0),
        ),
        (
            {"is_tomorrow": True, "every_year": True},
            "1980-11-23",
            "UTC",
            utc(2027, 11, 22, 0, 0),
        ),
    ],
)
def test_when_the_wait_ends(fields: dict[str, Any], value: str, zone: str, expected: datetime) -> None:
    assert date_wait_end(step(**fields), value, NOW, ZoneInfo(zone)) == expected


def test_is_tomorrow_across_a_dst_change_is_a_calendar_day() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # clocks go back on 2026-10-25
    end = date_wait_end(
        step(is_tomorrow=True, at="10:00"), "2026-10-26", datetime(2026, 10, 1, tzinfo=UTC), berlin
    )
    assert end.astimezone(berlin).replace(tzinfo=None) == datetime(2026, 10, 25, 10, 0)


def test_a_value_that_is_no_date_is_an_error() -> None:
    with pytest.raises(ValueError):
        date_wait_end(step(is_today=True), "next tuesday", NOW, ZoneInfo("UTC"))


def test_exactly_one_condition() -> None:
    flow = send_then_exit_flow()
    flow["steps"].insert(
        0, {"id": "w", "type": "wait_for_date", "attribute": "d", "is_today": True, "was": "1d"}
    )
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(flow)
    assert caught.value.faults[0].path == "$.steps[0]"
    assert "exactly one" in caught.value.faults[0].message


def dated(**fields: Any) -> dict[str, Any]:
    return send_then_exit_flow(first={"id": "wait", "type": "wait_for_date", **fields})


async def test_a_birthday_every_year_in_the_profiles_zone(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, dated(attribute="birthday", is_today=True, every_year=True, at="09:00"))
    now = await temporal.get_current_time()
    birthday = (now + timedelta(days=100)).date().replace(year=1990).isoformat()
    await api.put("/v1/profiles/ada", json={"attributes": {"birthday": birthday, "timezone": "Asia/Tokyo"}})
    [journey_id] = await signed_up(api, "evt-1")
    state = await finish(temporal, journey_id)
    left = state.path[0].left_at
    assert left is not None
    local = left.astimezone(ZoneInfo("Asia/Tokyo"))
    assert (local.month, local.day, local.time().replace(microsecond=0)) == (
        int(birthday[5:7]),
        int(birthday[8:10]),
        time(9, 0),
    )
    assert state.path[-1].step == "bye"


async def test_a_missing_date_is_recorded_and_the_journey_goes_on(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, dated(attribute="renewal", was="1d"))
    [journey_id] = await signed_up(api, "evt-1", profile="nodate")
    state = await finish(temporal, journey_id)
    assert state.path[0].error == "profile attribute 'renewal' holds no date"
    assert [p.step for p in state.path] == ["wait", "hi", "bye"]
