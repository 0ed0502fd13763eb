"""Crash safety: journeys that send webhooks while the worker process is SIGKILLed and restarted,
or while the Temporal server is killed and restarted on its on-disk state. Every journey completes
and the receiver sees each journey's each step exactly once.

Real processes: the dev server (``temporal server start-dev`` on a SQLite file) and ``python
worker.py`` run as OS processes, so a kill is a real kill; the API runs in-process and starts the
journeys from events. Kill moments are random with a fixed seed: a failure reproduces.

Exactly once at the receiver takes the receiver's help: the ledger marks a delivery sent only
after the HTTP answer, so a kill between the receiver's answer and that commit sends again on the
retry, with the same ``Idempotency-Key``. The tests count such repeats and require that a step
never arrives under two keys and never goes missing.
"""

# 400 lines on purpose: each crash point of a journey with the process stack it kills.

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from api.app import create_app
from flowline.channels import webhook
from flowline.journey import JourneyState
from flowline.settings import Settings
from flowline.store import workspaces
from flowline.store.database import Store
from flowline.store.tables import deliveries, journeys
from tests.conftest import Tenant, new_tenant
from tests.processes import DevServer, WorkerProcess
from tests.servers import HttpSink, Received, Reply, http_sink

log = logging.getLogger(__name__)
# Starts its own Temporal server and processes (tests/conftest.py cannot see it): not in `make quick`.
pytestmark = pytest.mark.temporal
SEED = 20261123
STEPS = ("a", "b")


def crash_flow(hook_url: str) -> dict[str, Any]:
    """Event -> webhook a -> 1 s pause (real time on the dev server) -> webhook b -> exit."""
    return {
        "id": "crash",
        "name": "Crash",
        "trigger": {"type": "event", "event": "ordered"},
        "settings": {"reentry": "concurrent"},
        "steps": [
            {"id": "a", "type": "webhook", "url": f"{hook_url}/a", "data": {"who": "{{ profile.id }}"}},
            {"id": "rest", "type": "pause", "for": "1s"},
            {"id": "b", "type": "webhook", "url": f"{hook_url}/b", "data": {"who": "{{ profile.id }}"}},
            {"id": "done", "type": "exit"},
        ],
    }


@dataclass
class Run:
    """Everything a crash test drives, and what it measured."""

    server: DevServer
    worker: WorkerProcess
    client: Client
    api: httpx.AsyncClient
    store: Store
    tenant: Tenant
    sink: HttpSink
    journey_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        log.warning("crash: %s", text)
        self.notes.append(text)

    async def start_journeys(self, first: int, count: int, batch: int = 25, gap: float = 0.0) -> None:
        """``count`` events, each entering one new profile into the flow; a batch the API could
        not route (503, Temporal unreachable) is sent again, as its answer asks."""
        for offset in range(first, first + count, batch):
            events = [
                {"id": f"o-{i}", "profile_id": f"p-{i}", "name": "ordered"}
                for i in range(offset, min(offset + batch, first + count))
            ]
            for attempt in range(120):
                response = await self.api.post("/v1/events", json=events)
                if response.status_code != 503:
                    break
                if attempt == 0:
                    self.note(f"events {offset}..: 503 {response.json()}; sending again")
                await asyncio.sleep(0.5)
            assert response.status_code == 202, response.text
            self.journey_ids += response.json()["journeys"]
            if gap:
                await asyncio.sleep(gap)

    async def in_flight_sends(self) -> int:
        """Ledger rows opened but not closed: webhooks some worker was sending."""
        async with self.store.connect() as conn:
            found = await conn.scalar(
                select(func.count())
                .select_from(deliveries)
                .where(deliveries.c.workspace_id == self.tenant.id, deliveries.c.status == "pending")
            )
        return int(found or 0)

    async def running_journeys(self) -> int:
        async with self.store.connect() as conn:
            found = await conn.scalar(
                select(func.count())
                .select_from(journeys)
                .where(journeys.c.workspace_id == self.tenant.id, journeys.c.status == "running")
            )
        return int(found or 0)

    async def wait_for_all(self, expected: int, patience: float) -> float:
        """Seconds until every journey is recorded as ended (the worker is restarted if it died)."""
        began = time.monotonic()
        while True:
            async with self.store.connect() as conn:
                ended = await conn.scalar(
                    select(func.count())
                    .select_from(journeys)
                    .where(journeys.c.workspace_id == self.tenant.id, journeys.c.status != "running")
                )
            if ended == expected:
                return time.monotonic() - began
            if not self.worker.alive():
                self.note("the worker had exited; restarted")
                self.worker.start()
            assert time.monotonic() - began < patience, f"{ended}/{expected} journeys ended in {patience} s"
            await asyncio.sleep(0.5)

    async def check_exactly_once(self, expected: int) -> Outcome:
        """Every journey completed, and each (journey, step) reached the receiver under exactly one
        idempotency key, the ledger row's id, with a valid signature. Returns the counts."""
        assert len(self.journey_ids) == len(set(self.journey_ids)) == expected
        async with self.store.connect() as conn:
            secret = await workspaces.webhook_secret(conn, self.tenant.id)
            statuses = dict(
                (
                    await conn.execute(
                        select(journeys.c.id, journeys.c.status).where(
                            journeys.c.workspace_id == self.tenant.id
                        )
                    )
                ).all()
            )
            rows = (
                await conn.execute(
                    select(
                        deliveries.c.id,
                        deliveries.c.journey_id,
                        deliveries.c.step_id,
                        deliveries.c.status,
                        deliveries.c.sent_at,
                    ).where(deliveries.c.workspace_id == self.tenant.id)
                )
            ).all()
        ledger = {(row.journey_id, row.step_id): (row.id, row.status) for row in rows}
        assert statuses == dict.fromkeys(self.journey_ids, "completed")
        results = await gather_limited(
            [self.client.get_workflow_handle(j, result_type=JourneyState).result() for j in self.journey_ids]
        )
        assert {r.status for r in results} == {"completed"}
        assert all([p.step for p in r.path] == ["a", "rest", "b", "done"] for r in results)

        keys: dict[tuple[str, str], set[str]] = defaultdict(set)
        requests: dict[tuple[str, str], int] = defaultdict(int)
        for received in self.sink.received:
            assert webhook.verify(
                secret,
                received.body,
                received.headers[webhook.SIGNATURE_HEADER],
                now=int(received.arrived),
            ), received
            body = received.json()
            where = (body["journey"]["id"], body["step"]["id"])
            assert received.path == f"/{where[1]}"
            keys[where].add(received.headers[webhook.IDEMPOTENCY_HEADER])
            requests[where] += 1
        wanted = {(j, s) for j in self.journey_ids for s in STEPS}
        assert set(keys) == wanted, f"missing {len(wanted - set(keys))}, unexpected {len(set(keys) - wanted)}"
        two_keys = {where: found for where, found in keys.items() if len(found) != 1}
        assert not two_keys, f"steps that arrived under more than one key: {two_keys}"
        # The key is the ledger row's id, and the ledger holds that step as sent.
        assert {where: (next(iter(found)), "sent") for where, found in keys.items()} == ledger
        # How long a send stays answered but not yet marked sent (a kill in that window repeats
        # it), and how long after the first request a repeat came (the retry of a killed send).
        arrivals = {key: sorted(r.arrived for r in found) for key, found in by_key(self.sink).items()}
        lags = sorted(row.sent_at.timestamp() - arrivals[row.id][-1] for row in rows)
        gaps = sorted(times[1] - times[0] for times in arrivals.values() if len(times) > 1)
        self.note(f"answer -> ledger 'sent' (s): {spread(lags)}; first request -> repeat (s): {spread(gaps)}")
        outcome = Outcome(
            requests=len(self.sink.received),
            distinct_keys=len(keys),
            same_key_repeats=sum(n - 1 for n in requests.values()),
            repeat_gaps=gaps,
        )
        self.note(
            f"{expected} journeys: {outcome.requests} requests, {outcome.distinct_keys} distinct keys,"
            f" {outcome.same_key_repeats} same-key repeats"
        )
        return outcome


@dataclass
class Outcome:
    requests: int
    distinct_keys: int
    same_key_repeats: int
    repeat_gaps: list[float]


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    median, p95 = values[len(values) // 2], values[int(len(values) * 0.95)]
    return f"median {median:.2f}, p95 {p95:.2f}, max {values[-1]:.2f}"


async def until(condition: Callable[[], bool], patience: float = 60.0) -> None:
    deadline = time.monotonic() + patience
    while not condition():
        assert time.monotonic() < deadline, f"not so within {patience} s"
        await asyncio.sleep(0.02)


def by_key(sink: HttpSink) -> dict[str, list[Received]]:
    found: dict[str, list[Received]] = defaultdict(list)
    for received in sink.received:
        found[received.headers[webhook.IDEMPOTENCY_HEADER]].append(received)
    return found


async def gather_limited(awaitables: list[Any], limit: int = 50) -> list[Any]:
    results: list[Any] = []
    for offset in range(0, len(awaitables), limit):
        results += await asyncio.gather(*awaitables[offset : offset + limit])
    return results


@pytest.fixture
def receiver() -> Iterator[HttpSink]:
    with http_sink() as sink:
        yield sink


@asynccontextmanager
async def crash_run(tmp_path: Path, database_url: str, receiver: HttpSink) -> AsyncIterator[Run]:
    """A dev server on a file, the worker as a process, the API in-process, the flow published."""
    server = DevServer(db_file=tmp_path / "temporal.db", log=tmp_path / "temporal.log")
    await server.start()
    task_queue = f"crash-{uuid.uuid4().hex[:10]}"
    worker = WorkerProcess(database_url, server.address, task_queue, log=tmp_path / "worker.log")
    store = Store(database_url)
    try:
        client = await server.connect()
        tenant = await new_tenant(store)
        worker.start()
        await worker.wait_until_polling()
        settings = Settings(
            database_url=database_url, task_queue=task_queue, data_dir=tmp_path, sweep_seconds=0
        )
        app = create_app(settings, store=store, temporal=client)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            headers = {"Authorization": f"Bearer {tenant.key}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://flowline", headers=headers, timeout=60
            ) as api:
                doc = crash_flow(receiver.url)
                assert (await api.put("/v1/flows/crash", json=doc)).status_code == 200
                assert (await api.post("/v1/flows/crash/publish")).status_code == 200
                yield Run(server, worker, client, api, store, tenant, receiver)
    finally:
        worker.stop()
        server.stop()
        await store.dispose()


async def test_journeys_survive_five_worker_kills(
    tmp_path: Path, database_urls: dict[str, str | None], receiver: HttpSink
) -> None:
    """500 journeys; the worker process is SIGKILLed five times at seeded random moments while
    they run, and restarted at once each time. On SQLite, `make run`'s database, where the window
    between the receiver's answer and the ledger's commit is widest (one writer at a time); the
    same run on PostgreSQL takes twice as long here and is left out of the suite."""
    url = database_urls["sqlite"]
    assert url is not None
    total = 500
    rng = random.Random(SEED)
    began = time.monotonic()
    async with crash_run(tmp_path, url, receiver) as run:
        # Journeys enter over ~25 s, so that the kills find them in every phase.
        starting = asyncio.create_task(run.start_journeys(0, total, batch=20, gap=1.0))
        for kill in range(1, 6):
            await asyncio.sleep(rng.uniform(2.0, 5.0))
            received = len(run.sink.received)
            run.worker.kill()
            in_flight = await run.in_flight_sends()
            running = await run.running_journeys()
            run.worker.start()
            ready = await run.worker.wait_until_polling()
            run.note(
                f"kill {kill} at {time.monotonic() - began:.1f} s: {received} requests received,"
                f" {running} journeys running, {in_flight} sends in flight; polling again in {ready:.1f} s"
            )
        await starting
        after_kills = time.monotonic()
        waited = await run.wait_for_all(total, patience=240)
        run.note(f"all {total} ended {waited:.1f} s after the kills and starts were done")
        outcome = await run.check_exactly_once(total)
    run.note(f"total {time.monotonic() - began:.1f} s (kills done at {after_kills - began:.1f} s)")
    assert outcome.distinct_keys == 2 * total


async def test_a_send_the_worker_dies_in_is_sent_again_under_its_key_within_seconds(
    tmp_path: Path, database_urls: dict[str, str | None], receiver: HttpSink
) -> None:
    """The receiver holds the first request of step ``a`` unanswered; the worker is killed while
    it waits. The retry carries the same key, and comes once the send's heartbeats stop (10 s),
    not after the send's 60 s start-to-close timeout."""
    url = database_urls["sqlite"]
    assert url is not None
    async with crash_run(tmp_path, url, receiver) as run:
        receiver.replies["/a"] = Reply(delay=30)
        await run.start_journeys(0, 1)
        await until(lambda: bool(receiver.on("/a")))
        run.worker.kill()
        killed = time.time()
        del receiver.replies["/a"]
        run.worker.start()
        await run.wait_for_all(1, patience=120)
        outcome = await run.check_exactly_once(1)
    first, again = receiver.on("/a")
    assert first.headers[webhook.IDEMPOTENCY_HEADER] == again.headers[webhook.IDEMPOTENCY_HEADER]
    run.note(f"killed mid-send; sent again {again.arrived - killed:.1f} s after the kill")
    assert again.arrived - killed < 30
    assert (outcome.requests, outcome.same_key_repeats) == (3, 1)


async def test_a_stopping_worker_finishes_the_send_it_is_in(
    tmp_path: Path, database_urls: dict[str, str | None], receiver: HttpSink
) -> None:
    """SIGTERM (a deploy, Ctrl-C) while the receiver takes 1 s to answer step ``a``: the worker
    lets the send finish and be marked sent before it exits, so nothing goes out twice."""
    url = database_urls["sqlite"]
    assert url is not None
    async with crash_run(tmp_path, url, receiver) as run:
        receiver.replies["/a"] = Reply(delay=1)
        await run.start_journeys(0, 1)
        await until(lambda: bool(receiver.on("/a")))
        began = time.monotonic()
        run.worker.stop()
        run.note(f"the worker stopped {time.monotonic() - began:.1f} s after SIGTERM")
        run.worker.start()
        await run.wait_for_all(1, patience=120)
        outcome = await run.check_exactly_once(1)
    assert (outcome.requests, outcome.same_key_repeats) == (2, 0)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_journeys_survive_a_temporal_server_restart(
    tmp_path: Path, database_urls: dict[str, str | None], receiver: HttpSink, database: str
) -> None:
    """50 journeys; the dev server is SIGKILLed while they send and restarted on its file and
    ports. The worker and the API reconnect; journeys started after the restart run too."""
    url = database_urls[database]
    if url is None:
        pytest.skip(str(database_urls["postgresql_reason"]))
    total = 50
    async with crash_run(tmp_path, url, receiver) as run:
        await run.start_journeys(0, total // 2)
        await until(lambda: len(receiver.received) >= total // 4)
        received = len(receiver.received)
        run.server.kill()
        in_flight = await run.in_flight_sends()
        running = await run.running_journeys()
        back = await run.server.start()
        run.note(
            f"server killed: {received} requests received, {running} journeys running,"
            f" {in_flight} sends in flight; serving again in {back:.1f} s;"
            f" worker {'alive' if run.worker.alive() else 'exited'}"
        )
        await run.start_journeys(total // 2, total - total // 2)
        waited = await run.wait_for_all(total, patience=120)
        run.note(f"all {total} ended {waited:.1f} s after the last start; worker starts: {run.worker.starts}")
        outcome = await run.check_exactly_once(total)
    assert run.worker.starts == 1, "the worker should have reconnected by itself"
    assert outcome.distinct_keys == 2 * total
