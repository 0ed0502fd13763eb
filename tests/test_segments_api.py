"""Segments through the API: a rule, its members counted and paged in SQL at request time."""

from __future__ import annotations

import httpx

from flowline.store import profile_changes, segments
from flowline.store.database import Store
from tests.conftest import Tenant

RULE = {
    "all": [
        {"attribute": "plan", "op": "is", "value": "pro"},
        {"not": {"tag": "churned"}},
        {"event": "purchase", "count": {"op": ">=", "value": 2}, "within": "30d"},
    ]
}


async def test_a_segment_counts_and_pages_its_members(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    put = await api.put("/v1/segments/loyal", json={"name": "Loyal pros", "rule": RULE})
    assert put.status_code == 200, put.text
    for person in ("a", "b", "c", "d"):
        await api.put(
            f"/v1/profiles/{person}", json={"attributes": {"plan": "pro" if person != "d" else "free"}}
        )
    events = [
        {"id": f"{person}-{n}", "profile_id": person, "name": "purchase"}
        for person in ("a", "b", "c", "d")
        for n in range(2 if person != "c" else 1)
    ]
    assert (await api.post("/v1/events", json=events)).status_code == 202
    async with store.begin() as conn:
        await profile_changes.change_tags(
            store, conn, tenant.id, "b", profile_changes.Origin(source="api"), add=["churned"]
        )
    # a: pro, two purchases; b: churned; c: one purchase; d: not pro.
    first = (await api.get("/v1/segments/loyal/members")).json()
    assert (first["count"], first["members"]) == (1, ["a"])

    await api.post("/v1/events", json={"id": "c-9", "profile_id": "c", "name": "purchase"})
    page = (await api.get("/v1/segments/loyal/members", params={"limit": 1, "offset": 1})).json()
    assert (page["count"], page["members"]) == (2, ["c"])
    listed = (await api.get("/v1/segments")).json()["segments"]
    assert [(s["id"], s["name"]) for s in listed] == [("loyal", "Loyal pros")]


async def test_a_bad_rule_is_a_422_with_its_path_and_an_unknown_segment_a_404(api: httpx.AsyncClient) -> None:
    bad = {"name": "x", "rule": {"all": [{"attribute": "age", "op": "before", "value": 3}]}}
    response = await api.put("/v1/segments/bad", json=bad)
    assert response.status_code == 422
    assert response.json()["faults"][0]["path"].startswith("$.rule")
    assert (await api.get("/v1/segments/nope/members")).status_code == 404


async def test_a_stored_rule_that_no_longer_validates_is_named_never_a_500(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    # As migration 0018 leaves `{"op": "greater_than", "value": Infinity}`: the value made null.
    async with store.begin() as conn:
        await segments.put_segment(
            store, conn, tenant.id, "old", "Old", {"attribute": "score", "op": "greater_than", "value": None}
        )
    assert (await api.put("/v1/segments/ok", json={"name": "Ok", "rule": RULE})).status_code == 200
    listed = (await api.get("/v1/segments")).json()
    assert [s["id"] for s in listed["segments"]] == ["ok"]
    [unreadable] = listed["unreadable"]
    assert (unreadable["id"], unreadable["name"]) == ("old", "Old")
    assert "PUT /v1/segments/old" in unreadable["message"]
    members = await api.get("/v1/segments/old/members")
    assert members.status_code == 409, members.text
    assert "no longer validates" in members.json()["message"]
    fixed = {"name": "Old", "rule": {"attribute": "score", "op": "greater_than", "value": 1}}
    assert (await api.put("/v1/segments/old", json=fixed)).status_code == 200
    assert (await api.get("/v1/segments/old/members")).json()["count"] == 0
    assert (await api.get("/v1/segments")).json()["unreadable"] == []


async def test_a_look_back_longer_than_the_calendar_holds_all_of_time(api: httpx.AsyncClient) -> None:
    """``within`` 13,576 years reaches before year 1: the window is all of time, not a 500 (found
    by the OpenAPI fuzzer: ``now - within`` overflowed)."""
    ages = "428433922009s"
    rule = {
        "any": [
            {"event": "purchase", "within": ages},
            {"flow": "welcome", "state": "entered", "within": ages},
        ]
    }
    put = await api.put("/v1/segments/ever", json={"name": "Ever", "rule": rule})
    assert put.status_code == 200, put.text
    event = {"id": "ever-1", "profile_id": "ann", "name": "purchase"}
    assert (await api.post("/v1/events", json=event)).status_code == 202
    members = await api.get("/v1/segments/ever/members")
    assert members.status_code == 200 and members.json()["members"] == ["ann"], members.text
    # The same rule evaluated for one person in memory (a profile's segments).
    profile = await api.get("/v1/profiles/ann")
    assert profile.status_code == 200 and "ever" in profile.json()["segments"], profile.text
