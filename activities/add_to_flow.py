"""The add_to_flow step: start a journey of a running flow for this person or another one.

Idempotent: the started journey's entry is the calling journey, step and visit, so its id is
fixed (``journey_id`` is deterministic) and a retried activity finds the journey it started.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from liquid.exceptions import LiquidError
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio import activity

from activities.bookkeeping import template_context
from flowline import expressions
from flowline.activity_contracts import implements
from flowline.flow.base import ExpressionValue
from flowline.flow.graph import ADDED, FAILED
from flowline.journey import AddToFlowRequest, StepResult, contracts, journey_id
from flowline.store import flows, journeys, profiles
from flowline.store.database import Store
from flowline.store.flows import PublishedFlow
from flowline.store.tables import ID
from flowline.templates import render, uses_profile_attributes
from launch.journey_start import EntryRefused
from launch.routing import JourneyLauncher


class NotAdded(Exception):
    """Why the person cannot be added: the step takes its ``failed`` branch with this reason."""


class FlowActivities:
    def __init__(self, store: Store, launcher: JourneyLauncher) -> None:
        self.store = store
        self.launcher = launcher

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.add_to_flow]

    @implements(contracts.add_to_flow)
    async def add_to_flow(self, request: AddToFlowRequest) -> StepResult:
        ref = request.journey
        try:
            async with self.store.begin() as conn:
                target = await _running_flow(conn, ref.workspace_id, request.flow)
                reads_profile = _reads_profile(request)
                context = await template_context(conn, ref, request.scope, load_profile=reads_profile)
                variables = _variables(request, context)
                # Last: it may create the participant, which only makes sense if the rest holds.
                profile_id = await self._participant(conn, request, context)
        except NotAdded as reason:
            return StepResult(branch=FAILED, error=str(reason))

        entry = f"add_to_flow:{ref.journey_id}:{request.step_id}:{request.visit}"
        try:
            started = await self.launcher.start(
                ref.workspace_id, target, profile_id, entry=entry, variables=variables
            )
        except EntryRefused as closed:
            # Outside the target's entry window, or variables that do not fit its declarations.
            detail = "; ".join(f"{path}: {message}" for path, message in closed.faults)
            return StepResult(branch=FAILED, error=f"{closed}{': ' + detail if detail else ''}")
        if started is None:
            # Either an earlier attempt of this activity started it, or the re-entry rule refuses.
            expected = journey_id(ref.workspace_id, target.flow_id, profile_id, entry)
            async with self.store.connect() as conn:
                if await journeys.get_journey(conn, ref.workspace_id, expected) is None:
                    refused = f"the re-entry rule of flow {target.flow_id!r} keeps profile {profile_id!r} out"
                    return StepResult(branch=FAILED, error=refused)
            started = expected
        return StepResult(branch=ADDED, started_journey=started)

    async def _participant(
        self, conn: AsyncConnection, request: AddToFlowRequest, context: dict[str, Any]
    ) -> str:
        """The profile to add: the journey's own, or one found (or created) by email, phone or id."""
        who = request.participant
        if who is None:
            return request.journey.profile_id
        source = who.from_
        if source.variable is not None:
            where, raw = f"variable {source.variable!r}", context["vars"].get(source.variable)
        else:
            where, raw = f"profile attribute {source.attribute!r}", context["profile"].get(source.attribute)
        value = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
        if not value:
            raise NotAdded(f"no participant value: {where} holds no {who.by}")
        workspace_id = request.journey.workspace_id
        if who.by == "id":
            if len(value) > ID:
                raise NotAdded(f"no participant value: {where} is too long for a profile id")
            await profiles.ensure_profiles(self.store, conn, workspace_id, [value])
            return value
        found = await profiles.find_by_contact(conn, workspace_id, who.by, value)
        if found is not None:
            return found
        new_id = profiles.contact_profile_id(workspace_id, who.by, value)
        await profiles.upsert_profile(self.store, conn, workspace_id, new_id, {who.by: value})
        activity.logger.info("add_to_flow created profile %s for a new %s", new_id, who.by)
        return new_id


async def _running_flow(conn: AsyncConnection, workspace_id: str, flow_id: str) -> PublishedFlow:
    row = await flows.get_flow(conn, workspace_id, flow_id)
    if row is None:
        raise NotAdded(f"flow {flow_id!r} does not exist")
    if row["status"] != "running":
        raise NotAdded(f"flow {flow_id!r} is {row['status']}, not running")
    published = await flows.current_version(conn, workspace_id, flow_id)
    if published is None:
        raise NotAdded(f"flow {flow_id!r} has no published version")
    return published


def _reads_profile(request: AddToFlowRequest) -> bool:
    if request.participant is not None and request.participant.from_.attribute is not None:
        return True
    values = request.variables.values()
    return uses_profile_attributes([v for v in values if isinstance(v, str)]) or any(
        "profile" in v.expression for v in values if isinstance(v, ExpressionValue)
    )


def _variables(request: AddToFlowRequest, context: dict[str, Any]) -> dict[str, Any]:
    """The values to pass: templates rendered, expressions evaluated, literals as they are."""
    values: dict[str, Any] = {}
    errors = []
    # Expressions see the whole event (name, properties, ...), as in update_variable.
    expression_context = {**context, "event": request.scope.event}
    for name, value in request.variables.items():
        try:
            if isinstance(value, ExpressionValue):
                values[name] = expressions.evaluate(value.expression, expression_context)
            elif isinstance(value, str):
                values[name] = render(value, context)
            else:
                values[name] = value
        except (expressions.ExpressionError, LiquidError) as error:
            errors.append(f"variable {name}: {error}")
    if errors:
        raise NotAdded("; ".join(errors))
    return values
