"""POST /v1/profiles/batch: many profiles merged in one call (imports), on SQLite and PostgreSQL:
outcomes, faults by index and path with the valid entries kept, matching by email, the blank
policy, dry runs, and profile_change flows started behind the answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from flowline.store.database import Store
from flowline.store.profiles import contact_profile_id
from flowline.store.tables import events, profiles
from tests.conftest import Tenant
from tests.test_segment_triggers import publish, started


async def batch(api: httpx.AsyncClient, entries: list[Any], status: int = 200, **options: Any) -> Any:
    # "HUGE" stands for a number no double holds (httpx would not send it).
    body = json.dumps({"profiles": entries, **options}).replace('"HUGE"', "1e400")
    response = await api.post(
        "/v1/profiles/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    return response.json()


async def stored(store: Store, tenant: Tenant) -> dict[str, dict[str, Any]]:
    async with store.connect() as conn:
        query = select(profiles.c.id, profiles.c.attributes).where(profiles.c.workspace_id == tenant.id)
        return {r.id: r.attributes for r in await conn.execute(query)}


async def changes(store: Store, tenant: Tenant) -> int:
    async with store.connect() as conn:
        query = select(func.count()).where(
            events.c.workspace_id == tenant.id, events.c.name == "profile_changed"
        )
        return int(await conn.scalar(query) or 0)


async def test_outcomes_created_updated_unchanged(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    first = await batch(api, [{"id": "ada", "attributes": {"plan": "pro"}}, {"id": "bob"}])
    assert (first["created"], first["updated"], first["unchanged"], first["rejected"]) == (2, 0, 0, 0)
    assert [r["outcome"] for r in first["results"]] == ["created", "created"]
    again = await batch(
        api,
        [
            {"id": "ada", "attributes": {"plan": "pro"}},  # the same: unchanged
            {"id": "bob", "attributes": {"age": 3}},
            {"id": "bob", "attributes": {"age": 4}},  # the same id twice: the second sees the first
            {"id": "ada", "attributes": {"plan": None}},  # null erases
        ],
    )
    assert [r["outcome"] for r in again["results"]] == ["unchanged", "updated", "updated", "updated"]
    assert [r["index"] for r in again["results"]] == [0, 1, 2, 3]
    assert await stored(store, tenant) == {"ada": {}, "bob": {"age": 4}}
    # The profiles are the ones PUT and GET know.
    assert (await api.get("/v1/profiles/bob")).json()["attributes"] == {"age": 4}
    # One profile_changed event per created-with-attributes or updated entry (triggers default on).
    assert await changes(store, tenant) == 4


async def test_invalid_entries_are_rejected_by_index_the_valid_kept(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    assert (await api.put("/v1/attributes/age", json={"type": "number"})).status_code == 200
    answer = await batch(
        api,
        [
            {"id": "ada", "attributes": {"age": 36, "email": "ada@example.com"}},
            {"id": "bob", "attributes": {"age": "old", "city": "Paris"}},
            {"id": "cy", "attributes": {"email": "cy at example"}},
            {"attributes": {"age": 3}},
            {"id": "dee", "colour": "red"},
            {"id": "eve", "attributes": {"big": "HUGE"}},
            "not a profile",
            {"id": "fay", "attributes": {"name": "a\u0000b"}},  # not storable
        ],
    )
    assert (answer["created"], answer["rejected"]) == (1, 7)
    faults = {r["index"]: [f["path"] for f in r["faults"]] for r in answer["results"] if r["faults"]}
    assert faults == {
        1: ["$.profiles[1].attributes.age"],
        2: ["$.profiles[2].attributes.email"],
        3: ["$.profiles[3].id"],
        4: ["$.profiles[4].colour"],
        5: ["$.profiles[5].attributes.big"],
        6: ["$.profiles[6]"],
        7: ["$.profiles[7].attributes.name"],
    }
    assert answer["results"][1]["id"] == "bob"
    # Nothing of a rejected row is written (not even bob's valid city).
    assert set(await stored(store, tenant)) == {"ada"}


async def test_every_entry_rejected_is_422_and_bad_settings_refuse_the_call(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    answer = await batch(api, [{"attributes": {"a": 1}}], status=422)
    assert answer["rejected"] == 1 and answer["results"][0]["outcome"] == "rejected"
    refused = await batch(api, [{"id": "ada"}], status=422, match="phone")
    assert [f["path"] for f in refused["faults"]] == ["$.match"]
    too_many = await api.post("/v1/profiles/batch", json={"profiles": [{"id": f"p{i}"} for i in range(1001)]})
    assert too_many.status_code == 413
    assert await stored(store, tenant) == {}


async def test_match_by_email(api: httpx.AsyncClient, store: Store, tenant: Tenant) -> None:
    await api.put("/v1/profiles/ada-1", json={"attributes": {"email": "Ada@Example.com"}})
    answer = await batch(
        api,
        [
            {"attributes": {"email": " ada@example.COM ", "plan": "pro"}},  # found, case and blanks aside
            {"attributes": {"email": "new@example.com"}},  # nobody: created with the email's id
            {"id": "own-id", "attributes": {"email": "own@example.com"}},  # nobody: created as own-id
            {"id": "x", "attributes": {"plan": "pro"}},  # no email
        ],
        match="email",
    )
    new_id = contact_profile_id(tenant.id, "email", "new@example.com")
    assert [(r["id"], r["outcome"]) for r in answer["results"]] == [
        ("ada-1", "updated"),
        (new_id, "created"),
        ("own-id", "created"),
        ("x", "rejected"),
    ]
    assert answer["results"][3]["faults"][0]["path"] == "$.profiles[3].attributes.email"
    assert (await stored(store, tenant))["ada-1"]["plan"] == "pro"


async def test_blank_policy(api: httpx.AsyncClient, store: Store, tenant: Tenant) -> None:
    await batch(api, [{"id": "ada", "attributes": {"city": "Paris", "plan": "pro"}}])
    kept = await batch(api, [{"id": "ada", "attributes": {"city": "", "plan": "  "}}])
    assert kept["unchanged"] == 1
    assert (await stored(store, tenant))["ada"] == {"city": "Paris", "plan": "pro"}
    cleared = await batch(api, [{"id": "ada", "attributes": {"city": "", "plan": "max"}}], blank="clear")
    assert cleared["updated"] == 1
    assert (await stored(store, tenant))["ada"] == {"plan": "max"}
    # null erases whatever the policy.
    await batch(api, [{"id": "ada", "attributes": {"plan": None}}])
    assert (await stored(store, tenant))["ada"] == {}


async def test_dry_run_writes_nothing(api: httpx.AsyncClient, store: Store, tenant: Tenant) -> None:
    await batch(api, [{"id": "ada", "attributes": {"plan": "pro"}}])
    before = await changes(store, tenant)
    answer = await batch(
        api,
        [
            {"id": "ada", "attributes": {"plan": "max"}},
            {"id": "bob"},
            {"id": "ada", "attributes": {"plan": "max"}},
        ],
        dry_run=True,
    )
    assert answer["dry_run"] is True
    assert [r["outcome"] for r in answer["results"]] == ["updated", "created", "unchanged"]
    assert await stored(store, tenant) == {"ada": {"plan": "pro"}}
    assert await changes(store, tenant) == before


async def _started_soon(store: Store, tenant: Tenant, flow_id: str, count: int) -> list[tuple[str, str]]:
    """The flow's journeys once ``count`` have started (they start behind the batch's answer)."""
    for _ in range(200):
        found = await started(store, tenant, flow_id)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return await started(store, tenant, flow_id)


async def test_changes_start_profile_change_flows_behind_the_answer(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, "upgraded", {"type": "profile_change", "attribute": "plan", "to": "pro"})
    entries = [{"id": f"p{i}", "attributes": {"plan": "pro" if i % 10 == 0 else "free"}} for i in range(100)]
    answer = await batch(api, entries)
    assert answer["created"] == 100
    found = await _started_soon(store, tenant, "upgraded", 10)
    assert sorted(p for p, _ in found) == sorted(f"p{i}" for i in range(0, 100, 10))
    # Every change was routed (the journeys' own flow_entered events are the sweeper's).
    async with store.connect() as conn:
        query = select(func.count()).where(
            events.c.workspace_id == tenant.id,
            events.c.name == "profile_changed",
            events.c.routed_at.is_(None),
        )
        for _ in range(100):
            if not await conn.scalar(query):
                break
            await asyncio.sleep(0.05)
        assert await conn.scalar(query) == 0


async def test_without_triggers_no_flow_starts_and_no_change_is_recorded(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, "upgraded", {"type": "profile_change", "attribute": "plan", "to": "pro"})
    answer = await batch(api, [{"id": "ada", "attributes": {"plan": "pro"}}], triggers=False)
    assert answer["created"] == 1
    # A profile changed by a PUT afterwards does start it: the flow was listening.
    await api.put("/v1/profiles/bob", json={"attributes": {"plan": "pro"}})
    assert [p for p, _ in await _started_soon(store, tenant, "upgraded", 1)] == ["bob"]
    assert await changes(store, tenant) == 1


async def test_a_journey_waiting_for_a_change_hears_an_imported_one(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    """Changes nothing hears are stored routed; one a journey in flight waits for is routed to it."""
    from tests.conftest import finish
    from tests.test_journeys import publish as publish_flow
    from tests.test_wait_for_change import change_flow
    from tests.test_wait_for_event import start

    await api.put("/v1/profiles/ada", json={"attributes": {"plan": "free"}})
    await publish_flow(api, change_flow())
    journey_id, _ = await start(api, temporal)
    await batch(
        api, [{"id": "ada", "attributes": {"plan": "pro"}}, {"id": "bob", "attributes": {"plan": "x"}}]
    )
    query = select(events.c.profile_id, events.c.routed_at.is_not(None)).where(
        events.c.workspace_id == tenant.id,
        events.c.name == "profile_changed",
        events.c.properties["source"].as_string() == "import",
    )
    # The change is routed behind the answer. Waiting for the journey's result now would let the
    # time-skipping server jump to the wait's timeout first: wait (in real time) for the routing.
    for _ in range(600):
        async with store.connect() as conn:
            if {r[0]: r[1] for r in await conn.execute(query)}.get("ada"):
                break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("ada's imported change was never routed")
    state = await finish(temporal, journey_id)
    assert [(p.step, p.branch) for p in state.path][:2] == [("wait", "changed"), ("thanks", "sent")]
    async with store.connect() as conn:
        # bob's change concerned nobody: stored routed at once.
        assert {r[0]: r[1] for r in await conn.execute(query)}["bob"] is True
