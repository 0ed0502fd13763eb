"""What one journey of the bench flow costs the store, pinned: its SQL statements and transactions.

The flow of ``make bench`` (bench/journeys.py, bench/costs.py): event ``bench_event`` -> in-app send
with a Liquid body -> exit, started by ``POST /v1/events`` for a new person. Every statement the
API and the worker run for it is counted by a listener on the store's engine (both run on it
here), after a first journey warmed the caches (flows, segments, export rules, the API key). Issue
17 cut it from 20 statements in 4 commits and 2 read-only transactions (5 commits on PostgreSQL)
to 14 in 3 commits (bench/RESULTS.md); then API keys stopped being cached (a revoked key is refused
at once, docs/keys.md), which reads the key in a read-only transaction of its own: 15 statements,
3 commits and that read. A change that adds one fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import event
from temporalio.testing import WorkflowEnvironment

from flowline.store import deliveries
from flowline.store.database import Store
from flowline.store.events import JOURNEY_EVENTS
from flowline.store.journeys import get_journey
from tests.conftest import Tenant, finish
from tests.deliveries_for_tests import events_named
from tests.test_journeys import publish

FLOW: dict[str, Any] = {
    "id": "bench-flow",
    "name": "Benchmark flow",
    "trigger": {"type": "event", "event": "bench_event"},
    "steps": [
        {
            "id": "hello",
            "type": "send",
            "channel": "in_app",
            "content": {
                "title": "Welcome",
                "body": "Hello {{ profile.id }}, thanks for {{ event.name }} on the {{ event.plan }} plan.",
            },
            "next": "done",
        },
        {"id": "done", "type": "exit"},
    ],
}

# The journey's statements since issue 17 (bench/RESULTS.md): the API key's lookup; the API's 6 in the ingest
# transaction (routing generation, the person, the journeys that may hear the event, the event,
# the claim, flow_entered) and 2 after the start (the stop check, the event marked routed); the
# send activity's 6 in one transaction (the journey's record, the person, the ledger row, the
# inbox message, message_sent with flow_exited, the path).
STATEMENTS = 15
COMMITS = 3
# The API key's lookup (not cached since revocation is immediate).
READS = 1


@dataclass
class Counted:
    statements: list[str] = field(default_factory=list)
    commits: int = 0
    rollbacks: int = 0


@contextmanager
def counting(store: Store) -> Iterator[Counted]:
    counted = Counted()
    engine = store.engine.sync_engine

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        # Not the journey's: PostgreSQL's ping of a connection that sat idle in the pool.
        if sql.strip().upper() != "SELECT 1":
            counted.statements.append(" ".join(sql.split())[:80])

    def commit(_conn: Any) -> None:
        counted.commits += 1

    def rollback(_conn: Any) -> None:
        counted.rollbacks += 1

    listeners = [("before_cursor_execute", statement), ("commit", commit), ("rollback", rollback)]
    for name, listener in listeners:
        event.listen(engine, name, listener)
    try:
        yield counted
    finally:
        for name, listener in listeners:
            event.remove(engine, name, listener)


async def journey(api: httpx.AsyncClient, temporal: WorkflowEnvironment, n: int) -> str:
    body = {"id": f"e{n}", "profile_id": f"person-{n}", "name": "bench_event", "properties": {"plan": "pro"}}
    response = await api.post("/v1/events", json=body)
    assert response.status_code == 202, response.text
    [journey_id] = response.json()["journeys"]
    state = await finish(temporal, journey_id)
    assert state.status == "completed"
    return str(journey_id)


async def test_a_journey_of_the_bench_flow_costs_at_most_its_pinned_statements(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, store: Store, tenant: Tenant
) -> None:
    await publish(api, FLOW)
    await journey(api, temporal, 0)  # the caches warm up
    with counting(store) as counted:
        journey_id = await journey(api, temporal, 1)
    shown = "\n".join(counted.statements)
    assert len(counted.statements) <= STATEMENTS, f"{len(counted.statements)} statements:\n{shown}"
    assert (counted.commits, counted.rollbacks) == (COMMITS, READS), shown
    # What is stored is what it always was.
    async with store.connect() as conn:
        record = await get_journey(conn, tenant.id, journey_id)
        inbox = await deliveries.list_inbox(conn, tenant.id, "person-1")
    assert record is not None and (record["status"], record["exit_reason"]) == ("completed", "exit_step")
    assert [m["body"] for m in inbox] == ["Hello person-1, thanks for bench_event on the pro plan."]
    for name in sorted(JOURNEY_EVENTS):  # flow_entered, flow_exited, message_sent: once per journey
        assert len(await events_named(store, tenant.id, name)) == 2, name
