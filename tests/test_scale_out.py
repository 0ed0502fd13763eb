"""Flowline on many processes, as production runs it: two API processes and two workers (separate
OS processes) on one PostgreSQL database and one Temporal dev server.

Events go round-robin to both APIs, each event to both at once too, and several entries of one
person at once under each re-entry rule; a flow is published through one API and triggered through
the other; one worker is SIGKILLed while journeys run. The checks: one journey per entry as each
rule says, one in-app message per journey and one webhook request per journey (the ledger and
Idempotency-Key), every event routed exactly once (a trigger counts the updates of ``routed_at``)
although both APIs sweep every half second, and one segment clock and one audience schedule whose
run starts each member once. docs/operations.md ("Running many processes") tells the caches.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from temporalio.client import Client, WorkflowExecutionStatus

from flowline.segment_clock import SCHEDULE_ID
from flowline.store.database import Store
from flowline.store.tables import deliveries, events, inbox_messages, journeys
from launch.entry_schedules import schedule_id
from tests.conftest import new_tenant
from tests.processes import DevServer, WorkerProcess, api_process, ready
from tests.servers import HttpSink, free_port, http_sink

pytestmark = pytest.mark.temporal
PEOPLE = 30


@dataclass
class Cluster:
    apis: list[httpx.AsyncClient]
    workers: list[WorkerProcess]
    client: Client
    tmp_path: Path


@asynccontextmanager
async def cluster(database_url: str, tmp_path: Path, key: str) -> AsyncIterator[Cluster]:
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log")
    await server.start()
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    env = dict(os.environ)
    env.update(
        FLOWLINE_DATABASE_URL=database_url,
        FLOWLINE_TEMPORAL_ADDRESS=server.address,
        FLOWLINE_TASK_QUEUE=task_queue,
        FLOWLINE_DATA_DIR=str(tmp_path),
        # Both sweepers run every half second and route the engine's events after one: their
        # sweeps coincide all the time (the clients' events wait the default 30 s).
        FLOWLINE_SWEEP_SECONDS="0.5",
        FLOWLINE_SWEEP_ENGINE_AFTER_SECONDS="1",
    )
    workers = [
        WorkerProcess(database_url, server.address, task_queue, tmp_path / f"worker-{n}.log") for n in (1, 2)
    ]
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with AsyncExitStack() as stack:
            urls = [
                stack.enter_context(api_process(env, free_port(), tmp_path / f"api-{n}.log")) for n in (1, 2)
            ]
            for worker in workers:
                worker.start()
            await asyncio.gather(*(ready(u) for u in urls), *(w.wait_until_polling() for w in workers))
            apis = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=u, headers=headers, timeout=60))
                for u in urls
            ]
            yield Cluster(apis, workers, await server.connect(), tmp_path)
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


def flow(flow_id: str, event: str, reentry: str, hook: str) -> dict[str, Any]:
    """An in-app message, a pause (the window in which a worker dies), a webhook."""
    return {
        "id": flow_id,
        "name": flow_id,
        "trigger": {"type": "event", "event": event},
        "settings": {"reentry": reentry},
        "steps": [
            {"id": "hello", "type": "send", "channel": "in_app", "content": {"body": "hi"}},
            {"id": "wait", "type": "pause", "for": "10s"},
            {
                "id": "notify",
                "type": "webhook",
                "url": f"{hook}/{flow_id}",
                "data": {"who": "{{ profile.id }}"},
            },
            {"id": "done", "type": "exit"},
        ],
    }


def audience_flow() -> dict[str, Any]:
    return {
        "id": "campaign",
        "name": "Campaign",
        "trigger": {"type": "audience", "segment": "pros", "schedule": {"every": "1d"}},
        "settings": {"reentry": "concurrent"},
        "steps": [{"id": "hello", "type": "send", "channel": "in_app", "content": {"body": "news"}}],
    }


async def post_event(api: httpx.AsyncClient, event_id: str, person: str, name: str) -> None:
    answer = await api.post("/v1/events", json={"id": event_id, "profile_id": person, "name": name})
    assert answer.status_code == 202, answer.text


async def count_routings(store: Store, workspace_id: str) -> None:
    """A trigger that records every update of an event's ``routed_at`` in this workspace."""
    async with store.begin() as conn:
        await conn.execute(
            text("CREATE TABLE IF NOT EXISTS scale_out_routings (event_id text, at timestamptz)")
        )
        await conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION scale_out_routed() RETURNS trigger AS $$ BEGIN "
                "INSERT INTO scale_out_routings VALUES (NEW.id, now()); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER scale_out_routed AFTER UPDATE OF routed_at ON events FOR EACH ROW "
                f"WHEN (NEW.workspace_id = '{workspace_id}' AND NEW.routed_at IS NOT NULL) "
                "EXECUTE FUNCTION scale_out_routed()"
            )
        )


async def drop_routing_count(store: Store) -> None:
    async with store.begin() as conn:
        await conn.execute(text("DROP TRIGGER IF EXISTS scale_out_routed ON events"))
        await conn.execute(text("DROP FUNCTION IF EXISTS scale_out_routed()"))
        await conn.execute(text("DROP TABLE IF EXISTS scale_out_routings"))


async def settle(store: Store, workspace_id: str, patience: float = 120.0) -> None:
    """Until no event of the workspace waits for routing (the sweepers route the engine's)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        async with store.connect() as conn:
            left = await conn.scalar(
                select(func.count()).where(
                    events.c.workspace_id == workspace_id, events.c.routed_at.is_(None)
                )
            )
        if left == 0:
            return
        assert loop.time() < deadline, f"{left} events still unrouted"
        await asyncio.sleep(0.5)


async def test_two_apis_and_two_workers_do_each_piece_of_work_once(
    database_urls: dict[str, str | None], tmp_path: Path
) -> None:
    url = database_urls["postgresql"]
    if url is None:
        pytest.skip(str(database_urls["postgresql_reason"]))
    store = Store(url)
    tenant = await new_tenant(store)
    await count_routings(store, tenant.id)
    try:
        with http_sink() as sink:
            async with cluster(url, tmp_path, tenant.key) as c:
                await _exercise(c, store, tenant.id, sink)
    finally:
        await drop_routing_count(store)
        await store.dispose()


async def _exercise(c: Cluster, store: Store, workspace_id: str, sink: HttpSink) -> None:
    a, b = c.apis
    rules = {"never": "joined", "after_exit": "visited", "concurrent": "clicked"}
    # Published through A, triggered through B at once (B never saw the flows).
    for rule, event in rules.items():
        assert (await a.put(f"/v1/flows/{rule}", json=flow(rule, event, rule, sink.url))).status_code == 200
        assert (await a.post(f"/v1/flows/{rule}/publish")).status_code == 200
    people = [f"p{n}" for n in range(PEOPLE)]

    sends = []
    for n, person in enumerate(people):
        for rule, event in rules.items():
            # The same event to both APIs at once: one entry.
            sends += [post_event(api, f"{rule}-{person}-1", person, event) for api in (a, b)]
            # A second entry of the same person at once, round-robin: never and after_exit
            # (the first journey still runs) refuse it; concurrent takes it.
            sends.append(post_event(c.apis[n % 2], f"{rule}-{person}-2", person, event))
    await asyncio.gather(*sends)

    # A worker dies while the journeys pause (their in-app messages are out, their webhooks not).
    c.workers[0].kill()

    async with store.connect() as conn:
        rows = (
            await conn.execute(
                select(journeys.c.id, journeys.c.flow_id, journeys.c.profile_id).where(
                    journeys.c.workspace_id == workspace_id
                )
            )
        ).all()
    per_entry = Counter((r.flow_id, r.profile_id) for r in rows)
    assert {k: v for k, v in per_entry.items() if k[0] != "concurrent"} == {
        (rule, p): 1 for rule in ("never", "after_exit") for p in people
    }
    assert {k: v for k, v in per_entry.items() if k[0] == "concurrent"} == {
        ("concurrent", p): 2 for p in people
    }

    for row in rows:
        handle = c.client.get_workflow_handle(row.id)
        await asyncio.wait_for(handle.result(), timeout=180)
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    # One in-app message per journey (the ledger), one webhook per journey: a webhook the killed
    # worker was sending is sent again under the same Idempotency-Key and body (on a loaded
    # machine the first pauses can end before the kill), which a receiver takes as one.
    async with store.connect() as conn:
        messages = Counter(
            (
                await conn.execute(
                    select(deliveries.c.journey_id)
                    .join(inbox_messages, inbox_messages.c.delivery_id == deliveries.c.id)
                    .where(deliveries.c.workspace_id == workspace_id)
                )
            ).scalars()
        )
    assert messages == {r.id: 1 for r in rows}
    bodies: dict[str, set[bytes]] = {}
    for request in sink.received:
        bodies.setdefault(request.headers["Idempotency-Key"], set()).add(request.body)
    assert len(bodies) == len(rows) and all(len(b) == 1 for b in bodies.values())
    assert len(sink.received) - len(rows) <= len(rows) // 2  # retries of the killed worker's only

    # Every event (the clients' and the engine's flow_entered / flow_exited / message_sent) routed,
    # each exactly once, although the two sweepers ran every half second all along.
    await settle(store, workspace_id)
    async with store.connect() as conn:
        routed = Counter((await conn.execute(text("SELECT event_id FROM scale_out_routings"))).scalars())
        stored = await conn.scalar(select(func.count()).where(events.c.workspace_id == workspace_id))
    assert len(routed) == stored and stored > len(rules) * PEOPLE * 2
    assert [e for e, n in routed.items() if n > 1] == []

    # One segment clock for both workers; one audience schedule, published through A and
    # republished through B, whose run starts each member of the segment once.
    clock = await c.client.get_schedule_handle(SCHEDULE_ID).describe()
    assert clock.id == SCHEDULE_ID
    pro = {"attribute": "plan", "op": "is", "value": "pro"}
    assert (await b.put("/v1/segments/pros", json={"name": "Pros", "rule": pro})).status_code == 200
    members = people[:5]
    for person in members:
        assert (
            await a.put(f"/v1/profiles/{person}", json={"attributes": {"plan": "pro"}})
        ).status_code == 200
    assert (await a.put("/v1/flows/campaign", json=audience_flow())).status_code == 200
    assert (await a.post("/v1/flows/campaign/publish")).status_code == 200
    republished = await b.post("/v1/flows/campaign/publish")
    assert republished.status_code == 200, republished.text
    schedule = c.client.get_schedule_handle(schedule_id(workspace_id, "campaign"))
    await schedule.trigger()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        async with store.connect() as conn:
            started = Counter(
                (
                    await conn.execute(
                        select(journeys.c.profile_id).where(
                            journeys.c.workspace_id == workspace_id, journeys.c.flow_id == "campaign"
                        )
                    )
                ).scalars()
            )
        if sum(started.values()) >= len(members) or loop.time() > deadline:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)  # a second run, were there one, would have started its journeys by now
    assert started == {p: 1 for p in members}
    assert (await schedule.describe()).info.num_actions == 1
