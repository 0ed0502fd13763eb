"""The steps that change the person, in journeys on the time-skipping server (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities import ProfileStepActivities
from flowline.flow.steps import StartConversationStep, UpdateProfileStep
from flowline.flow.validation import FlowInvalid, parse_flow
from flowline.journey import JourneyRef, JourneyState, ProfileStepRequest, TemplateScope
from flowline.store import conversations, profiles
from flowline.store import profile_changes as changes
from flowline.store.database import Store
from tests.conftest import Tenant, finish
from tests.flows import profile_steps_flow
from tests.test_journeys import publish
from tests.test_profile_changes import API, profile, system_events


def flow(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"id": "f", "name": "F", "trigger": {"type": "flow"}, "steps": list(steps)}


def faults(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document)
    return {f.path: f.message for f in caught.value.faults}


def test_profile_steps_parse_with_defaults_and_keep_their_values() -> None:
    parsed = parse_flow(profile_steps_flow())
    update = parsed.steps[0]
    assert isinstance(update, UpdateProfileStep) and update.target == "self"
    assert parsed.dump()["steps"][0]["set"] == profile_steps_flow()["steps"][0]["set"], "null kept"
    # A mapping other than a lone template or expression is a literal value.
    literal = {"address": {"city": "Berlin", "template": "x"}}
    parsed = parse_flow(flow({"id": "u", "type": "update_profile", "set": literal}))
    assert parsed.dump()["steps"][0]["set"] == literal


def test_profile_step_faults_name_their_path() -> None:
    found = faults(
        flow(
            {
                "id": "u",
                "type": "update_profile",
                "target": "enemy",
                "set": {"a": {"template": "{{ x "}, "b": {"expression": "1 +"}, "c": {"template": 5}},
            },
            {"id": "u2", "type": "update_profile", "set": {}},
            {"id": "t", "type": "tag"},
            {"id": "t2", "type": "tag", "add": ["a"], "remove": ["a"]},
            {"id": "d", "type": "do_not_contact", "action": "block", "channel": "fax", "senders": []},
            {"id": "d2", "type": "do_not_contact", "channel": "email"},
            {"id": "c", "type": "start_conversation", "note": "{% if %}", "queue": "x"},
        )
    )
    assert found["$.steps[0].target"].startswith("Input should be 'self', 'referrer' or 'friends'")
    assert found["$.steps[0].set.a.template"].startswith("not a valid template")
    assert found["$.steps[0].set.b.expression"].startswith("not a valid expression")
    assert found["$.steps[0].set.c.template"] == "Input should be a valid string"
    assert found["$.steps[1].set"].startswith("Dictionary should have at least 1 item")
    assert found["$.steps[2]"] == "a tag step needs tags to 'add' or 'remove'"
    assert found["$.steps[3]"] == "tags both added and removed: a"
    assert found["$.steps[4].action"] == "Input should be 'add' or 'remove'"
    assert found["$.steps[4].channel"].startswith("Input should be 'email', 'sms', 'push', 'in_app' or 'all'")
    assert found["$.steps[4].senders"].startswith("List should have at least 1 item")
    assert found["$.steps[5].action"] == "Field required"
    assert found["$.steps[6].note"].startswith("not a valid template")
    assert found["$.steps[6].queue"] == "unknown field"


def test_profile_steps_continue_to_their_next_step() -> None:
    document = flow(
        {"id": "t", "type": "tag", "add": ["a"], "next": "gone"},
        {"id": "bye", "type": "exit"},
    )
    assert faults(document) == {"$.steps[0].next": "no step has the id 'gone'"}
    document["steps"][0]["next"] = "bye"
    document["steps"].insert(1, {"id": "c", "type": "start_conversation"})
    assert faults(document) == {"$.steps[1]": "step 'c' can never be reached"}


async def start(api: httpx.AsyncClient, temporal: WorkflowEnvironment, person: str) -> JourneyState:
    started = await api.post("/v1/flows/f/journeys", json={"profile_id": person, "variables": {"total": 2}})
    assert started.status_code == 201, started.text
    return await finish(temporal, started.json()["journey_id"])


async def test_each_step_changes_the_person_and_tells_with_an_event(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, profile_steps_flow() | {"id": "f"})
    await api.put("/v1/profiles/ada", json={"attributes": {"first_name": "Ada", "visits": 4, "trial": True}})
    async with store.begin() as conn:
        await changes.change_tags(store, conn, tenant.id, "ada", API, add=["trial"])
    state = await start(api, temporal, "ada")

    assert [(p.step, p.branch, p.error) for p in state.path] == [
        ("update", "next", None),
        ("label", "next", None),
        ("quiet", "next", None),
        ("handover", "next", None),
        ("tell", "sent", None),
        ("bye", "exit", None),
    ]
    ada = await profile(store, tenant, "ada")
    assert ada["attributes"] == {"first_name": "Ada", "plan": "pro", "greeting": "Hi Ada", "visits": 5}
    assert ada["tags"] == ["beta", "vip"]
    assert ada["do_not_contact"] == [{"channel": "email", "sender": "promo"}]
    async with store.connect() as conn:
        [conversation] = await conversations.list_conversations(conn, tenant.id, "ada")
    assert (conversation["tag"], conversation["note"]) == ("vip", "Hi Ada wants help with pro")
    inbox = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert [m["body"] for m in inbox] == ["Hi Ada, visit 5"]

    written = [e for e in await system_events(store, tenant) if e["properties"]["source"] == "flow"]
    assert [e["name"] for e in written] == [
        changes.PROFILE_CHANGED,
        changes.TAGS_CHANGED,
        changes.DO_NOT_CONTACT_CHANGED,
        conversations.CONVERSATION_STARTED,
    ]
    assert written[0]["properties"]["changed"] == {
        "plan": {"from": None, "to": "pro"},
        "greeting": {"from": None, "to": "Hi Ada"},
        "visits": {"from": 4, "to": 5},
        "trial": {"from": True, "to": None},
    }
    journey_id = written[0]["properties"]["journey_id"]
    assert all(
        e["properties"]["flow_id"] == "f" and e["properties"]["journey_id"] == journey_id for e in written
    )
    # The step routed its events to the journeys that listen (none here) once they were written.
    assert all(e["routed_at"] is not None and e["profile_id"] == "ada" for e in written)


REFERRAL_STEPS = [
    {
        "id": "reward",
        "type": "update_profile",
        "target": "referrer",
        "set": {
            "referrals": {"expression": "has(target.referrals) ? target.referrals + 1 : 1"},
            "last_referral": {"template": "{{ profile.first_name }} ({{ target.id }})"},
        },
    },
    {
        "id": "news",
        "type": "update_profile",
        "target": "friends",
        "set": {
            "friend_joined": {"template": "{{ profile.first_name }}"},
            "doubled": {"expression": "vars.total * 2"},
        },
    },
]


async def test_update_profile_reaches_the_referrer_and_every_friend(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, flow(*REFERRAL_STEPS))
    async with store.begin() as conn:
        await profiles.upsert_profile(store, conn, tenant.id, "ada", {"first_name": "Ada"})
        await profiles.upsert_profile(store, conn, tenant.id, "grace", {"referrals": 4})
        await changes.set_referrer(store, conn, tenant.id, "ada", "grace", API)
        await changes.change_friends(store, conn, tenant.id, "ada", API, add=["ken", "linus"])
    state = await start(api, temporal, "ada")

    assert [p.error for p in state.path] == [None, None]
    assert (await profile(store, tenant, "grace"))["attributes"] == {
        "referrals": 5,
        "last_referral": "Ada (grace)",
    }
    for friend in ("ken", "linus"):
        assert (await profile(store, tenant, friend))["attributes"] == {"friend_joined": "Ada", "doubled": 4}
    assert (await profile(store, tenant, "ada"))["attributes"] == {"first_name": "Ada"}
    changed = await system_events(store, tenant, changes.PROFILE_CHANGED)
    assert sorted(e["profile_id"] for e in changed if e["properties"]["source"] == "flow") == [
        "grace",
        "ken",
        "linus",
    ]


async def test_without_referrer_or_friends_nothing_changes_and_the_path_says_so(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, flow(*REFERRAL_STEPS))
    state = await start(api, temporal, "loner")
    assert [(p.step, p.branch, p.error) for p in state.path] == [
        ("reward", "next", "no referrer: nothing to update"),
        ("news", "next", "no friends: nothing to update"),
    ]
    assert await system_events(store, tenant, changes.PROFILE_CHANGED) == []


async def test_a_failing_value_is_recorded_and_the_other_attributes_change(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    values = {
        "ok": "yes",
        "bad": {"expression": "profile.missing + 1"},
        "worse": {"template": "{{ vars.total | divided_by: 0 }}"},  # fails on running, not on saving
        "sum": {"expression": "vars.total + 1"},
    }
    await publish(api, flow({"id": "u", "type": "update_profile", "set": values}))
    state = await start(api, temporal, "ada")
    [entry] = state.path
    assert entry.branch == "next" and entry.error is not None
    assert entry.error.startswith("bad: ") and "; worse: divided_by: can't divide by 0" in entry.error
    assert (await profile(store, tenant, "ada"))["attributes"] == {"ok": "yes", "sum": 3}
    # Only the end followed the step: its activity recorded the end, no local activity did.
    [journey] = (await api.get("/v1/journeys?flow=f")).json()["journeys"]
    assert journey["status"] == "completed"
    history = await temporal.client.get_workflow_handle(journey["id"]).fetch_history()
    markers = [e.marker_recorded_event_attributes.marker_name for e in history.events]
    assert "core_local_activity" not in markers


async def test_a_retried_activity_changes_and_stores_nothing_twice(store: Store, tenant: Tenant) -> None:
    ref = JourneyRef(
        journey_id=f"j-{tenant.id}", workspace_id=tenant.id, flow_id="f", version=1, profile_id="ada"
    )
    async with store.begin() as conn:
        await profiles.upsert_profile(store, conn, tenant.id, "ada", {"n": 1})
    count = UpdateProfileStep(type="update_profile", id="count", set={"n": {"expression": "profile.n + 1"}})
    hand_over = StartConversationStep(type="start_conversation", id="help", note="n={{ profile.n }}")
    env, activities = ActivityEnvironment(), ProfileStepActivities(store)
    for step in (count, hand_over):
        request = ProfileStepRequest(journey=ref, step=step, visit=1, scope=TemplateScope())
        first = await env.run(activities.profile_step, request)
        again = await env.run(activities.profile_step, request)
        assert first == again and first.error is None

    assert (await profile(store, tenant, "ada"))["attributes"] == {"n": 2}
    assert [e["name"] for e in await system_events(store, tenant)] == [
        changes.PROFILE_CHANGED,
        conversations.CONVERSATION_STARTED,
    ]
    async with store.connect() as conn:
        [conversation] = await conversations.list_conversations(conn, tenant.id, "ada")
    assert conversation["note"] == "n=2"
