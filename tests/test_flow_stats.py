"""Flow statistics after a real run, checked against what each journey did (its own path)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from flowline.flow.validation import parse_flow
from flowline.journey import JourneyRef, JourneyState, PathEntry
from flowline.stats.report import flow_stats
from flowline.stats.significance import lift, probability_to_beat, rate, z_test_p_value
from flowline.store import journey_steps
from flowline.store import journeys as journey_records
from flowline.store.database import Store
from flowline.store.flow_stats import flow_counts
from flowline.store.tables import deliveries, journeys
from flowline.store.tables import journey_steps as journey_steps_table
from tests.conftest import Tenant, finish
from tests.servers import HttpSink
from tests.test_journeys import publish

PEOPLE = 300


def ab_flow(hook_url: str) -> dict[str, Any]:
    """A split with a control group; each variant calls its webhook, waits a day, then sends."""
    return {
        "id": "ab",
        "name": "A/B",
        "trigger": {"type": "event", "event": "signed_up"},
        "settings": {"goal": {"event": "purchase", "within": "30d"}},
        "steps": [
            {
                "id": "ab",
                "type": "split",
                "variants": [
                    {"name": "a", "weight": 1, "next": "hook_a"},
                    {"name": "b", "weight": 1, "next": "hook_b"},
                ],
                "control": {"weight": 1},
            },
            {"id": "hook_a", "type": "webhook", "url": f"{hook_url}/a", "next": "wait"},
            {"id": "hook_b", "type": "webhook", "url": f"{hook_url}/b", "next": "wait"},
            {"id": "wait", "type": "pause", "for": "1d"},
            {"id": "hi", "type": "send", "channel": "in_app", "content": {"body": "hi"}},
            {"id": "done", "type": "exit"},
        ],
    }


def converts(profile: str) -> bool:
    """Who buys: a rule of the test's own, different for each third of the people."""
    number = int(profile[1:])
    return number % [2, 5, 9][number % 3] == 0


async def states(temporal: WorkflowEnvironment, journey_ids: list[str]) -> dict[str, JourneyState]:
    async def one(journey_id: str) -> JourneyState:
        handle = temporal.client.get_workflow_handle(journey_id)
        return await handle.query("state", result_type=JourneyState)

    found: dict[str, JourneyState] = {}
    for chunk in range(0, len(journey_ids), 50):
        ids = journey_ids[chunk : chunk + 50]
        found.update(zip(ids, await asyncio.gather(*(one(i) for i in ids)), strict=True))
    return found


def expected_steps(walked: dict[str, JourneyState]) -> dict[str, dict[str, Any]]:
    """Per step, from the journeys' own paths: visits, journeys there now, exits by branch, errors."""
    steps: dict[str, dict[str, Any]] = {}
    for state in walked.values():
        for entry in state.path:
            step = steps.setdefault(entry.step, {"entered": 0, "at_step": 0, "left": Counter(), "errors": 0})
            step["entered"] += 1
            step["errors"] += entry.error is not None
            if entry.left_at is None:
                step["at_step"] += state.status == "running"
            else:
                assert entry.branch is not None
                step["left"][entry.branch] += 1
    return steps


async def wait_until_settled(store: Store, workspace: str) -> None:
    """Until every journey has ended or shows in journey_steps at its pause (open visit)."""
    deadline = time.monotonic() + 60
    while True:
        async with store.connect() as conn:
            running = await conn.scalar(
                select(func.count()).where(
                    journeys.c.workspace_id == workspace, journeys.c.status == "running"
                )
            )
            visits = journey_steps_table.c
            at_wait = await conn.scalar(
                select(func.count()).where(
                    visits.workspace_id == workspace, visits.step_id == "wait", visits.left_at.is_(None)
                )
            )
        if running == at_wait:
            return
        assert time.monotonic() < deadline, (running, at_wait)
        await asyncio.sleep(0.2)


def check_stats(stats: dict[str, Any], walked: dict[str, JourneyState], converted: set[str]) -> None:
    [version] = stats["versions"]
    assert version["entered"] == len(walked)
    assert version["running"] == sum(s.status == "running" for s in walked.values())
    exits = Counter((s.status, s.exit_reason) for s in walked.values() if s.status != "running")
    assert {(e["status"], e["reason"]): e["journeys"] for e in version["exits"]} == dict(exits)
    assert version["conversions"] == len(converted)
    assert version["conversion_rate"] == len(converted) / len(walked)

    expected = expected_steps(walked)
    by_id = {s["id"]: s for s in version["steps"]}
    assert [s["id"] for s in version["steps"]] == ["ab", "hook_a", "hook_b", "wait", "hi", "done"]
    for step_id, step in by_id.items():
        want = expected.get(step_id, {"entered": 0, "at_step": 0, "left": {}, "errors": 0})
        got = {k: step[k] for k in ("entered", "at_step", "left", "errors")}
        assert got == {**want, "left": dict(want["left"])}, step_id
    for step_id in ("hook_a", "hook_b", "hi"):
        sent = sum(e.step == step_id and e.branch == "sent" for s in walked.values() for e in s.path)
        assert by_id[step_id]["sends"]["sends"] == sent, step_id
        assert by_id[step_id]["sends"]["failed"] == 0

    # The split: people and conversions per branch, from the split entry of each path.
    branch_of = {jid: next(e.branch for e in s.path if e.step == "ab") for jid, s in walked.items()}
    groups = {
        name: (
            sum(b == name for b in branch_of.values()),
            sum(b == name and jid in converted for jid, b in branch_of.items()),
        )
        for name in ("a", "b", "control")
    }
    split = by_id["ab"]["split"]
    assert split["baseline"] == "control"
    base_people, base_conversions = groups["control"]
    for variant in split["variants"]:
        people, conversions = groups[variant["name"]]
        assert (variant["people"], variant["conversions"]) == (people, conversions)
        assert variant["conversion_rate"] == rate(conversions, people)
        if variant["name"] == "control":
            assert (
                variant["control"] and variant["p_value"] is None and variant["probability_to_beat"] is None
            )
            continue
        assert variant["p_value"] == z_test_p_value(base_conversions, base_people, conversions, people)
        assert variant["probability_to_beat"] == probability_to_beat(
            base_conversions, base_people, conversions, people
        )
        assert variant["lift"] == lift(rate(conversions, people), rate(base_conversions, base_people))
    treated = (groups["a"][0] + groups["b"][0], groups["a"][1] + groups["b"][1])
    assert split["control_lift"] == lift(rate(treated[1], treated[0]), rate(base_conversions, base_people))


async def test_stats_of_several_hundred_journeys_match_their_paths(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    sink: HttpSink,
    store: Store,
    tenant: Tenant,
) -> None:
    sink.fail_first = {"/b"}  # every webhook of variant b fails once: retried, counted once
    await publish(api, ab_flow(sink.url))
    people = [f"p{i}" for i in range(PEOPLE)]
    batch = [{"id": f"s-{p}", "profile_id": p, "name": "signed_up"} for p in people]

    started = await api.post("/v1/events", json=batch)
    assert started.status_code == 202, started.text
    journey_of = dict(zip(people, started.json()["journeys"], strict=True))
    journey_ids = list(journey_of.values())

    await wait_until_settled(store, tenant.id)
    buyers = [p for p in people if converts(p)]
    bought = await api.post(
        "/v1/events", json=[{"id": f"buy-{p}", "profile_id": p, "name": "purchase"} for p in buyers]
    )
    assert bought.status_code == 202, bought.text
    converted = {journey_of[p] for p in buyers}

    walked = await states(temporal, journey_ids)
    running = sum(s.status == "running" for s in walked.values())
    assert 0 < running < PEOPLE, "the variants wait a day, the control group has left"
    stats = (await api.get("/v1/flows/ab/stats")).json()
    check_stats(stats, walked, converted)
    assert stats["versions"][0]["steps"][3]["at_step"] == running

    for journey_id in journey_ids:
        await finish(temporal, journey_id)
    walked = await states(temporal, journey_ids)
    assert all(s.status == "completed" for s in walked.values())
    stats = (await api.get("/v1/flows/ab/stats")).json()
    check_stats(stats, walked, converted)

    # Each variant called its own webhook (its ``next`` leads past the other's); b's were retried.
    left = stats["versions"][0]["steps"][0]["left"]
    for path, variant in (("/a", "a"), ("/b", "b")):
        attempts = Counter(r.headers["Idempotency-Key"] for r in sink.on(path))
        assert len(attempts) == left[variant]
        assert min(attempts.values()) == (2 if variant == "b" else 1)
    assert stats["versions"][0]["steps"][2]["sends"]["sends"] == left["b"]


async def test_counts_from_hand_written_records(store: Store, tenant: Tenant) -> None:
    """Errors, feedback times (delivered, opened, clicked) and the journeys at a step, from rows
    written here: what the journeys above never produce."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    document = parse_flow(ab_flow("http://127.0.0.1:9"))
    async with store.begin() as conn:
        for number, (status, branch) in enumerate([("running", "a"), ("completed", "a"), ("running", "b")]):
            ref = JourneyRef(
                journey_id=f"j{number}-{tenant.id}",
                workspace_id=tenant.id,
                flow_id="ab",
                version=1,
                profile_id=f"p{number}",
            )
            await journey_records.claim_entry(
                store,
                conn,
                journey_id=ref.journey_id,
                workspace_id=tenant.id,
                flow_id="ab",
                version=1,
                profile_id=ref.profile_id,
                lock=f"entry:{number}",
                trigger_event_id=None,
                started_at=t0,
            )
            hook = f"hook_{branch}"
            path = [
                PathEntry(step="ab", type="split", entered_at=t0, left_at=t0, branch=branch),
                PathEntry(step=hook, type="webhook", entered_at=t0, left_at=t0, branch="next", error="503"),
                PathEntry(
                    step="wait", type="pause", entered_at=t0, left_at=None if status == "running" else t0
                ),
            ]
            await journey_steps.record_steps(conn, ref, 0, path)
            feedback = {
                "delivered_at": t0,
                "opened_at": t0 if number < 2 else None,
                "clicked_at": t0 if number == 0 else None,
            }
            await conn.execute(
                deliveries.insert().values(
                    id=f"d{number}-{tenant.id}",
                    workspace_id=tenant.id,
                    idempotency_key=f"{ref.journey_id}/{hook}",
                    journey_id=ref.journey_id,
                    step_id=hook,
                    visit=1,
                    recipient_id=ref.profile_id,
                    channel="webhook",
                    status="sent",
                    created_at=t0,
                    sent_at=t0,
                    **feedback,
                )
            )
        await conn.execute(
            journeys.update()
            .where(journeys.c.id == f"j1-{tenant.id}")
            .values(status="completed", exit_reason="exit_step")
        )
        counts = await flow_counts(conn, tenant.id, "ab")
    [version] = flow_stats("ab", {1: document}, counts).versions
    by_id = {s.id: s for s in version.steps}
    assert (by_id["hook_a"].errors, by_id["hook_a"].left) == (2, {"next": 2})
    assert by_id["hook_a"].sends is not None and by_id["hook_b"].sends is not None
    assert by_id["hook_a"].sends.model_dump() == {
        "sends": 2,
        "deliveries": 2,
        "opens": 2,
        "clicks": 1,
        "failed": 0,
    }
    assert by_id["hook_b"].sends.model_dump() == {
        "sends": 1,
        "deliveries": 1,
        "opens": 0,
        "clicks": 0,
        "failed": 0,
    }
    assert (by_id["wait"].entered, by_id["wait"].at_step, by_id["wait"].left) == (3, 2, {})
    assert (version.entered, version.running) == (3, 2)
    assert [(e.status, e.reason, e.journeys) for e in version.exits] == [("completed", "exit_step", 1)]
    split = by_id["ab"].split
    assert split is not None
    assert [(v.name, v.people) for v in split.variants] == [("a", 2), ("b", 1), ("control", 0)]
    assert all(v.p_value is None for v in split.variants)  # nobody converted: no variance
