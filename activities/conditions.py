"""The local activity behind ``branch`` steps: read the facts a journey's conditions need, then
find the first condition that holds. A read only, so a retry is harmless."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flowline.activity_contracts import implements
from flowline.conditions.evaluate import evaluate, needs
from flowline.flow.graph import ELSE
from flowline.journey import ConditionsRequest, ConditionsResult, contracts
from flowline.store.database import Store
from flowline.store.profile_facts import load_profile_facts


class ConditionActivities:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.evaluate_conditions]

    @implements(contracts.evaluate_conditions)
    async def evaluate_conditions(self, request: ConditionsRequest) -> ConditionsResult:
        """The first condition that holds; none: "else". A condition that cannot be evaluated
        takes "else" with the reason (a database failure is raised instead, and retried)."""
        ref = request.journey
        needed = needs(c.when for c in request.conditions)
        async with self.store.connect() as conn:
            facts = await load_profile_facts(
                conn, ref.workspace_id, ref.profile_id, event_names=needed.events, flow_ids=needed.flows
            )
        for condition in request.conditions:
            try:
                if evaluate(condition.when, facts, request.now):
                    return ConditionsResult(branch=condition.name)
            except Exception as error:
                why = f"{condition.name}: {type(error).__name__}: {error}"
                return ConditionsResult(branch=ELSE, error=why)
        return ConditionsResult(branch=ELSE)
