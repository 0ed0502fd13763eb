"""One rule, one meaning: conditions compiled to SQL select exactly the profiles the in-memory
evaluator accepts, on SQLite and PostgreSQL (the ``store`` fixture runs both).

Hypothesis generates rules and profiles (attributes of every JSON type, tags, opt-outs, events
with properties, journeys) and compares ``evaluate`` on loaded facts with SQL membership."""

# Over 400 lines on purpose: every operator's SQL-against-memory case in one place to compare.

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from sqlalchemy import update

from flowline.conditions.evaluate import evaluate, needs
from flowline.conditions.operators import OPS_BY_TYPE, FilterOp
from flowline.conditions.rules import Condition
from flowline.store import segments_query
from flowline.store.database import Store
from flowline.store.profile_facts import load_profile_facts
from flowline.store.tables import events, journeys, profiles, workspaces
from tests.conftest import new_tenant

RULE: TypeAdapter[Condition] = TypeAdapter(Condition)

# Instants next to daylight-saving changes (Berlin 29 March, New York 8 March and 1 November).
NOWS = [
    datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
    datetime(2026, 3, 29, 22, 30, tzinfo=UTC),
    datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
    datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
]
ZONES = [None, "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
DATES = [
    "2026-03-29",
    "2026-03-28",
    "2026-03-30",
    "2026-03-07",
    "2026-03-08",
    "2026-10-31",
    "2026-11-01",
    "2026-03-29T02:30:00",
    "2026-03-29T01:30:00+00:00",
    "2026-03-28T23:59:59",
    "2026-03-08T02:30:00",
    "2026-11-01T01:30:00",
    "2026-11-01T01:30:00-04:00",
]
TEXTS = ["", "a", "ab", "abc", "b", "1", "2.5", "1e3", " 1", "inf", "x y", "nope", "Asia/Kolkata"]
SCALARS: list[Any] = [None, True, False, 0, 1, -1, 2.5, 1.0, *TEXTS, *DATES]
JSON_VALUES = st.one_of(
    st.sampled_from(SCALARS), st.sampled_from([[], [1], ["a", 2.5], [True, "1", None], {}, {"sku": "a"}])
)
ATTRIBUTES = ["a", "b", "timezone"]
EVENT_NAMES = ["buy", "open"]
FLOWS = ["f1", "f2"]
SENDERS = [None, "promo", "billing"]
DURATIONS = ["1h", "1d", "2d", "1w"]
HOURS_AGO = [-30, -1, 0, 1, 23, 25, 49, 200]


def _attribute_value(kind: str | None, op: str) -> st.SearchStrategy[Any]:
    if op in ("is_empty", "is_not_empty", "was_today"):
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "text":
        return st.sampled_from(TEXTS)
    if kind == "number":
        return st.sampled_from([0, 1, -1, 2.5, 1.0, 3])
    if op in ("was", "will_be_in"):
        return st.sampled_from(["0d", "1d", "2d", "1w"])
    if op in ("will_be_within", "will_be_more_than", "was_within", "was_more_than"):
        return st.sampled_from(DURATIONS)
    return st.sampled_from(DATES)


@st.composite
def attribute_conditions(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([None, "boolean", "text", "number", "date"]))
    op = draw(st.sampled_from(["is_empty", "is_not_empty"] if kind is None else OPS_BY_TYPE[kind]))
    rule: dict[str, Any] = {"attribute": draw(st.sampled_from(ATTRIBUTES)), "op": op}
    value = draw(_attribute_value(kind, op))
    if value is not None:
        rule["value"] = value
    if kind is not None:
        rule["type"] = kind
    return rule


# Every operator of property filters (the Literal itself: a new operator is generated at once).
FILTER_OPS = list(FilterOp.__args__)  # type: ignore[attr-defined]


@st.composite
def event_conditions(draw: st.DrawFn) -> dict[str, Any]:
    rule: dict[str, Any] = {"event": draw(st.sampled_from(EVENT_NAMES))}
    if draw(st.booleans()):
        rule["happened"] = draw(st.booleans())
    if draw(st.booleans()):
        rule["count"] = {"op": draw(st.sampled_from(["=", ">=", "<="])), "value": draw(st.integers(0, 3))}
    window = draw(st.sampled_from(["none", "within", "between"]))
    if window == "within":
        rule["within"] = draw(st.sampled_from(DURATIONS))
    elif window == "between":
        start = draw(st.sampled_from(HOURS_AGO))
        length = draw(st.sampled_from([0, 2, 30]))
        rule["between"] = {"from": f"@{start + length}", "to": f"@{start}"}  # resolved against now
    rule["where"] = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "property": st.sampled_from(["total", "sku", "item.sku", "item.0"]),
                    "op": st.sampled_from(FILTER_OPS),
                    "value": st.sampled_from(SCALARS[:16]),
                }
            ),
            max_size=2,
        )
    )
    return rule


LEAVES = st.one_of(
    attribute_conditions(),
    st.fixed_dictionaries(
        {"tag": st.sampled_from(["vip", "beta"]), "op": st.sampled_from(["has", "has_not"])}
    ),
    st.builds(
        lambda channel, sender: {"do_not_contact": channel} | ({"sender": sender} if sender else {}),
        st.sampled_from(["email", "sms", "push", "in_app", "any"]),
        st.sampled_from(SENDERS),
    ),
    event_conditions(),
    st.builds(
        lambda flow, state, within: {"flow": flow, "state": state} | ({"within": within} if within else {}),
        st.sampled_from(FLOWS),
        st.sampled_from(["in_flow", "entered", "exited"]),
        st.sampled_from([None, *DURATIONS]),
    ),
)
CONDITIONS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"all": c}),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: {"any": c}),
        inner.map(lambda c: {"not": c}),
    ),
    max_leaves=5,
)


def _resolve(rule: Any, now: datetime) -> Any:
    """``@N`` in a ``between``: N hours before now (as ISO text)."""
    if isinstance(rule, dict):
        return {k: _resolve(v, now) for k, v in rule.items()}
    if isinstance(rule, list):
        return [_resolve(v, now) for v in rule]
    if isinstance(rule, str) and rule.startswith("@"):
        return (now - timedelta(hours=int(rule[1:]))).isoformat()
    return rule


PROFILES = st.lists(
    st.fixed_dictionaries(
        {
            "attributes": st.dictionaries(st.sampled_from(ATTRIBUTES), JSON_VALUES, max_size=3),
            "tags": st.lists(st.sampled_from(["vip", "beta", "x"]), unique=True, max_size=2),
            "dnc": st.lists(
                st.builds(
                    lambda channel, sender: (
                        {"channel": channel} | ({} if sender == "-" else {"sender": sender})
                    ),
                    st.sampled_from(["email", "sms", "push", "in_app", "all"]),
                    st.sampled_from([*SENDERS, "-"]),
                ),
                max_size=2,
            ),
            "events": st.lists(
                st.tuples(
                    st.sampled_from(EVENT_NAMES),
                    st.sampled_from(HOURS_AGO),
                    st.dictionaries(st.sampled_from(["total", "sku", "item"]), JSON_VALUES, max_size=2),
                ),
                max_size=4,
            ),
            "journeys": st.lists(
                st.tuples(
                    st.sampled_from(FLOWS),
                    st.sampled_from(["running", "completed", "stopped"]),
                    st.sampled_from(HOURS_AGO),
                    st.sampled_from([None, *HOURS_AGO]),
                ),
                max_size=2,
            ),
        }
    ),
    min_size=1,
    max_size=4,
)


async def _seed(store: Store, zone: str | None, people: list[dict[str, Any]], now: datetime) -> str:
    tenant = await new_tenant(store)
    ws = tenant.id
    async with store.begin() as conn:
        await conn.execute(update(workspaces).where(workspaces.c.id == ws).values(timezone=zone))
        for i, person in enumerate(people):
            pid = f"p{i}"
            await conn.execute(
                profiles.insert().values(
                    workspace_id=ws,
                    id=pid,
                    attributes=person["attributes"],
                    tags=person["tags"],
                    do_not_contact=person["dnc"],
                    created_at=now,
                    updated_at=now,
                )
            )
            for j, (name, ago, properties) in enumerate(person["events"]):
                at = now - timedelta(hours=ago)
                await conn.execute(
                    events.insert().values(
                        workspace_id=ws,
                        id=f"e{i}-{j}",
                        profile_id=pid,
                        name=name,
                        timestamp=at,
                        properties=properties,
                        received_at=at,
                    )
                )
            for flow, status, started, ended in person["journeys"]:
                await conn.execute(
                    journeys.insert().values(
                        id=uuid.uuid4().hex,
                        workspace_id=ws,
                        flow_id=flow,
                        version=1,
                        profile_id=pid,
                        status=status,
                        started_at=now - timedelta(hours=started),
                        ended_at=None
                        if ended is None or status == "running"
                        else now - timedelta(hours=ended),
                    )
                )
    return ws


async def _agree(
    store: Store, rule: dict[str, Any], zone: str | None, people: list[dict[str, Any]], now: datetime
) -> set[int]:
    """The profiles (by index) the rule holds for, once SQL and memory are shown to agree."""
    condition = RULE.validate_python(_resolve(rule, now))
    ws = await _seed(store, zone, people, now)
    wanted = needs([condition])
    async with store.connect() as conn:
        selected = set(await segments_query.members(conn, ws, condition, now, limit=100))
        expected = set()
        for i in range(len(people)):
            facts = await load_profile_facts(
                conn, ws, f"p{i}", event_names=wanted.events, flow_ids=wanted.flows
            )
            if evaluate(condition, facts, now):
                expected.add(f"p{i}")
        total = await segments_query.count(conn, ws, condition, now)
    assert selected == expected, (rule, people)
    assert total == len(expected)
    return {int(pid[1:]) for pid in expected}


@settings(
    max_examples=int(os.environ.get("FLOWLINE_SQL_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rule=CONDITIONS, zone=st.sampled_from(ZONES), people=PROFILES, now=st.sampled_from(NOWS))
async def test_sql_agrees_with_memory(
    store: Store, rule: dict[str, Any], zone: str | None, people: list[dict[str, Any]], now: datetime
) -> None:
    selected = await _agree(store, rule, zone, people, now)
    # --hypothesis-show-statistics: how often rules select none, some or all of the profiles.
    event("selects " + ("none" if not selected else "all" if len(selected) == len(people) else "some"))


# ---------------------------------------------------------------- tricky cases, by example


def _people(*attributes: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    base = {"tags": [], "dnc": [], "events": [], "journeys": []}
    return [base | {"attributes": a} | extra for a in attributes]


NOW = datetime(2026, 3, 29, 22, 30, tzinfo=UTC)  # 00:30 on 30 March in Berlin (CEST)


async def test_missing_attributes_and_type_mismatches(store: Store) -> None:
    people = _people({"a": 1}, {"a": "1"}, {"a": True}, {}, {"a": None}, {"a": 1.0})
    assert await _agree(store, {"attribute": "a", "op": "is", "value": 1}, None, people, NOW) == {0, 5}
    assert await _agree(store, {"attribute": "a", "op": "is", "value": "1"}, None, people, NOW) == {1}
    assert await _agree(store, {"attribute": "a", "op": "is", "value": True}, None, people, NOW) == {2}
    assert await _agree(store, {"attribute": "a", "op": "is_not", "value": 1}, None, people, NOW) == {
        1,
        2,
        3,
        4,
    }
    rule = {"attribute": "a", "op": "greater_than", "value": 0.5}
    assert await _agree(store, rule, None, people, NOW) == {0, 5}
    rule = {"attribute": "a", "op": "less_than", "value": 5}
    assert await _agree(store, {"not": rule}, None, people, NOW) == {1, 2, 3, 4}


async def test_emptiness_and_text(store: Store) -> None:
    people = _people({"a": ""}, {"a": []}, {"a": {}}, {"a": None}, {}, {"a": 0}, {"a": False}, {"a": "abc"})
    assert await _agree(store, {"attribute": "a", "op": "is_empty"}, None, people, NOW) == {0, 1, 2, 3, 4}
    assert await _agree(store, {"attribute": "a", "op": "is_not_empty"}, None, people, NOW) == {5, 6, 7}
    assert await _agree(store, {"attribute": "a", "op": "ends_with", "value": "abc"}, None, people, NOW) == {
        7
    }
    assert await _agree(store, {"attribute": "a", "op": "ends_with", "value": "bc"}, None, people, NOW) == {7}
    assert (
        await _agree(store, {"attribute": "a", "op": "ends_with", "value": "xabc"}, None, people, NOW)
        == set()
    )
    assert await _agree(store, {"attribute": "a", "op": "starts_with", "value": "ab"}, None, people, NOW) == {
        7
    }
    assert await _agree(store, {"attribute": "a", "op": "contains", "value": ""}, None, people, NOW) == {0, 7}
    assert await _agree(store, {"attribute": "a", "op": "contains", "value": "B"}, None, people, NOW) == set()


async def test_calendar_days_across_dst(store: Store) -> None:
    """Berlin moved to CEST on 29 March 2026 at 01:00 UTC; now is 00:30 on 30 March there."""
    people = _people(
        {"d": "2026-03-30", "timezone": "Europe/Berlin"},
        {"d": "2026-03-29", "timezone": "Europe/Berlin"},
        {"d": "2026-03-29"},  # the workspace's zone: New York, where it is still the 29th
        {"d": "2026-03-29", "timezone": "Not/AZone"},  # an unknown zone reads as UTC
        {"d": "2026-03-29T23:30:00+00:00", "timezone": "Europe/Berlin"},  # 01:30 on the 30th there
    )
    today = {"attribute": "d", "op": "was_today"}
    assert await _agree(store, today, "America/New_York", people, NOW) == {0, 2, 3, 4}
    yesterday = {"attribute": "d", "op": "was", "value": "1d"}
    assert await _agree(store, yesterday, "America/New_York", people, NOW) == {1}
    rule = {"attribute": "d", "op": "is", "value": "2026-03-30", "type": "date"}
    assert await _agree(store, rule, "America/New_York", people, NOW) == {0, 4}


async def test_wall_times_at_dst_changes(store: Store) -> None:
    """02:30 did not happen in Berlin on 29 March (it is 03:00 CEST, 01:00 UTC); 01:30 happened
    twice in New York on 1 November (the first time counts: 05:30 UTC)."""
    people = _people(
        {"d": "2026-03-29T02:30:00", "timezone": "Europe/Berlin"},
        {"d": "2026-11-01T01:30:00", "timezone": "America/New_York"},
    )
    gap = {"attribute": "d", "op": "is", "value": "2026-03-29T01:00:00Z", "type": "date"}
    assert await _agree(store, gap, None, people, NOW) == {0}
    fold = {"attribute": "d", "op": "is", "value": "2026-11-01T05:30:00Z", "type": "date"}
    assert await _agree(store, fold, None, people, NOW) == {1}
    later = {"attribute": "d", "op": "after", "value": "2026-11-01T05:30:00Z", "type": "date"}
    assert await _agree(store, later, None, people, NOW) == set()


async def test_event_counts_with_where_filters(store: Store) -> None:
    purchases = [
        ("buy", 1, {"total": 5}),
        ("buy", 2, {"total": "50"}),
        ("buy", 3, {"total": "1e3"}),
        ("buy", 4, {"total": "inf"}),  # not a number
        ("buy", 5, {"total": " 70"}),  # not a number either: no spaces
        ("buy", 300, {"total": 100}),  # outside the window below
        ("open", 1, {"total": 500}),
    ]
    base = {"attributes": {}, "tags": [], "dnc": [], "journeys": []}
    people = [base | {"events": purchases}, base | {"events": purchases[:2]}]
    big = [{"property": "total", "op": "greater_than", "value": 10}]
    rule = {"event": "buy", "count": {"op": ">=", "value": 2}, "where": big}
    assert await _agree(store, rule, None, people, NOW) == {0}
    rule = {"event": "buy", "count": {"op": "=", "value": 1}, "where": big, "within": "1d"}
    assert await _agree(store, rule, None, people, NOW) == {1}
    rule = {"event": "buy", "count": {"op": "=", "value": 2}, "where": big, "within": "1d"}
    assert await _agree(store, rule, None, people, NOW) == {0}
    text = [{"property": "total", "op": "is", "value": "50"}]
    assert await _agree(store, {"event": "buy", "where": text, "happened": False}, None, people, NOW) == set()


async def test_property_lists_and_equality(store: Store) -> None:
    base = {"attributes": {}, "tags": [], "dnc": [], "journeys": []}
    people = [
        base | {"events": [("open", 1, {"sku": ["a", 1]})]},
        base | {"events": [("open", 1, {"sku": "xay"})]},
        base | {"events": [("open", 1, {"sku": [True], "item": {"sku": 1}})]},
        base | {"events": [("open", 1, {"sku": [[1]], "item": ["a"]})]},
    ]

    def where(op: str, value: Any, prop: str = "sku") -> dict[str, Any]:
        return {"event": "open", "where": [{"property": prop, "op": op, "value": value}]}

    assert await _agree(store, where("contains", "a"), None, people, NOW) == {0, 1}
    assert await _agree(store, where("contains", 1), None, people, NOW) == {0, 2}  # true == 1
    assert await _agree(store, where("is", True, "item.sku"), None, people, NOW) == {2}
    assert await _agree(store, where("is_not", 1.0, "item.sku"), None, people, NOW) == {0, 1, 3}
    # A dotted path goes through objects only, never into a list by position.
    assert await _agree(store, where("is", "a", "item.0"), None, people, NOW) == set()
    assert await _agree(store, where("is_empty", None, "item.0"), None, people, NOW) == {0, 1, 2, 3}
