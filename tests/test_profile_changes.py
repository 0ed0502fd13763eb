"""Changes to a person in the store: what changes, the system event each writes, exactly once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from flowline.store import conversations, profiles
from flowline.store import profile_changes as changes
from flowline.store.database import Store
from flowline.store.events import JOURNEY_EVENTS
from flowline.store.tables import events
from tests.conftest import Tenant

API = changes.Origin(source="api")


def step_origin(step: str = "s", visit: int = 1) -> changes.Origin:
    return changes.Origin(flow_id="f", journey_id="j-1", step_id=step, visit=visit)


async def system_events(store: Store, tenant: Tenant, name: str | None = None) -> list[dict[str, Any]]:
    """The profile-change events (not the flow_entered / flow_exited of journeys)."""
    query = (
        select(events)
        .where(events.c.workspace_id == tenant.id, events.c.name.not_in(JOURNEY_EVENTS))
        .order_by(events.c.received_at)
    )
    if name is not None:
        query = query.where(events.c.name == name)
    async with store.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def profile(store: Store, tenant: Tenant, profile_id: str) -> dict[str, Any]:
    async with store.connect() as conn:
        row = await profiles.get_profile(conn, tenant.id, profile_id)
    assert row is not None
    return row


async def test_tags_stay_sorted_and_unique_and_each_change_is_an_event(store: Store, tenant: Tenant) -> None:
    async with store.begin() as conn:
        first = await changes.change_tags(store, conn, tenant.id, "ada", API, add=["vip", "beta", "vip"])
        second = await changes.change_tags(store, conn, tenant.id, "ada", API, add=["alpha"], remove=["beta"])
        nothing = await changes.change_tags(store, conn, tenant.id, "ada", API, add=["vip"], remove=["x"])
    assert first == {"added": ["beta", "vip"], "removed": []}
    assert second == {"added": ["alpha"], "removed": ["beta"]}
    assert nothing == {}
    assert (await profile(store, tenant, "ada"))["tags"] == ["alpha", "vip"]
    written = await system_events(store, tenant, changes.TAGS_CHANGED)
    assert [e["properties"]["tags"] for e in written] == [["beta", "vip"], ["alpha", "vip"]]
    assert all(e["routed_at"] is None and e["properties"]["source"] == "api" for e in written)


async def test_do_not_contact_entries_by_channel_and_sender(store: Store, tenant: Tenant) -> None:
    async def change(action: str, channel: str, senders: list[str] | None = None) -> dict[str, Any]:
        async with store.begin() as conn:
            return await changes.change_do_not_contact(
                store, conn, tenant.id, "ada", API, action=action, channel=channel, senders=senders
            )

    assert await change("add", "email", ["news", "promo"]) == {
        "added": [{"channel": "email", "sender": "news"}, {"channel": "email", "sender": "promo"}],
        "removed": [],
    }
    assert await change("add", "email", ["news"]) == {}
    await change("add", "sms")
    entries = (await profile(store, tenant, "ada"))["do_not_contact"]
    assert changes.blocks(entries, "email", "news") and changes.blocks(entries, "sms", "anyone")
    assert not changes.blocks(entries, "email", "billing") and not changes.blocks(entries, "push")

    assert await change("remove", "email", ["promo"]) == {
        "added": [],
        "removed": [{"channel": "email", "sender": "promo"}],
    }
    await change("add", "all")
    entries = (await profile(store, tenant, "ada"))["do_not_contact"]
    assert changes.blocks(entries, "push", "x")
    assert entries == [
        {"channel": "all", "sender": None},
        {"channel": "email", "sender": "news"},
        {"channel": "sms", "sender": None},
    ]
    await change("remove", "all")  # every channel, every sender: contact allowed again
    assert (await profile(store, tenant, "ada"))["do_not_contact"] == []
    assert len(await system_events(store, tenant, changes.DO_NOT_CONTACT_CHANGED)) == 5


async def test_attribute_changes_report_from_and_to_and_null_erases(store: Store, tenant: Tenant) -> None:
    async with store.begin() as conn:
        await profiles.upsert_profile(store, conn, tenant.id, "ada", {"plan": "free", "n": 1, "gone": "x"})
        changed = await changes.change_attributes(
            store, conn, tenant.id, "ada", {"plan": "pro", "n": 1, "gone": None, "never": None}, API
        )
        flag = await changes.change_attributes(store, conn, tenant.id, "ada", {"n": True}, API)
        same = await changes.change_attributes(store, conn, tenant.id, "ada", {"plan": "pro"}, API)
    assert changed == {"plan": {"from": "free", "to": "pro"}, "gone": {"from": "x", "to": None}}
    assert flag == {"n": {"from": 1, "to": True}}
    assert same == {}
    assert (await profile(store, tenant, "ada"))["attributes"] == {"plan": "pro", "n": True}
    [first, _] = await system_events(store, tenant, changes.PROFILE_CHANGED)
    assert first["properties"] == {"changed": changed, "source": "api"}


async def test_a_step_changes_once_even_when_its_change_is_not_idempotent(
    store: Store, tenant: Tenant
) -> None:
    origin = step_origin()
    async with store.begin() as conn:
        await profiles.upsert_profile(store, conn, tenant.id, "ada", {"n": 1})
    for _attempt in range(2):
        async with store.begin() as conn:
            row = await changes.lock_profile(store, conn, tenant.id, "ada")
            n = row["attributes"]["n"] + 1
            await changes.change_attributes(store, conn, tenant.id, "ada", {"n": n}, origin)
    assert (await profile(store, tenant, "ada"))["attributes"] == {"n": 2}
    [event] = await system_events(store, tenant, changes.PROFILE_CHANGED)
    assert event["id"] == origin.event_id(changes.PROFILE_CHANGED, "ada")
    assert event["properties"] == {
        "changed": {"n": {"from": 1, "to": 2}},
        "source": "flow",
        "flow_id": "f",
        "journey_id": "j-1",
        "step_id": "s",
    }
    # The next visit of the step is a change of its own.
    async with store.begin() as conn:
        await changes.change_attributes(store, conn, tenant.id, "ada", {"n": 3}, step_origin(visit=2))
    assert len(await system_events(store, tenant, changes.PROFILE_CHANGED)) == 2


async def test_referrer_and_friends_resolve_as_targets(store: Store, tenant: Tenant) -> None:
    async with store.begin() as conn:
        assert await changes.resolve_targets(conn, tenant.id, "ada", "referrer") == []
        assert await changes.set_referrer(store, conn, tenant.id, "ada", "grace", API)
        assert not await changes.set_referrer(store, conn, tenant.id, "ada", "grace", API)
        added = await changes.change_friends(store, conn, tenant.id, "ada", API, add=["linus", "ken", "ada"])
        assert added == {"added": ["ken", "linus"], "removed": []}
        assert await changes.resolve_targets(conn, tenant.id, "ada", "self") == ["ada"]
        assert await changes.resolve_targets(conn, tenant.id, "ada", "referrer") == ["grace"]
        assert await changes.resolve_targets(conn, tenant.id, "ada", "friends") == ["ken", "linus"]
        assert await changes.resolve_targets(conn, tenant.id, "ken", "friends") == ["ada"], "mutual"
        await changes.change_friends(store, conn, tenant.id, "ken", API, remove=["ada"])
        assert await changes.resolve_targets(conn, tenant.id, "ada", "friends") == ["linus"]
        assert await profiles.get_profile(conn, tenant.id, "grace") is not None, "created when named"
    assert [e["name"] for e in await system_events(store, tenant)] == [
        changes.REFERRER_CHANGED,
        changes.FRIENDS_CHANGED,
        changes.FRIENDS_CHANGED,
    ]


async def test_a_conversation_opens_once_per_step_visit(store: Store, tenant: Tenant) -> None:
    origin = step_origin("handover")
    async with store.begin() as conn:
        first = await conversations.start_conversation(
            store, conn, tenant.id, "ada", origin, tag="vip", note="n"
        )
    async with store.begin() as conn:
        again = await conversations.start_conversation(
            store, conn, tenant.id, "ada", origin, tag="vip", note="n"
        )
        [row] = await conversations.list_conversations(conn, tenant.id, "ada")
    assert first[1] and not again[1] and first[0] == again[0] == row["id"]
    assert (row["tag"], row["note"], row["status"], row["step_id"]) == ("vip", "n", "open", "handover")
    [event] = await system_events(store, tenant, conversations.CONVERSATION_STARTED)
    assert event["properties"]["conversation_id"] == row["id"] and event["routed_at"] is None
