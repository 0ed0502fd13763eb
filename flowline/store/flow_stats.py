"""The counts behind a flow's statistics, per version: journeys by how they ended, step visits
(journey_steps), sends and their feedback (deliveries), and who took which branch of a split.

Counting is exact because the rows are: a journey has one record, a visit one row per
(journey, seq), a message one ledger row per (journey, step, visit, recipient), whatever
retries happened. Deliveries and visits are tied to their flow version through the journey.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.store import export_records
from flowline.store.tables import deliveries, journey_steps, journeys

StepKey = tuple[int, str]  # (version, step id)


@dataclass
class StepCounts:
    entered: int = 0
    at_step: int = 0
    errors: int = 0
    left: dict[str, int] = field(default_factory=dict)


@dataclass
class SendCounts:
    sends: int = 0
    deliveries: int = 0
    opens: int = 0
    clicks: int = 0
    failed: int = 0


@dataclass
class ExitCount:
    status: str
    reason: str | None
    journeys: int
    conversions: int


@dataclass
class BranchPeople:
    people: int
    conversions: int


@dataclass
class FlowCounts:
    exits: dict[int, list[ExitCount]] = field(default_factory=dict)
    steps: dict[StepKey, StepCounts] = field(default_factory=dict)
    sends: dict[StepKey, SendCounts] = field(default_factory=dict)
    # (version, split step id) -> branch -> people who took it, and how many of them converted
    splits: dict[StepKey, dict[str, BranchPeople]] = field(default_factory=dict)
    # (version, export step id) -> the outbox's records by status
    exports: dict[StepKey, dict[str, int]] = field(default_factory=dict)


async def flow_counts(conn: AsyncConnection, workspace_id: str, flow_id: str) -> FlowCounts:
    counts = FlowCounts()
    of_flow = and_(journeys.c.workspace_id == workspace_id, journeys.c.flow_id == flow_id)

    ended = await conn.execute(
        select(
            journeys.c.version,
            journeys.c.status,
            journeys.c.exit_reason,
            func.count().label("journeys"),
            func.count(journeys.c.converted_at).label("conversions"),
        )
        .where(of_flow)
        .group_by(journeys.c.version, journeys.c.status, journeys.c.exit_reason)
    )
    for r in ended:
        counts.exits.setdefault(r.version, []).append(
            ExitCount(r.status, r.exit_reason, int(r.journeys), int(r.conversions))
        )

    visits = journey_steps.c
    of_steps = and_(visits.workspace_id == workspace_id, visits.flow_id == flow_id)
    left = await conn.execute(
        select(
            visits.version,
            visits.step_id,
            visits.branch,
            func.count().label("visits"),
            func.count(visits.left_at).label("left"),
            func.count(visits.error).label("errors"),
        )
        .where(of_steps)
        .group_by(visits.version, visits.step_id, visits.branch)
    )
    for r in left:
        step = counts.steps.setdefault((r.version, r.step_id), StepCounts())
        step.entered += int(r.visits)
        step.errors += int(r.errors)
        if r.left and r.branch is not None:
            step.left[r.branch] = step.left.get(r.branch, 0) + int(r.left)

    # At a step: running journeys whose latest recorded visit is still open.
    later = journey_steps.alias("later")
    at_step = await conn.execute(
        select(visits.version, visits.step_id, func.count().label("journeys"))
        .join(journeys, journeys.c.id == visits.journey_id)
        .where(
            of_steps,
            visits.left_at.is_(None),
            journeys.c.status == "running",
            ~select(later.c.seq)
            .where(later.c.journey_id == visits.journey_id, later.c.seq > visits.seq)
            .exists(),
        )
        .group_by(visits.version, visits.step_id)
    )
    for r in at_step:
        counts.steps.setdefault((r.version, r.step_id), StepCounts()).at_step = int(r.journeys)

    # Failed: the provider refused the message (status 'failed'), or took it and a report said it
    # failed or bounced later (the row stays 'sent'; its feedback column tells). One per row.
    d = deliveries.c
    reported = or_(d.failed_at.is_not(None), d.bounced_at.is_not(None))
    failed = or_(d.status == "failed", and_(d.status == "sent", reported))
    sent = await conn.execute(
        select(
            journeys.c.version,
            deliveries.c.step_id,
            func.count(case((deliveries.c.status == "sent", 1))).label("sends"),
            func.count(deliveries.c.delivered_at).label("deliveries"),
            func.count(deliveries.c.opened_at).label("opens"),
            func.count(deliveries.c.clicked_at).label("clicks"),
            func.count(case((failed, 1))).label("failed"),
        )
        .join(journeys, journeys.c.id == deliveries.c.journey_id)
        .where(of_flow, deliveries.c.workspace_id == workspace_id)
        .group_by(journeys.c.version, deliveries.c.step_id)
    )
    for r in sent:
        counts.sends[(r.version, r.step_id)] = SendCounts(
            int(r.sends), int(r.deliveries), int(r.opens), int(r.clicks), int(r.failed)
        )

    converted = case((journeys.c.converted_at.is_not(None), visits.journey_id))
    split = await conn.execute(
        select(
            visits.version,
            visits.step_id,
            visits.branch,
            func.count(func.distinct(visits.journey_id)).label("people"),
            func.count(func.distinct(converted)).label("conversions"),
        )
        .join(journeys, journeys.c.id == visits.journey_id)
        .where(of_steps, visits.step_type == "split", visits.branch.is_not(None))
        .group_by(visits.version, visits.step_id, visits.branch)
    )
    for r in split:
        counts.splits.setdefault((r.version, r.step_id), {})[r.branch] = BranchPeople(
            int(r.people), int(r.conversions)
        )
    counts.exports = await export_records.step_counts(conn, workspace_id, flow_id)
    return counts
