"""The local activity of ``export`` steps: the step's records written to the outbox, once per
visit, in one transaction with the journey's end when only the end follows. The batcher
(flowline/exports/batcher.py) delivers them; the journey does not wait for the destination."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from activities.bookkeeping import record_end_if_asked, template_context
from flowline import expressions
from flowline.activity_contracts import implements
from flowline.channels.http_call import render_json
from flowline.flow.base import ExpressionValue
from flowline.flow.graph import CONTINUE
from flowline.flow.steps import ExportStep
from flowline.journey import ExportRequest, StepResult, contracts
from flowline.json_values import value_faults
from flowline.store import profiles
from flowline.store.database import Store
from flowline.store.event_exports import referral_pair
from flowline.store.export_records import NewRecord, add_records
from flowline.templates import TemplateError, render_checked, uses_profile_attributes


class ExportActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.export_record]

    @implements(contracts.export_record)
    async def export_record(self, request: ExportRequest) -> StepResult:
        ref, step = request.journey, request.step
        key = f"{ref.journey_id}:{step.id}:{request.visit}"
        # The record as the step writes it; what it is (event or profile, its name) comes below.
        base = NewRecord(
            step.destination,
            key,
            ref.profile_id,
            step.as_,
            None,
            request.now,
            {},
            flow_id=ref.flow_id,
            version=ref.version,
            step_id=step.id,
            journey_id=ref.journey_id,
        )
        needs_profile = uses_profile_attributes([step.event, step.fields]) or any(
            isinstance(v, ExpressionValue) and "profile" in v.expression for v in step.fields.values()
        )
        async with self.store.begin() as conn:
            context = await template_context(conn, ref, request.scope, load_profile=needs_profile)
            data, errors = evaluate_fields(step, context, request.scope.event)
            records: list[NewRecord] = []
            if step.referral:
                event = request.scope.event
                referrer = await profiles.referrer_of(conn, ref.workspace_id, ref.profile_id)
                if not event.get("name"):
                    errors.append("a referral export needs the journey's event: this journey has none")
                elif referrer is None:
                    errors.append("no referrer: no referral events exported")
                else:
                    referral = replace(base, ts=_event_time(event, request.now), data={"Event Data": data})
                    records = referral_pair(referral, event_name=str(event["name"]), referrer_id=referrer)
            else:
                name: str | None = None
                if step.as_ == "event":
                    name = _event_name(step, context, errors)
                if name is not None or step.as_ == "profile":
                    records = [replace(base, name=name, data=data)]
            await add_records(conn, ref.workspace_id, records)
            error = "; ".join(errors) or None
            ended = await record_end_if_asked(conn, request.ends_journey, CONTINUE, error)
        return StepResult(branch=CONTINUE, error=error, journey_ended=ended)


def evaluate_fields(
    step: ExportStep, context: dict[str, Any], event: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Each field's value; a field that fails is left out and named in the errors (the others are
    exported), as update_profile does with attributes."""
    data: dict[str, Any] = {}
    errors: list[str] = []
    for name, value in step.fields.items():
        try:
            if isinstance(value, ExpressionValue):
                # Expressions see the whole event, as in update_variable.
                found = expressions.evaluate(value.expression, context | {"event": event})
            else:
                found = render_json(value, context)
        except (TemplateError, expressions.ExpressionError) as failed:
            errors.append(f"fields.{name}: {failed}")
            continue
        faults = value_faults(found, path=f"fields.{name}")
        if faults:
            errors.append("; ".join(f"{fault.path}: {fault.message}" for fault in faults))
            continue
        data[name] = found
    return data, errors


def _event_name(step: ExportStep, context: dict[str, Any], errors: list[str]) -> str | None:
    assert step.event is not None  # the model requires it for an event export
    try:
        name = render_checked(step.event, context).strip()
    except TemplateError as failed:
        errors.append(f"event: {failed}")
        return None
    if not name:
        errors.append("event: the name rendered empty: nothing exported")
        return None
    return name[:500]


def _event_time(event: dict[str, Any], otherwise: datetime) -> datetime:
    stamp = event.get("timestamp")
    if isinstance(stamp, str):
        try:
            return datetime.fromisoformat(stamp)
        except ValueError:
            pass
    return otherwise
