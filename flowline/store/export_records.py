"""The export outbox (flowline/exports/): records written beside what they report, claimed in
batches by the batcher, and settled with each record's outcome.

A record is written once: its key (``journey:step:visit[:part]``, ``event:<id>[:part]``) is unique
per destination, so a retried activity or transaction adds nothing. A claim leases records to one
delivery (``claim`` token, ``lease_until``): outcomes are stored only under that token, and a lease
that runs out (the worker died) makes the records due again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, bindparam, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store.database import Store, utcnow
from flowline.store.tables import export_records

Kind = Literal["event", "profile"]
# pending and sending are open; the others are outcomes.
Status = Literal["pending", "sending", "delivered", "rejected", "skipped", "given_up", "unknown"]
OUTCOMES: tuple[Status, ...] = ("delivered", "rejected", "skipped", "given_up", "unknown")
_OPEN = text("export_records.status IN ('pending', 'sending')")  # the partial index's own words


@dataclass(frozen=True)
class NewRecord:
    destination_id: str
    record_key: str
    profile_id: str
    kind: Kind
    name: str | None
    ts: datetime
    data: dict[str, Any]
    flow_id: str | None = None
    version: int | None = None
    step_id: str | None = None
    journey_id: str | None = None
    # A record that cannot be sent is stored settled, so that the flow's stats show why.
    status: Status = "pending"
    message: str | None = None


async def add_records(conn: AsyncConnection, workspace_id: str, records: Sequence[NewRecord]) -> int:
    """Write the records not written yet (by key); returns how many were new."""
    if not records:
        return 0
    now = utcnow()
    rows = [
        {
            "workspace_id": workspace_id,
            "destination_id": r.destination_id,
            "record_key": r.record_key,
            "flow_id": r.flow_id,
            "version": r.version,
            "step_id": r.step_id,
            "journey_id": r.journey_id,
            "profile_id": r.profile_id,
            "kind": r.kind,
            "name": r.name,
            "ts": r.ts,
            "data": r.data,
            "status": r.status,
            "attempts": 0,
            "next_attempt_at": now,
            "message": r.message,
            "created_at": now,
            "updated_at": now,
        }
        for r in records
    ]
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = insert(export_records).on_conflict_do_nothing().returning(export_records.c.id)
    return len((await conn.execute(statement, rows)).all())


@dataclass(frozen=True)
class DueDestination:
    workspace_id: str
    destination_id: str
    records: int
    oldest: datetime


def _due(now: datetime) -> Any:
    t = export_records.c
    return and_(
        _OPEN,
        or_(
            and_(t.status == "pending", t.next_attempt_at <= now),
            and_(t.status == "sending", t.lease_until <= now),
        ),
    )


async def due_destinations(
    conn: AsyncConnection, now: datetime, *, workspace_id: str | None = None
) -> list[DueDestination]:
    """The destinations (of every workspace, or of one) with records due now (pending and due,
    or claimed by a lease that ran out), with how many and when the oldest of them was written."""
    t = export_records.c
    query = (
        select(
            t.workspace_id, t.destination_id, func.count().label("n"), func.min(t.created_at).label("oldest")
        )
        .where(_due(now))
        .group_by(t.workspace_id, t.destination_id)
    )
    if workspace_id is not None:
        query = query.where(t.workspace_id == workspace_id)
    return [
        DueDestination(r.workspace_id, r.destination_id, int(r.n), r.oldest)
        for r in await conn.execute(query)
    ]


@dataclass(frozen=True)
class ClaimedRecord:
    id: int
    record_key: str
    profile_id: str
    kind: Kind
    name: str | None
    ts: datetime
    data: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass
class Claim:
    token: str
    records: list[ClaimedRecord] = field(default_factory=list)


async def claim(
    store: Store,
    conn: AsyncConnection,
    workspace_id: str,
    destination_id: str,
    *,
    limit: int,
    now: datetime,
    lease_until: datetime,
) -> Claim:
    """Lease up to ``limit`` due records of the destination (oldest first) to one delivery.
    PostgreSQL skips rows another claim holds; SQLite has one writer at a time."""
    t = export_records.c
    pick = (
        select(t.id)
        .where(t.workspace_id == workspace_id, t.destination_id == destination_id, _due(now))
        .order_by(t.id)
        .limit(limit)
    )
    if store.dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    token = uuid.uuid4().hex
    statement = (
        export_records.update()
        .where(t.id.in_(pick.scalar_subquery()))
        .values(
            status="sending", lease_until=lease_until, claim=token, attempts=t.attempts + 1, updated_at=now
        )
        .returning(t.id, t.record_key, t.profile_id, t.kind, t.name, t.ts, t.data, t.attempts, t.created_at)
    )
    rows = (await conn.execute(statement)).all()
    records = [
        ClaimedRecord(
            int(r.id), r.record_key, r.profile_id, r.kind, r.name, r.ts, r.data, int(r.attempts), r.created_at
        )
        for r in rows
    ]
    return Claim(token, sorted(records, key=lambda r: r.id))


@dataclass(frozen=True)
class Outcome:
    record_id: int
    status: Status
    code: int | None = None
    message: str | None = None


_SETTLE = (
    export_records.update()
    .where(export_records.c.id == bindparam("rid"), export_records.c.claim == bindparam("token"))
    .values(
        status=bindparam("new_status"),
        code=bindparam("new_code"),
        message=bindparam("new_message"),
        lease_until=None,
        updated_at=bindparam("now"),
    )
)


async def settle(conn: AsyncConnection, token: str, outcomes: Sequence[Outcome]) -> int:
    """Store outcomes of records still held by ``token`` (a delivery whose lease ran out and was
    claimed again stores nothing); returns how many were stored. Delivered records, the common
    case, in one statement."""
    now = utcnow()
    t = export_records.c
    stored = 0
    delivered = [o.record_id for o in outcomes if o.status == "delivered"]
    if delivered:
        result = await conn.execute(
            export_records.update()
            .where(t.id.in_(delivered), t.claim == token)
            .values(status="delivered", lease_until=None, updated_at=now)
        )
        stored += result.rowcount
    others = [
        {
            "rid": o.record_id,
            "token": token,
            "new_status": o.status,
            "new_code": o.code,
            "new_message": o.message,
            "now": now,
        }
        for o in outcomes
        if o.status != "delivered"
    ]
    if others:
        result = await conn.execute(_SETTLE, others)
        stored += result.rowcount
    return stored


async def retry_later(
    conn: AsyncConnection, token: str, record_ids: Sequence[int], at: datetime, message: str
) -> None:
    """Put records back as pending, due at ``at``, with why the attempt failed."""
    if record_ids:
        t = export_records.c
        await conn.execute(
            export_records.update()
            .where(t.id.in_(list(record_ids)), t.claim == token)
            .values(
                status="pending",
                next_attempt_at=at,
                lease_until=None,
                claim=None,
                message=message,
                updated_at=utcnow(),
            )
        )


StepKey = tuple[int, str]  # (version, step id)


async def step_counts(
    conn: AsyncConnection, workspace_id: str, flow_id: str
) -> dict[StepKey, dict[str, int]]:
    """Records of the flow's export steps by status, per (version, step)."""
    t = export_records.c
    query = (
        select(t.version, t.step_id, t.status, func.count().label("n"))
        .where(t.workspace_id == workspace_id, t.flow_id == flow_id)
        .group_by(t.version, t.step_id, t.status)
    )
    counts: dict[StepKey, dict[str, int]] = {}
    for r in await conn.execute(query):
        counts.setdefault((r.version, r.step_id), {})[r.status] = int(r.n)
    return counts


async def list_records(
    conn: AsyncConnection,
    workspace_id: str,
    destination_id: str,
    *,
    status: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The destination's records in the order written (from id ``after``), with their outcomes."""
    t = export_records.c
    query = (
        select(
            t.id,
            t.record_key,
            t.flow_id,
            t.version,
            t.step_id,
            t.journey_id,
            t.profile_id,
            t.kind,
            t.name,
            t.ts,
            t.data,
            t.status,
            t.attempts,
            t.code,
            t.message,
            t.created_at,
            t.updated_at,
        )
        .where(t.workspace_id == workspace_id, t.destination_id == destination_id, t.id > after)
        .order_by(t.id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(t.status == status)
    return [dict(r._mapping) for r in await conn.execute(query)]


async def open_count(conn: AsyncConnection, workspace_id: str | None = None) -> int:
    """Records not settled yet (pending or sending), of one workspace or all."""
    t = export_records.c
    query = select(func.count()).select_from(export_records).where(_OPEN)
    if workspace_id is not None:
        query = query.where(t.workspace_id == workspace_id)
    return int((await conn.execute(query)).scalar_one())


async def forget_person(conn: AsyncConnection, workspace_id: str, profile_id: str) -> None:
    """An erased person's records: their data cleared; those not sent yet are skipped, and a
    delivery holding some stores nothing for them (its claim is dropped)."""
    t = export_records.c
    mine = and_(t.workspace_id == workspace_id, t.profile_id == profile_id)
    now = utcnow()
    await conn.execute(
        export_records.update()
        .where(mine, _OPEN)
        .values(
            status="skipped", message="the person was erased", claim=None, lease_until=None, updated_at=now
        )
    )
    await conn.execute(export_records.update().where(mine).values(data={}, updated_at=now))
