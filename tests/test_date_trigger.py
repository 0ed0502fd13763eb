"""Date triggers: the moments a date attribute names (pure), the hourly scan against SQLite and
PostgreSQL with a fixed run time, and a journey that starts at its exact moment (time-skipping)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from activities.entries import EntryActivities
from flowline.entry_runs import EntryRunRequest
from flowline.flow.date_moments import candidate_prefixes, occurrences
from flowline.flow.triggers import DateTrigger
from flowline.flow.validation import parse_flow
from flowline.journey import journey_id
from flowline.store import flows
from flowline.store.database import Store
from flowline.store.tables import journeys
from launch.routing import JourneyLauncher
from tests.conftest import Tenant, _terminate_leftovers, finish
from tests.servers import start_time_skipping
from worker import running_worker


@pytest_asyncio.fixture(scope="module")
async def own_temporal() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of this module's own: the delayed starts these tests make (months
    ahead) must not linger in the session's server, whose other tests skip time over them."""
    env = await start_time_skipping()
    yield env
    await env.shutdown()


@pytest_asyncio.fixture
async def own_worker(own_temporal: WorkflowEnvironment, store: Store, task_queue: str) -> AsyncIterator[None]:
    async with running_worker(
        own_temporal.client, store, task_queue, webhook_timeout=5, allow_private_outbound=True
    ):
        yield
    # Delayed starts left waiting would fire into a task queue nobody polls.
    await _terminate_leftovers(own_temporal, store)


BERLIN, LONDON, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("Europe/London"), ZoneInfo("America/New_York")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def trigger(**fields: Any) -> DateTrigger:
    return DateTrigger.model_validate({"type": "date", "attribute": "birthday", **fields})


def moments(t: DateTrigger, value: str, tz: ZoneInfo, start: str, end: str) -> list[tuple[str, str]]:
    return [(d.isoformat(), m.isoformat()) for d, m in occurrences(t, value, tz, utc(start), utc(end))]


def test_a_wall_time_skipped_by_spring_forward_happens_right_after_the_jump() -> None:
    # 28 March 2027, Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    found = moments(trigger(at="02:30"), "2027-03-28", BERLIN, "2027-03-27T00:00", "2027-03-29T00:00")
    assert found == [("2027-03-28", "2027-03-28T01:00:00+00:00")]


def test_a_wall_time_repeated_by_fall_back_happens_the_first_time() -> None:
    # 31 October 2027, Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    found = moments(trigger(at="02:30"), "2027-10-31", BERLIN, "2027-10-30T00:00", "2027-11-01T00:00")
    assert found == [("2027-10-31", "2027-10-31T00:30:00+00:00")]


def test_before_on_and_after_shift_the_day_and_keep_the_wall_time() -> None:
    window = ("2027-06-01T00:00", "2027-07-01T00:00")
    assert moments(trigger(at="09:00"), "2027-06-15", NEW_YORK, *window) == [
        ("2027-06-15", "2027-06-15T13:00:00+00:00")
    ]
    assert moments(trigger(when="before", days=3, at="09:00"), "2027-06-15", NEW_YORK, *window) == [
        ("2027-06-12", "2027-06-12T13:00:00+00:00")
    ]
    assert moments(trigger(when="after", days=20, at="09:00"), "2027-06-05", NEW_YORK, *window) == [
        ("2027-06-25", "2027-06-25T13:00:00+00:00")
    ]
    # Across a DST change the wall time stays: 3 days before 16 March 2027 is 13 March (EST).
    assert moments(
        trigger(when="before", days=3, at="09:00"), "2027-03-16", NEW_YORK, "2027-03-01", "2027-04-01"
    ) == [("2027-03-13", "2027-03-13T14:00:00+00:00")]
    # Outside the window, or another year without every_year: nothing.
    assert moments(trigger(at="09:00"), "2027-07-01", NEW_YORK, *window) == []
    assert moments(trigger(at="09:00"), "1990-06-15", NEW_YORK, *window) == []


def test_every_year_and_29_february() -> None:
    yearly = trigger(every_year=True, at="08:00")
    assert moments(yearly, "1990-06-15", LONDON, "2027-06-01T00:00", "2027-07-01T00:00") == [
        ("2027-06-15", "2027-06-15T07:00:00+00:00")
    ]
    # Born on 29 February: 28 February in other years, the 29th in leap years.
    assert moments(yearly, "1992-02-29", LONDON, "2027-02-27T00:00", "2027-03-02T00:00") == [
        ("2027-02-28", "2027-02-28T08:00:00+00:00")
    ]
    assert moments(yearly, "1992-02-29", LONDON, "2028-02-27T00:00", "2028-03-02T00:00") == [
        ("2028-02-29", "2028-02-29T08:00:00+00:00")
    ]
    # A week before an early-January birthday falls in the year before.
    before = trigger(every_year=True, when="before", days=7, at="08:00")
    assert moments(before, "1985-01-03", LONDON, "2026-12-20T00:00", "2027-01-05T00:00") == [
        ("2026-12-27", "2026-12-27T08:00:00+00:00")
    ]
    # A date-time attribute: its date in the zone (23:30 in New York is the next day in UTC).
    assert moments(yearly, "1990-06-15T23:30:00-04:00", NEW_YORK, "2027-06-01T00:00", "2027-07-01T00:00") == [
        ("2027-06-15", "2027-06-15T12:00:00+00:00")
    ]
    with pytest.raises(ValueError):
        moments(yearly, "soon", LONDON, "2027-06-01T00:00", "2027-07-01T00:00")


def test_candidate_prefixes_cover_the_window_in_every_zone() -> None:
    prefixes, position = candidate_prefixes(
        trigger(when="before", days=3), utc("2027-06-10T00:00"), utc("2027-06-10T02:00")
    )
    assert position == 1 and {"2027-06-11", "2027-06-13", "2027-06-15"} <= prefixes
    yearly, position = candidate_prefixes(
        trigger(every_year=True), utc("2027-02-28T00:00"), utc("2027-02-28T01:00")
    )
    assert position == 6 and {"02-28", "02-29"} <= yearly


# ---------------------------------------------------------------- the scan, against both databases

RUN = utc("2027-03-28T01:00")  # Berlin's and London's spring-forward night


def date_flow(flow_id: str = "birthday", **trigger_fields: Any) -> dict[str, Any]:
    return {
        "id": flow_id,
        "name": "Birthday",
        "trigger": {"type": "date", "attribute": "birthday", **trigger_fields},
        "settings": {"reentry": "concurrent"},
        "steps": [
            {"id": "note", "type": "update_variable", "set": {"seen": "1"}},
            {"id": "done", "type": "exit"},
        ],
    }


async def publish(store: Store, tenant: Tenant, doc: dict[str, Any]) -> None:
    """Published in the store: the time-skipping server has no Schedules for the API to create
    (tests/test_audience_schedules.py covers them on a dev server)."""
    document = parse_flow(doc)
    async with store.begin() as conn:
        await flows.save_draft(store, conn, tenant.id, document)
        await flows.publish(conn, tenant.id, document.id, document)


async def profile(api: httpx.AsyncClient, profile_id: str, **attributes: Any) -> None:
    response = await api.put(f"/v1/profiles/{profile_id}", json={"attributes": attributes})
    assert response.status_code == 200, response.text


async def started(store: Store, tenant: Tenant, flow_id: str) -> dict[str, datetime]:
    async with store.connect() as conn:
        rows = await conn.execute(
            select(journeys.c.profile_id, journeys.c.started_at).where(
                journeys.c.workspace_id == tenant.id, journeys.c.flow_id == flow_id
            )
        )
        return {r.profile_id: r.started_at for r in rows}


async def test_the_scan_finds_the_moments_of_its_window_once(
    api: httpx.AsyncClient,
    own_temporal: WorkflowEnvironment,
    own_worker: None,
    store: Store,
    tenant: Tenant,
    task_queue: str,
) -> None:
    await publish(
        store, tenant, date_flow(at="02:30", profile={"attribute": "plan", "op": "is", "value": "pro"})
    )
    # 02:30 Berlin does not exist that night: 03:00 CEST, 01:00 UTC, the run's own time.
    await profile(api, "berlin", birthday="2027-03-28", timezone="Europe/Berlin", plan="pro")
    # 02:30 BST (London jumps at 01:00 UTC), 01:30 UTC: ahead, within the run's window.
    await profile(api, "london", birthday="2027-03-28", timezone="Europe/London", plan="pro")
    # 02:30 EDT is 06:30 UTC: past the window (the next runs find it).
    await profile(api, "new-york", birthday="2027-03-28", timezone="America/New_York", plan="pro")
    # No zone of its own nor the workspace's: UTC, 02:30 is past the window (the next run's).
    await profile(api, "utc", birthday="2027-03-28", plan="pro")
    # Yesterday's date at 02:30 Auckland (+13) is 13:30 UTC the day before: before the window.
    await profile(api, "auckland", birthday="2027-03-27", timezone="Pacific/Auckland", plan="pro")
    await profile(api, "free", birthday="2027-03-28", timezone="Europe/Berlin", plan="free")
    await profile(api, "garbled", birthday="someday", timezone="Europe/Berlin", plan="pro")
    await profile(api, "none", plan="pro")

    launcher = JourneyLauncher(store, own_temporal.client, task_queue)
    activities = EntryActivities(store, launcher)
    request = EntryRunRequest(workspace_id=tenant.id, flow_id="birthday", scheduled_at=RUN)
    now = RUN + timedelta(minutes=5)  # the run began a little late
    result = await activities.run(request, now=now)
    assert (result.skipped, result.started) == (None, 2)
    found = await started(store, tenant, "birthday")
    # Berlin's moment passed (started now); London's is ahead (starts then).
    assert set(found) == {"berlin", "london"}
    assert found["london"] == utc("2027-03-28T01:30")
    # Each (profile, date) enters once: the next run's window overlaps this one's; it finds Berlin's
    # and London's journeys started and starts one more, UTC's (02:30 UTC).
    again = EntryRunRequest(workspace_id=tenant.id, flow_id="birthday", scheduled_at=RUN + timedelta(hours=1))
    assert (await activities.run(again, now=now + timedelta(hours=1))).started == 3
    assert await started(store, tenant, "birthday") == {**found, "utc": utc("2027-03-28T02:30")}
    # Five hours later New York's moment (06:30 UTC) comes into the window.
    later = EntryRunRequest(workspace_id=tenant.id, flow_id="birthday", scheduled_at=RUN + timedelta(hours=5))
    assert (await activities.run(later, now=now + timedelta(hours=5))).started == 1
    assert set(await started(store, tenant, "birthday")) == {"berlin", "london", "utc", "new-york"}


async def test_every_year_scan_with_the_workspace_zone_and_29_february(
    api: httpx.AsyncClient,
    own_temporal: WorkflowEnvironment,
    own_worker: None,
    store: Store,
    tenant: Tenant,
    task_queue: str,
) -> None:
    assert (await api.put("/v1/workspace", json={"timezone": "Europe/London"})).status_code == 200
    await publish(store, tenant, date_flow("anniversary", every_year=True, when="before", days=1, at="09:00"))
    await profile(api, "leap", birthday="1992-02-29")  # 28 Feb in 2027: the day before is 27 Feb
    await profile(api, "plain", birthday="1980-02-28")  # the day before is 27 Feb too
    await profile(api, "other", birthday="1980-03-28")
    launcher = JourneyLauncher(store, own_temporal.client, task_queue)
    run = utc("2027-02-27T09:00")
    request = EntryRunRequest(workspace_id=tenant.id, flow_id="anniversary", scheduled_at=run)
    assert (await EntryActivities(store, launcher).run(request, now=run)).started == 2
    found = await started(store, tenant, "anniversary")
    assert set(found) == {"leap", "plain"}
    jid = journey_id(tenant.id, "anniversary", "leap", f"date:{date(2027, 2, 27).isoformat()}")
    async with store.connect() as conn:
        assert await conn.scalar(select(journeys.c.id).where(journeys.c.id == jid)) == jid


async def test_a_journey_starts_at_its_exact_moment(
    api: httpx.AsyncClient,
    own_temporal: WorkflowEnvironment,
    own_worker: None,
    store: Store,
    tenant: Tenant,
    task_queue: str,
) -> None:
    # The server's clock runs ahead of the wall clock once other tests skipped time: the start
    # delay is computed on the wall clock, so the journey starts at the moment plus that skew.
    skew = await own_temporal.get_current_time() - datetime.now(UTC)
    moment = (datetime.now(UTC) + timedelta(minutes=90)).replace(second=0, microsecond=0)
    local = moment.astimezone(NEW_YORK)
    await publish(store, tenant, date_flow("soon", at=local.strftime("%H:%M"), timezone="America/New_York"))
    await profile(api, "ada", birthday=local.date().isoformat())
    # A run half an hour before the moment (its window reaches past the next run).
    request = EntryRunRequest(
        workspace_id=tenant.id, flow_id="soon", scheduled_at=moment - timedelta(minutes=30)
    )
    # The activity's code, run here (EntryRunWorkflow runs it on the dev server in
    # tests/test_audience_schedules.py); the journey's delayed start is the server's.
    launcher = JourneyLauncher(store, own_temporal.client, task_queue)
    result = await EntryActivities(store, launcher).run(request)
    assert result.started == 1
    assert set(await started(store, tenant, "soon")) == {"ada"}
    jid = journey_id(tenant.id, "soon", "ada", f"date:{local.date().isoformat()}")
    state = await finish(own_temporal, jid)
    assert state.status == "completed" and state.entered_at is not None
    assert abs(state.entered_at - (moment + skew)) < timedelta(seconds=5)
