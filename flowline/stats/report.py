"""A flow's statistics as ``GET /v1/flows/{id}/stats`` shows them: counts from the store
(flowline/store/flow_stats.py) laid over each version's steps, with the splits' significance."""

from __future__ import annotations

from pydantic import BaseModel, Field

from flowline.flow.document import FlowDocument
from flowline.flow.graph import CONTROL
from flowline.flow.steps import ExportStep, SendStep, SplitStep, Step, WebhookStep
from flowline.stats.significance import lift, probability_to_beat, rate, z_test_p_value
from flowline.store.flow_stats import BranchPeople, FlowCounts, StepCounts


class Sends(BaseModel):
    """Messages of a send or webhook step (the delivery ledger): ``sends`` were handed over,
    ``deliveries``, ``opens`` and ``clicks`` are what providers reported back. ``failed``: the
    provider refused the message, or took it and reported later that it failed or bounced (such a
    message counts in ``sends`` too)."""

    sends: int = 0
    deliveries: int = 0
    opens: int = 0
    clicks: int = 0
    failed: int = 0


class Exports(BaseModel):
    """Records of an export step (the outbox): ``exported`` were written; each is ``pending``
    until the batcher settles it as ``delivered``, ``rejected`` (the destination refused it, with
    its reason), ``skipped`` (nothing to send: no identity, the destination deleted), ``given_up``
    (the destination could not be reached in time) or ``unknown`` (CleverTap reported failures
    it did not tie to records)."""

    exported: int = 0
    delivered: int = 0
    rejected: int = 0
    pending: int = 0
    skipped: int = 0
    given_up: int = 0
    unknown: int = 0


class VariantResult(BaseModel):
    name: str
    control: bool = False
    people: int
    conversions: int
    conversion_rate: float | None
    lift: float | None = Field(description="relative change of the conversion rate over the baseline")
    p_value: float | None = Field(description="two-sided two-proportion z-test against the baseline")
    probability_to_beat: float | None = Field(
        description="Bayesian probability that this variant converts better than the baseline"
    )


class SplitResult(BaseModel):
    baseline: str = Field(description="'control', or the first variant when the split has no control")
    variants: list[VariantResult]
    control_lift: float | None = Field(
        default=None,
        description="conversion rate of everyone in a variant over the control group's, minus 1",
    )


class StepStats(BaseModel):
    id: str
    type: str
    entered: int = Field(description="visits of the step (a journey may visit a step more than once)")
    at_step: int = Field(description="running journeys there now")
    left: dict[str, int] = Field(description="visits that left the step, by branch")
    errors: int
    sends: Sends | None = None
    exports: Exports | None = None
    split: SplitResult | None = None


class ExitStats(BaseModel):
    status: str
    reason: str | None
    journeys: int


class VersionStats(BaseModel):
    version: int
    entered: int
    running: int
    conversions: int
    conversion_rate: float | None
    exits: list[ExitStats]
    steps: list[StepStats]


class FlowStats(BaseModel):
    flow_id: str
    versions: list[VersionStats]


def flow_stats(flow_id: str, documents: dict[int, FlowDocument], counts: FlowCounts) -> FlowStats:
    versions = sorted(set(documents) | set(counts.exits))
    return FlowStats(flow_id=flow_id, versions=[_version(v, documents.get(v), counts) for v in versions])


def _version(version: int, document: FlowDocument | None, counts: FlowCounts) -> VersionStats:
    ended = counts.exits.get(version, [])
    entered = sum(e.journeys for e in ended)
    conversions = sum(e.conversions for e in ended)
    exits = [
        ExitStats(status=e.status, reason=e.reason, journeys=e.journeys)
        for e in sorted(ended, key=lambda e: (e.status, e.reason or ""))
        if e.status != "running"
    ]
    steps = [] if document is None else [_step(version, step, counts) for step in document.steps]
    return VersionStats(
        version=version,
        entered=entered,
        running=sum(e.journeys for e in ended if e.status == "running"),
        conversions=conversions,
        conversion_rate=rate(conversions, entered),
        exits=exits,
        steps=steps,
    )


def _step(version: int, step: Step, counts: FlowCounts) -> StepStats:
    step_id, step_type = step.id, step.type
    found = counts.steps.get((version, step_id), StepCounts())
    stats = StepStats(
        id=step_id,
        type=step_type,
        entered=found.entered,
        at_step=found.at_step,
        left=dict(sorted(found.left.items())),
        errors=found.errors,
    )
    if isinstance(step, SendStep | WebhookStep):
        sent = counts.sends.get((version, step_id))
        stats.sends = Sends() if sent is None else Sends(**vars(sent))
    if isinstance(step, ExportStep):
        stats.exports = exports_of(counts.exports.get((version, step_id), {}))
    if isinstance(step, SplitStep):
        stats.split = split_result(step, counts.splits.get((version, step_id), {}))
    return stats


def exports_of(by_status: dict[str, int]) -> Exports:
    """The outbox's counts of one step; a record being sent (claimed) is still pending."""
    return Exports(
        exported=sum(by_status.values()),
        delivered=by_status.get("delivered", 0),
        rejected=by_status.get("rejected", 0),
        pending=by_status.get("pending", 0) + by_status.get("sending", 0),
        skipped=by_status.get("skipped", 0),
        given_up=by_status.get("given_up", 0),
        unknown=by_status.get("unknown", 0),
    )


def split_result(step: SplitStep, taken: dict[str, BranchPeople]) -> SplitResult:
    """Each variant (and the control group) against the baseline: the control group, else the
    first variant."""
    names = [v.name for v in step.variants] + ([CONTROL] if step.control is not None else [])
    groups = {name: taken.get(name, BranchPeople(0, 0)) for name in names}
    baseline = CONTROL if step.control is not None else names[0]
    base = groups[baseline]
    base_rate = rate(base.conversions, base.people)
    variants = []
    for name in names:
        group = groups[name]
        own_rate = rate(group.conversions, group.people)
        compared = name != baseline
        variants.append(
            VariantResult(
                name=name,
                control=name == CONTROL,
                people=group.people,
                conversions=group.conversions,
                conversion_rate=own_rate,
                lift=lift(own_rate, base_rate) if compared else None,
                p_value=z_test_p_value(base.conversions, base.people, group.conversions, group.people)
                if compared
                else None,
                probability_to_beat=probability_to_beat(
                    base.conversions, base.people, group.conversions, group.people
                )
                if compared
                else None,
            )
        )
    control_lift = None
    if step.control is not None:
        treated = [groups[v.name] for v in step.variants]
        people, conversions = sum(g.people for g in treated), sum(g.conversions for g in treated)
        control_lift = lift(rate(conversions, people), base_rate)
    return SplitResult(baseline=baseline, variants=variants, control_lift=control_lift)
