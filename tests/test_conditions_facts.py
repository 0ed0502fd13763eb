"""Conditions on tags, do-not-contact, events and flow membership, and loading their facts from
the store (the ``store`` fixture runs those tests on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flowline.conditions.evaluate import needs
from flowline.conditions.facts import ContactBlock, EventFact, FlowMembership, ProfileFacts
from flowline.journey import JourneyEnd, JourneyRef
from flowline.store import events, journeys, profiles
from flowline.store.database import Store
from flowline.store.profile_facts import load_profile_facts
from flowline.store.tables import profiles as profiles_table
from tests.conftest import Tenant
from tests.test_conditions_rules import NOW, RULE, holds


def test_tags() -> None:
    facts = ProfileFacts(tags=frozenset({"vip", "beta"}))
    assert holds({"tag": "vip"}, facts)
    assert holds({"tag": "vip", "op": "has"}, facts)
    assert not holds({"tag": "VIP", "op": "has"}, facts)
    assert holds({"tag": "churned", "op": "has_not"}, facts)
    assert not holds({"tag": "beta", "op": "has_not"}, facts)


def test_do_not_contact() -> None:
    facts = ProfileFacts(do_not_contact=(ContactBlock("email"), ContactBlock("sms", "promo")))
    assert holds({"do_not_contact": "email"}, facts)
    assert holds({"do_not_contact": "email", "sender": "anyone"}, facts)
    assert not holds({"do_not_contact": "sms"}, facts), "only one sender may not text"
    assert holds({"do_not_contact": "sms", "sender": "promo"}, facts)
    assert not holds({"do_not_contact": "sms", "sender": "billing"}, facts)
    assert not holds({"do_not_contact": "push"}, facts)
    assert holds({"do_not_contact": "any"}, facts)
    everything = ProfileFacts(do_not_contact=(ContactBlock("all"),))
    assert holds({"do_not_contact": "push"}, everything)
    assert holds({"do_not_contact": "in_app", "sender": "x"}, everything)
    one_sender = ProfileFacts(do_not_contact=(ContactBlock("all", "promo"),))
    assert not holds({"do_not_contact": "any"}, one_sender)
    assert holds({"do_not_contact": "any", "sender": "promo"}, one_sender)
    assert not holds({"do_not_contact": "any"}, ProfileFacts())


def _event(name: str, ago: timedelta, **properties: Any) -> EventFact:
    return EventFact(name, NOW - ago, properties)


EVENTS = ProfileFacts(
    events=(
        _event("purchase", timedelta(days=1), total=50),
        _event("purchase", timedelta(days=3), total=5),
        _event("purchase", timedelta(days=10), total=100),
        _event("purchase", timedelta(hours=-1), total=1),  # in the future
        _event("opened", timedelta(hours=2)),
    )
)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"event": "purchase"}, True),
        ({"event": "refund"}, False),
        ({"event": "refund", "happened": False}, True),
        ({"event": "purchase", "happened": False}, False),
        ({"event": "purchase", "count": {"op": "=", "value": 4}}, True),  # no window: every one
        ({"event": "purchase", "count": {"op": ">=", "value": 5}}, False),
        ({"event": "refund", "count": {"op": "=", "value": 0}}, True),
        ({"event": "purchase", "within": "7d", "count": {"op": "=", "value": 2}}, True),
        ({"event": "purchase", "within": "7d", "count": {"op": ">=", "value": 3}}, False),
        ({"event": "purchase", "within": "7d", "count": {"op": "<=", "value": 2}}, True),
        ({"event": "purchase", "within": "7d", "count": {"op": "<=", "value": 1}}, False),
        ({"event": "purchase", "within": "7d", "happened": False, "count": {"op": ">=", "value": 3}}, True),
        ({"event": "purchase", "within": "3d", "count": {"op": "=", "value": 2}}, True),  # inclusive
        ({"event": "purchase", "within": "12h"}, False),
        ({"event": "opened", "within": "12h"}, True),
        (
            {
                "event": "purchase",
                "where": [{"property": "total", "op": "greater_than", "value": 10}],
                "count": {"op": "=", "value": 2},
            },
            True,
        ),
        (
            {
                "event": "purchase",
                "within": "7d",
                "where": [{"property": "total", "op": "greater_than", "value": 10}],
                "count": {"op": "=", "value": 1},
            },
            True,
        ),
        (
            {
                "event": "purchase",
                "between": {"from": "2026-03-21T12:00:00Z", "to": "2026-03-23T12:00:00Z"},
                "count": {"op": "=", "value": 1},
            },
            True,
        ),
        (  # both ends inclusive; no offset: UTC
            {
                "event": "purchase",
                "between": {"from": "2026-03-15T12:00:00", "to": "2026-03-22T12:00:00"},
                "count": {"op": "=", "value": 2},
            },
            True,
        ),
        ({"event": "purchase", "between": {"from": "2026-01-01", "to": "2026-03-01"}}, False),
    ],
)
def test_event_conditions(rule: dict[str, Any], expected: bool) -> None:
    assert holds(rule, EVENTS) is expected


FLOWS = ProfileFacts(
    flows=(
        FlowMembership("onboarding", "running", NOW - timedelta(days=2)),
        FlowMembership("winback", "completed", NOW - timedelta(days=20), NOW - timedelta(days=10)),
        FlowMembership("promo", "stopped", NOW - timedelta(hours=5), NOW - timedelta(hours=1)),
    )
)


@pytest.mark.parametrize(
    ("flow", "state", "within", "expected"),
    [
        ("onboarding", "in_flow", None, True),
        ("onboarding", "in_flow", "1d", False),
        ("onboarding", "in_flow", "3d", True),
        ("onboarding", "entered", None, True),
        ("onboarding", "entered", "1d", False),
        ("onboarding", "exited", None, False),
        ("winback", "in_flow", None, False),
        ("winback", "exited", None, True),
        ("winback", "exited", "7d", False),
        ("winback", "exited", "14d", True),
        ("winback", "entered", "7d", False),
        ("promo", "exited", "2h", True),
        ("promo", "in_flow", None, False),
        ("other", "entered", None, False),
    ],
)
def test_flow_membership(flow: str, state: str, within: str | None, expected: bool) -> None:
    rule: dict[str, Any] = {"flow": flow, "state": state}
    assert holds(rule | {"within": within} if within else rule, FLOWS) is expected


def test_needs_names_the_events_and_flows_to_load() -> None:
    rule = RULE.validate_python(
        {
            "all": [
                {"event": "purchase"},
                {
                    "any": [
                        {"not": {"event": "refund", "within": "7d"}},
                        {"flow": "onboarding", "state": "exited"},
                    ]
                },
                {"tag": "vip"},
            ]
        }
    )
    found = needs([rule, RULE.validate_python({"event": "opened"})])
    assert found.events == {"purchase", "refund", "opened"}
    assert found.flows == {"onboarding"}
    assert needs([RULE.validate_python({"attribute": "a", "op": "is_empty"})]).events == frozenset()


async def _journey(store: Store, tenant: Tenant, journey_id: str, flow: str, ended: bool) -> None:
    async with store.begin() as conn:
        await journeys.claim_entry(
            store,
            conn,
            journey_id=journey_id,
            workspace_id=tenant.id,
            flow_id=flow,
            version=1,
            profile_id="ada",
            lock=f"entry:{journey_id}",
            trigger_event_id=None,
            started_at=NOW - timedelta(days=3),
        )
        if ended:
            ref = JourneyRef(
                journey_id=journey_id, workspace_id=tenant.id, flow_id=flow, version=1, profile_id="ada"
            )
            end = JourneyEnd(
                journey=ref, status="completed", last_step="x", exit_reason="completed", ended_at=NOW
            )
            assert await journeys.record_end(conn, end)


async def test_facts_are_loaded_for_one_profile_and_only_what_conditions_need(
    store: Store, tenant: Tenant
) -> None:
    async with store.begin() as conn:
        changes = {"first_name": "Ada", "timezone": "Europe/Berlin"}
        await profiles.upsert_profile(store, conn, tenant.id, "ada", changes)
        await conn.execute(
            profiles_table.update()
            .where(profiles_table.c.workspace_id == tenant.id, profiles_table.c.id == "ada")
            .values(tags=["beta", "vip"], do_not_contact=[{"channel": "sms", "sender": None}])
        )
        batch = [
            {"id": "e1", "profile_id": "ada", "name": "purchase", "timestamp": NOW, "properties": {"n": 1}},
            {"id": "e2", "profile_id": "ada", "name": "opened", "timestamp": NOW},
            {"id": "e3", "profile_id": "bob", "name": "purchase", "timestamp": NOW},
        ]
        await events.insert_events(store, conn, tenant.id, batch)
    await _journey(store, tenant, f"{tenant.id}-j1", "onboarding", ended=False)
    await _journey(store, tenant, f"{tenant.id}-j2", "winback", ended=True)
    await _journey(store, tenant, f"{tenant.id}-j3", "other", ended=False)

    async with store.connect() as conn:
        facts = await load_profile_facts(
            conn, tenant.id, "ada", event_names={"purchase"}, flow_ids=["onboarding", "winback"]
        )
        nobody = await load_profile_facts(conn, tenant.id, "nobody", event_names=["purchase"])
    assert facts.attributes == {"first_name": "Ada", "timezone": "Europe/Berlin"}
    assert facts.timezone == "Europe/Berlin"
    assert facts.tags == {"beta", "vip"}
    assert facts.do_not_contact == (ContactBlock("sms", None),)
    assert facts.events == (EventFact("purchase", NOW, {"n": 1}),)
    assert sorted((m.flow_id, m.status, m.ended_at) for m in facts.flows) == [
        ("onboarding", "running", None),
        ("winback", "completed", NOW),
    ]
    assert all(m.started_at == NOW - timedelta(days=3) for m in facts.flows)
    assert nobody == ProfileFacts()
    rule = RULE.validate_python(
        {
            "all": [
                {"event": "purchase", "within": "1h"},
                {"flow": "winback", "state": "exited", "within": "1d"},
                {"do_not_contact": "sms"},
                {"tag": "vip"},
            ]
        }
    )
    assert holds(rule.model_dump(by_alias=True), facts)
