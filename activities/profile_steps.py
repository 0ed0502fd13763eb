"""The activity of the steps that change the person (update_profile, tag, do_not_contact,
start_conversation). Exactly-once per step visit: see flowline/store/profile_changes.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, assert_never

from sqlalchemy.ext.asyncio import AsyncConnection

from activities.bookkeeping import record_end_if_asked, template_context
from flowline import expressions
from flowline.activity_contracts import implements
from flowline.flow.base import ExpressionValue
from flowline.flow.graph import CONTINUE
from flowline.flow.steps import DoNotContactStep, StartConversationStep, TagStep, UpdateProfileStep
from flowline.flow.steps.profile import TemplateValue
from flowline.journey import ProfileStepRequest, StepResult, contracts
from flowline.store import conversations
from flowline.store import profile_changes as changes
from flowline.store.database import Store
from flowline.templates import TemplateError, render_checked, uses_profile_attributes
from launch.routing import JourneyLauncher

# What the path says when the target names nobody.
NOBODY = {"referrer": "no referrer: nothing to update", "friends": "no friends: nothing to update"}


class ProfileStepActivities:
    def __init__(self, store: Store, launcher: JourneyLauncher | None = None) -> None:
        self.store = store
        # Routes the events the changes wrote to the journeys that listen (wait_for_change...).
        self.launcher = launcher

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.profile_step]

    @implements(contracts.profile_step)
    async def profile_step(self, request: ProfileStepRequest) -> StepResult:
        ref, step = request.journey, request.step
        origin = changes.Origin(
            source="flow",
            flow_id=ref.flow_id,
            journey_id=ref.journey_id,
            step_id=step.id,
            visit=request.visit,
        )
        ws, person = ref.workspace_id, ref.profile_id
        # One transaction: the change, its events and (if asked) the journey's end commit together.
        async with self.store.begin() as conn:
            error: str | None = None
            match step:
                case UpdateProfileStep():
                    error = await self._update_profile(conn, request, step, origin)
                case TagStep():
                    await changes.change_tags(
                        self.store, conn, ws, person, origin, add=step.add, remove=step.remove
                    )
                case DoNotContactStep():
                    await changes.change_do_not_contact(
                        self.store,
                        conn,
                        ws,
                        person,
                        origin,
                        action=step.action,
                        channel=step.channel,
                        senders=step.senders,
                    )
                case StartConversationStep():
                    note, error = step.note, None
                    if step.note:
                        context = await template_context(
                            conn, ref, request.scope, load_profile=uses_profile_attributes(step.note)
                        )
                        try:
                            note = render_checked(step.note, context)
                        except TemplateError as failed:
                            # The hand-over matters more than its note: keep the note's source.
                            error = f"note: {failed}"
                    await conversations.start_conversation(
                        self.store, conn, ws, person, origin, tag=step.tag, note=note or None
                    )
                case _:
                    assert_never(step)
            ended = await record_end_if_asked(conn, request.ends_journey, CONTINUE, error)
        if self.launcher is not None:
            # Apart from the change: a retry finds the change made and routes what is still unrouted.
            touched = {person}
            if isinstance(step, UpdateProfileStep):
                async with self.store.connect() as conn:
                    touched |= set(await changes.resolve_targets(conn, ws, person, step.target))
            # Also starts profile_change flows and re-evaluates the touched profiles' segments.
            await self.launcher.route_profiles(ws, sorted(touched))
        return StepResult(branch=CONTINUE, error=error, journey_ended=ended)

    async def _update_profile(
        self,
        conn: AsyncConnection,
        request: ProfileStepRequest,
        step: UpdateProfileStep,
        origin: changes.Origin,
    ) -> str | None:
        """Apply ``set`` to each target; the errors (by attribute) as the path records them."""
        ref = request.journey
        targets = await changes.resolve_targets(conn, ref.workspace_id, ref.profile_id, step.target)
        if not targets:
            return NOBODY[step.target]
        # Lock every target first, in a stable order, so that concurrent journeys cannot deadlock
        # and the person's own attributes are read only once locked.
        rows = {t: await changes.lock_profile(self.store, conn, ref.workspace_id, t) for t in sorted(targets)}
        base = await template_context(conn, ref, request.scope)
        errors: dict[str, str] = {}
        for target_id, row in rows.items():
            context = base | {"target": {**row["attributes"], "id": target_id}}
            values: dict[str, Any] = {}
            for name, value in step.set.items():
                try:
                    values[name] = _evaluate(value, context, request.scope.event)
                except (TemplateError, expressions.ExpressionError) as failed:
                    errors.setdefault(name, str(failed))
            await changes.change_attributes(self.store, conn, ref.workspace_id, target_id, values, origin)
        return "; ".join(f"{name}: {why}" for name, why in errors.items()) or None


def _evaluate(value: Any, context: dict[str, Any], event: dict[str, Any]) -> Any:
    """The value an attribute gets. Expressions see the whole event, as in update_variable."""
    if isinstance(value, TemplateValue):
        return render_checked(value.template, context)
    if isinstance(value, ExpressionValue):
        return expressions.evaluate(value.expression, context | {"event": event})
    return value
