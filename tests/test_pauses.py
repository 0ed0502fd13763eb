"""Pauses that read a wall clock, on the time-skipping server, in the person's time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from temporalio.testing import WorkflowEnvironment

from tests.conftest import finish
from tests.flows import send_then_exit_flow
from tests.test_journeys import publish, signed_up


def paused(pause: dict[str, Any]) -> dict[str, Any]:
    return send_then_exit_flow(first={"id": "wait", "type": "pause", **pause})


async def waited(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, profile: str
) -> tuple[datetime, datetime]:
    [journey_id] = await signed_up(api, f"evt-{profile}", profile=profile)
    await finish(temporal, journey_id)
    detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
    wait = detail["path"][0]
    assert wait["step"] == "wait" and detail["status"] == "completed"
    left = datetime.fromisoformat(wait["left_at"])
    return datetime.fromisoformat(wait["entered_at"]), left.replace(microsecond=0)


async def test_for_then_until_a_time_of_day_in_the_profiles_zone(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, paused({"for": "1d", "until_time": "09:00"}))
    await api.put("/v1/profiles/ada", json={"attributes": {"timezone": "Asia/Tokyo"}})
    entered, left = await waited(api, temporal, "ada")
    assert left.astimezone(ZoneInfo("Asia/Tokyo")).time() == time(9, 0)
    assert timedelta(days=1) <= left - entered < timedelta(days=2)


async def test_without_a_zone_of_its_own_a_person_takes_the_workspaces(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    assert (await api.put("/v1/workspace", json={"timezone": "America/Sao_Paulo"})).status_code == 200
    assert (await api.get("/v1/workspace")).json() == {"timezone": "America/Sao_Paulo"}
    await publish(api, paused({"for": "1h", "until_time": "07:30"}))
    await api.put("/v1/profiles/tokyo", json={"attributes": {"timezone": "Asia/Tokyo"}})
    _entered, left = await waited(api, temporal, "nozone")
    assert left.astimezone(ZoneInfo("America/Sao_Paulo")).time() == time(7, 30)
    _entered, left = await waited(api, temporal, "tokyo")  # the person's own zone comes first
    assert left.astimezone(ZoneInfo("Asia/Tokyo")).time() == time(7, 30)
    bad = await api.put("/v1/workspace", json={"timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and bad.json()["faults"][0]["path"] == "$.timezone"


async def test_without_a_zone_utc_is_used(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, paused({"for": "1h", "until_time": "07:30"}))
    _entered, left = await waited(api, temporal, "nozone")
    assert left.astimezone(ZoneInfo("UTC")).time() == time(7, 30)


async def test_until_a_weekday_and_time_in_a_given_zone(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(
        api, paused({"until": {"weekday": "monday", "time": "13:00"}, "timezone": "America/New_York"})
    )
    await api.put(
        "/v1/profiles/grace", json={"attributes": {"timezone": "Asia/Tokyo"}}
    )  # the step's zone wins
    entered, left = await waited(api, temporal, "grace")
    local = left.astimezone(ZoneInfo("America/New_York"))
    assert (local.weekday(), local.time()) == (0, time(13, 0))
    assert left - entered <= timedelta(days=7, hours=1)


async def test_until_an_exact_date_time(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    target = (await temporal.get_current_time()) + timedelta(days=40)
    await publish(api, paused({"until": target.replace(microsecond=0).isoformat()}))
    _entered, left = await waited(api, temporal, "exact")
    assert abs(left - target.replace(microsecond=0)) < timedelta(seconds=1)


async def test_an_exact_date_time_in_the_past_does_not_wait(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, paused({"until": "2020-01-01T00:00:00+00:00"}))
    entered, left = await waited(api, temporal, "past")
    assert left - entered < timedelta(seconds=1)


async def test_waits_of_years_end_on_time(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    """The longest pause (5 years, 1830d) ends 1830 days later to the second; so does a two-year
    wait_for_event timeout (Feb 29 of 2028 falls inside both)."""
    await publish(api, paused({"for": "1830d"}))
    entered, left = await waited(api, temporal, "five-years")
    assert timedelta(days=1830) <= left - entered.replace(microsecond=0) < timedelta(days=1830, seconds=2)

    event_wait = {"id": "wait", "type": "wait_for_event", "conditions": [{"event": "x"}], "timeout": "104w"}
    doc = send_then_exit_flow("later", first=event_wait)
    doc["id"] = "later"
    await publish(api, doc)
    response = await api.post("/v1/events", json={"id": "l-1", "profile_id": "ada", "name": "later"})
    [journey_id] = response.json()["journeys"]
    state = await finish(temporal, journey_id)
    wait = state.path[0]
    assert wait.branch == "timeout" and wait.left_at is not None
    assert timedelta(weeks=104) <= wait.left_at - wait.entered_at < timedelta(weeks=104, seconds=1)
    assert state.path[-1].step == "bye"
