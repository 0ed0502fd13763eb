"""The flow document: a trigger, settings and steps (flowline/flow/triggers.py, flow_settings.py,
steps/); validation.py turns what users write into one, with faults that name their paths."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowline.flow.base import Identifier
from flowline.flow.flow_settings import FlowSettings
from flowline.flow.steps import Step, WaitForChangeStep, WaitForEventStep
from flowline.flow.steps.waiting import PROFILE_CHANGED
from flowline.flow.triggers import Trigger
from flowline.strict import Strict


class FlowDocument(Strict):
    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    trigger: Trigger
    settings: FlowSettings = Field(default_factory=FlowSettings)
    steps: list[Step] = Field(min_length=1)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def listened_events(self) -> frozenset[str]:
        """The event names a journey of this flow may use while in flight (stop, goal, waits):
        the router signals a journey only the events its flow listens to."""
        names = {match.event for match in self.settings.stop_when}
        if self.settings.goal is not None:
            names.add(self.settings.goal.event)
        for step in self.steps:
            if isinstance(step, WaitForEventStep):
                names.update(condition.event for condition in step.conditions)
            elif isinstance(step, WaitForChangeStep):
                names.add(PROFILE_CHANGED)
        return frozenset(names)

    def dump(self) -> dict[str, Any]:
        """The canonical JSON form (aliases such as ``for``, durations as ``7d``)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=False)


JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def flow_json_schema() -> dict[str, Any]:
    """The flow document's JSON Schema for editors (docs/flow.schema.json, ``flowline schema``):
    the OpenAPI's ``FlowDocument`` component with its definitions under ``$defs``."""
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT}
    schema.update(FlowDocument.model_json_schema(by_alias=True))
    return schema
