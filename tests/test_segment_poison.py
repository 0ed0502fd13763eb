"""One unreadable row never fails a workspace's segments (issue 12): with a bad row present,
segment PUT, members, count and the segment clock answer for every other profile and log the bad
one's id. The rows are written with plain SQL, as data from before the guards was.

SQLite: NaN / Infinity stored as bare tokens (its JSON functions call the row malformed) and a
date-time its date function cannot take. PostgreSQL cannot hold those; what could fail a statement
there was a numeric string too long for ``numeric``, now not a number on both databases."""

# Over 400 lines on purpose: each read path (PUT, members, count, clock) with its bad row.

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from temporalio.testing import WorkflowEnvironment

from activities.segment_clock import SegmentClockActivities
from flowline.conditions.evaluate import evaluate
from flowline.conditions.facts import ProfileFacts
from flowline.conditions.rules import Condition
from flowline.segment_clock import ClockResult, ClockTick
from flowline.store import entry_candidates, segment_members, segments_query
from flowline.store.database import Store, utcnow
from flowline.store.profile_facts import load_profile_facts
from flowline.store.tables import events, profiles, segments
from launch.routing import JourneyLauncher
from tests.conftest import Tenant

PRO = {"attribute": "plan", "op": "is", "value": "pro"}
BIG_ORDER = {"event": "order", "where": [{"property": "total", "op": "greater_than", "value": 5}]}
LOGGER = "flowline.store.segments_query"
# More than one chunk of the fallback (500), so it pages and halves.
PEOPLE = 1_200


def sqlite_only(store: Store) -> None:
    if store.dialect != "sqlite":
        pytest.skip("PostgreSQL's jsonb cannot hold NaN / Infinity (it refuses them on write)")


async def add_people(store: Store, workspace: str, attributes: dict[str, dict[str, Any]]) -> None:
    now = utcnow()
    rows = [
        {"workspace_id": workspace, "id": pid, "attributes": a, "tags": [], "do_not_contact": []}
        | {"created_at": now, "updated_at": now}
        for pid, a in attributes.items()
    ]
    async with store.begin() as conn:
        await conn.execute(profiles.insert(), rows)


async def add_orders(store: Store, workspace: str, totals: dict[str, Any]) -> None:
    """One ``order`` event per profile, id ``o-<profile>``."""
    now = utcnow()
    rows = [
        {"workspace_id": workspace, "id": f"o-{pid}", "profile_id": pid, "name": "order", "timestamp": now}
        | {"properties": {"total": total}, "received_at": now, "routed_at": now}
        for pid, total in totals.items()
    ]
    async with store.begin() as conn:
        await conn.execute(events.insert(), rows)


async def write_raw(store: Store, workspace: str, table: str, ids: list[str], document: str) -> None:
    """Set the JSON text of ``ids`` (profiles' attributes, events' properties) as given, past every guard."""
    column = {"profiles": "attributes", "events": "properties"}[table]
    async with store.begin() as conn:
        for row_id in ids:
            await conn.execute(
                text(f"UPDATE {table} SET {column} = :document WHERE workspace_id = :ws AND id = :id"),
                {"document": document, "ws": workspace, "id": row_id},
            )


def pros(n: int) -> dict[str, dict[str, Any]]:
    """p0000 ... : every third a pro."""
    return {f"p{i:04d}": {"plan": "pro" if i % 3 == 0 else "free"} for i in range(n)}


async def put_segment(api: httpx.AsyncClient, segment_id: str, rule: dict[str, Any]) -> None:
    response = await api.put(f"/v1/segments/{segment_id}", json={"name": segment_id, "rule": rule})
    assert response.status_code == 200, response.text


async def stored_members(store: Store, tenant: Tenant, segment_id: str) -> list[str]:
    async with store.connect() as conn:
        return sorted(await segment_members.members_of(conn, tenant.id, segment_id))


def skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and "skipped" in r.getMessage()]


async def test_a_profile_with_infinity_is_skipped_and_logged_everyone_else_answers(
    api: httpx.AsyncClient,
    store: Store,
    tenant: Tenant,
    temporal: WorkflowEnvironment,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sqlite_only(store)
    people = pros(PEOPLE)
    await add_people(store, tenant.id, people)
    # A pro whose score the old code stored as a bare token, in the middle of the second chunk.
    await write_raw(store, tenant.id, "profiles", ["p0600"], '{"plan":"pro","score":Infinity}')
    good_pros = sorted(p for p, a in people.items() if a["plan"] == "pro" and p != "p0600")
    caplog.set_level(logging.WARNING, logger=LOGGER)

    await put_segment(api, "pros", PRO)  # the baseline
    assert await stored_members(store, tenant, "pros") == good_pros
    assert any(m.startswith(f"profile p0600 of workspace {tenant.id} skipped") for m in skipped(caplog))
    assert any("malformed JSON: attributes" in m for m in skipped(caplog))

    caplog.clear()
    response = await api.get("/v1/segments/pros/members", params={"limit": 3, "offset": 199})
    assert response.status_code == 200, response.text
    assert response.json()["count"] == len(good_pros)
    assert response.json()["members"] == good_pros[199:202]  # p0597, p0603, p0606: the bad one left out
    assert any("p0600" in m for m in skipped(caplog))

    # Time passes with changed data: the clock re-evaluates, the others enter, the bad one stays out.
    await write_raw(store, tenant.id, "profiles", ["p0001", "p1199"], '{"plan":"pro"}')
    caplog.clear()
    clock = SegmentClockActivities(store, JourneyLauncher(store, temporal.client, task_queue))
    result = await clock.reevaluate_segments(ClockTick(now=utcnow(), workspace_id=tenant.id))
    assert result == ClockResult(segments=1, entered=2, exited=0)
    assert await stored_members(store, tenant, "pros") == sorted([*good_pros, "p0001", "p1199"])
    assert any("p0600" in m for m in skipped(caplog))

    # A changed rule through the API is a re-evaluation in the PUT's transaction: it answers too.
    await put_segment(api, "pros", {"any": [PRO, {"attribute": "plan", "op": "is", "value": "gold"}]})
    # The repair makes the row readable: it is then evaluated like any other.
    await write_raw(store, tenant.id, "profiles", ["p0600"], '{"plan":"pro","score":null}')
    caplog.clear()
    assert await clock.reevaluate_segments(ClockTick(now=utcnow(), workspace_id=tenant.id)) == ClockResult(
        segments=1, entered=1, exited=0
    )
    assert "p0600" in await stored_members(store, tenant, "pros")
    assert skipped(caplog) == []


async def test_an_event_with_nan_skips_its_profile_only_and_names_the_event(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite_only(store)
    await add_people(store, tenant.id, {p: {} for p in ("ada", "bob", "cy", "dee")})
    await add_orders(store, tenant.id, {"ada": 10, "bob": 1, "cy": 20, "dee": 30})
    await write_raw(store, tenant.id, "events", ["o-cy"], '{"total":NaN}')
    caplog.set_level(logging.WARNING, logger=LOGGER)
    await put_segment(api, "big", BIG_ORDER)
    assert await stored_members(store, tenant, "big") == ["ada", "dee"]
    response = await api.get("/v1/segments/big/members")
    assert response.status_code == 200, response.text
    assert (response.json()["count"], response.json()["members"]) == (2, ["ada", "dee"])
    assert any(m.startswith("profile cy ") and "malformed JSON: event o-cy" in m for m in skipped(caplog))
    assert all("profile ada " not in m for m in skipped(caplog))
    # A rule that does not read the properties never touches the bad JSON: nothing skipped.
    caplog.clear()
    await put_segment(api, "buyers", {"event": "order"})
    assert await stored_members(store, tenant, "buyers") == ["ada", "bob", "cy", "dee"]
    assert skipped(caplog) == []


async def test_a_date_beyond_year_9999_in_its_zone_is_skipped_on_sqlite_and_answered_on_postgresql(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """Valid JSON that SQLite's Python date function cannot take (23:00 on 31 December 9999 in
    Honolulu is in the year 10000 UTC); PostgreSQL's timestamps reach further."""
    far = {"renewal": "9999-12-31T23:00", "timezone": "Pacific/Honolulu"}
    await add_people(store, tenant.id, {"ada": {"renewal": "2020-01-01"}, "far": far, "bob": {}})
    caplog.set_level(logging.WARNING, logger=LOGGER)
    await put_segment(api, "lapsed", {"attribute": "renewal", "op": "before", "value": "2030-01-01"})
    assert await stored_members(store, tenant, "lapsed") == ["ada"]
    response = await api.get("/v1/segments/lapsed/members")
    assert (response.status_code, response.json()["members"]) == (200, ["ada"])
    if store.dialect == "sqlite":
        assert any(m.startswith("profile far ") and "string or blob too big" in m for m in skipped(caplog))
    else:
        assert skipped(caplog) == []


async def test_a_time_zone_name_too_long_for_a_file_reads_as_utc(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    """The zone lookup opened a file of that name: OSError, which failed SQLite's date function
    (so the row) and the in-memory evaluator; PostgreSQL already fell back to UTC."""
    attributes = {"renewal": "2020-01-01", "timezone": "Z" * 300}
    await add_people(store, tenant.id, {"ada": attributes})
    rule: dict[str, Any] = {"attribute": "renewal", "op": "before", "value": "2030-01-01"}
    await put_segment(api, "lapsed", rule)
    response = await api.get("/v1/segments/lapsed/members")
    assert (response.status_code, response.json()["members"]) == (200, ["ada"])
    condition: Condition = segment_members._RULE.validate_python(rule)
    facts = ProfileFacts(attributes=attributes, timezone=attributes["timezone"])
    assert evaluate(condition, facts, datetime.now(UTC))


async def test_a_numeric_string_too_long_for_postgresql_is_not_a_number_anywhere(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    """``"0.111…"`` with 16,384 digits matched the numeric pattern, and PostgreSQL's cast of it
    failed the whole statement (value overflows numeric format): every segment with a numeric
    filter on that property answered 500. Past NUMERIC_TEXT_MAX a string is no number, in SQL and
    in memory alike; the longest one that is still a number works on both databases."""
    longest = "0." + "1" * 15_998
    await add_people(store, tenant.id, {p: {} for p in ("ada", "long", "longest")})
    await add_orders(store, tenant.id, {"ada": 10, "long": "0." + "1" * 16_384, "longest": longest})
    rule = {"event": "order", "where": [{"property": "total", "op": "greater_than", "value": 0.1}]}
    await put_segment(api, "big", rule)
    response = await api.get("/v1/segments/big/members")
    assert response.status_code == 200, response.text
    assert response.json()["members"] == ["ada", "longest"]
    assert await stored_members(store, tenant, "big") == ["ada", "longest"]


async def test_the_happy_path_runs_the_statements_it_always_did(store: Store, tenant: Tenant) -> None:
    """No bad row: one statement per answer (plus PostgreSQL's SET LOCAL), no chunks, no retries."""
    await add_people(store, tenant.id, pros(50))
    condition: Condition = segment_members._RULE.validate_python(PRO)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    now = utcnow()
    event.listen(store.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with store.connect() as conn:
            assert await segments_query.count(conn, tenant.id, condition, now) == 17
            assert len(await segments_query.members(conn, tenant.id, condition, now, limit=5)) == 5
            assert len(await segments_query.matching(conn, tenant.id, condition, now)) == 17
            entering, leaving = await segments_query.membership_changes(
                conn, tenant.id, "none", condition, now + timedelta(seconds=1)
            )
            assert (len(entering), leaving) == (17, {})
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", seen)
    queries = [s for s in statements if "set_config" not in s]
    assert len(queries) == 4, queries


async def test_scheduled_entry_pages_skip_an_unreadable_profile(
    store: Store, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """An ``audience`` or ``date`` flow's run pages through the same SQL: the bad row is skipped,
    every page past it still comes, in id order."""
    sqlite_only(store)
    people = {f"p{i}": {"plan": "pro", "birthday": "1990-12-04"} for i in range(7)}
    await add_people(store, tenant.id, people)
    await write_raw(store, tenant.id, "profiles", ["p3"], '{"plan":"pro","birthday":"1990-12-04","x":NaN}')
    condition: Condition = segment_members._RULE.validate_python(PRO)
    at = utcnow() + timedelta(minutes=1)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    audience: list[list[str]] = []
    dated: list[list[str]] = []
    after: str | None = None
    async with store.connect() as conn:
        while page := await entry_candidates.audience_page(
            conn, tenant.id, condition, at, after=after, limit=2
        ):
            audience.append(page)
            after = page[-1]
        after = None
        while rows := await entry_candidates.dated_page(
            conn, tenant.id, "birthday", ["12-04"], 6, at, None, after=after, limit=4
        ):
            dated.append([r[0] for r in rows])
            after = rows[-1][0]
    assert audience == [["p0", "p1"], ["p2", "p4"], ["p5", "p6"]]
    assert dated == [["p0", "p1", "p2", "p4"], ["p5", "p6"]]
    # Once per run: only the page whose scan reaches p3 fails (pages stop at their limit).
    assert sum(m.startswith("profile p3 ") for m in skipped(caplog)) == 2


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"v": [value]}
    return value


# Values a client could store before any limit, each as attribute ``v`` and as an order's ``total``.
EDGE_VALUES: list[Any] = [
    10**400,
    -(10**400),
    1e308,
    -0.0,
    5,
    "5",
    "1e99",
    "-1E-99",
    "9" * 20_000,
    "0." + "1" * 16_384,
    "0." + "1" * 15_998,
    "١٢",  # Arabic-Indic digits: not a number
    " 5",
    "x" * 100_000,
    "2026-02-30",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01",
    "9999-12-31",
    "9999-12-31T23:59:59-23:59",
    "2026-11-30T12:00:00Z",
    True,
    None,
    [],
    [5, "5", [5]],
    {"a": 5},
    _deep(200),
]
ZONES = [None, "Z" * 300, "+05:00", "Pacific/Kiritimati", "Pacific/Honolulu", 5]
EDGE_RULES: list[dict[str, Any]] = [
    *(
        {"attribute": "v", "op": op, "value": 5}
        for op in ("is", "less_than", "greater_than_or_equal", "is_not")
    ),
    *({"attribute": "v", "op": op, "value": "5"} for op in ("contains", "starts_with", "ends_with")),
    *(
        {"attribute": "v", "op": op, "value": value}
        for op, value in (
            ("before", "2026-01-01"),
            ("after", "2026-01-01T00:00:00"),
            ("was_within", "7d"),
            ("was", "3d"),
            ("will_be_in", "1d"),
        )
    ),
    {"attribute": "v", "op": "was_today"},
    {"attribute": "v", "op": "is", "value": True},
    {"attribute": "v", "op": "is_empty"},
    *(
        {"event": "order", "where": [{"property": "total", "op": op, "value": value}]}
        for op, value in (
            ("greater_than", 0.1),
            ("less_than_or_equal", 5),
            ("is", 5),
            ("is_not", "5"),
            ("contains", 5),
            ("starts_with", "9"),
            ("is_empty", None),
        )
    ),
]


async def test_edge_values_answer_on_both_databases_as_in_memory(store: Store, tenant: Tenant) -> None:
    """Every rule kind over extreme stored values and time zones: on PostgreSQL no statement
    fails, and on both databases the SQL answers what the in-memory evaluator answers, for every
    profile it can evaluate; SQLite skips exactly those it cannot (a date-time past year 9999 in
    UTC, which the evaluator cannot take either)."""
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    people: dict[str, dict[str, Any]] = {}
    for i, value in enumerate(EDGE_VALUES):
        # Zones matter to dates only (and each costs PostgreSQL a pg_timezone_names lookup).
        zones = ZONES if isinstance(value, str) and value[:4].isdigit() and value[4:5] == "-" else [None]
        for j, zone in enumerate(zones):
            people[f"e{i:02d}-{j}"] = {"v": value} if zone is None else {"v": value, "timezone": zone}
    await add_people(store, tenant.id, people)
    await add_orders(store, tenant.id, {p: a["v"] for p, a in people.items()})
    async with store.connect() as conn:
        facts = {p: await load_profile_facts(conn, tenant.id, p, event_names=["order"]) for p in people}
    for rule in EDGE_RULES:
        condition: Condition = segment_members._RULE.validate_python(rule)
        async with store.connect() as conn:
            found = await segments_query.matching(conn, tenant.id, condition, now)
            counted = await segments_query.count(conn, tenant.id, condition, now)
        expected: set[str] = set()
        unreadable: set[str] = set()
        for profile_id, known in facts.items():
            try:
                if evaluate(condition, known, now):
                    expected.add(profile_id)
            except OverflowError:
                unreadable.add(profile_id)
        assert found - unreadable == expected, rule
        if store.dialect == "sqlite":
            assert not found & unreadable, rule
        assert counted == len(found), rule


async def test_a_stored_rule_that_no_longer_validates_skips_that_segment_only(
    api: httpx.AsyncClient,
    store: Store,
    tenant: Tenant,
    temporal: WorkflowEnvironment,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A rule whose NaN migration 0018 made null (``greater_than`` then has no number) failed the
    validation of every segment read, so the clock stopped for every workspace."""
    await add_people(store, tenant.id, pros(6))
    await put_segment(api, "broken", PRO)
    await put_segment(api, "pros", PRO)
    async with store.begin() as conn:
        await conn.execute(
            segments.update()
            .where(segments.c.workspace_id == tenant.id, segments.c.id == "broken")
            .values(rule={"attribute": "score", "op": "greater_than", "value": None})
        )
        await conn.execute(
            profiles.update()
            .where(profiles.c.workspace_id == tenant.id, profiles.c.id == "p0001")
            .values(attributes={"plan": "pro"})
        )
    caplog.set_level(logging.WARNING, logger="flowline.store.segment_members")
    clock = SegmentClockActivities(store, JourneyLauncher(store, temporal.client, task_queue))
    result = await clock.reevaluate_segments(ClockTick(now=utcnow(), workspace_id=tenant.id))
    assert result == ClockResult(segments=1, entered=1, exited=0)
    assert await stored_members(store, tenant, "pros") == ["p0000", "p0001", "p0003"]
    assert any(m.startswith(f"segment broken of workspace {tenant.id} skipped") for m in caplog.messages)
    # Saved anew, it is evaluated again.
    await put_segment(api, "broken", PRO)
    assert await stored_members(store, tenant, "broken") == ["p0000", "p0001", "p0003"]
