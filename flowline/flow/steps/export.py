"""The ``export`` step: a record about the person to an export destination (CleverTap, a webhook).

The journey does not wait for the destination: the step writes its record to the outbox and goes
on (its one way out); a batcher delivers the outbox (flowline/exports/, docs/steps/export.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from flowline.flow.base import ExpressionValue, StepBase, StepId
from flowline.flow.template_fields import Template, TemplatedJson

DestinationId = Annotated[str, Field(min_length=1, max_length=200)]
FieldName = Annotated[str, Field(min_length=1, max_length=200)]


def _value_kind(value: Any) -> str:
    # ``{expression: ...}`` is computed by CEL; any other value is JSON whose strings are Liquid
    # templates (a string without tags renders as itself).
    if isinstance(value, ExpressionValue) or (isinstance(value, dict) and set(value) == {"expression"}):
        return "Expression"
    return "Template"


FieldValue = Annotated[
    Annotated[ExpressionValue, Tag("Expression")] | Annotated[TemplatedJson, Tag("Template")],
    Discriminator(_value_kind),
]


class ExportStep(StepBase):
    """Exports an ``event`` (its name a Liquid template) or a ``profile`` update with ``fields``
    to ``destination``. ``referral: true`` exports the journey's event as GetSocial's pair,
    ``Referred <Event>`` for the person and ``Generated <Event>`` for their referrer, with
    ``fields`` as the events' ``Event Data``. Templates and expressions see profile, event, vars,
    flow and journey."""

    type: Literal["export"]
    destination: DestinationId
    as_: Literal["event", "profile"] = Field(default="event", alias="as")
    event: Template | None = None
    referral: bool = False
    fields: dict[FieldName, FieldValue] = Field(default_factory=dict, max_length=200)
    next: StepId | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ExportStep:
        if self.referral:
            if self.as_ != "event":
                raise ValueError("a referral export is an event ('as: event')")
            if self.event is not None:
                raise ValueError("a referral export is named after the journey's event: no 'event'")
        elif self.as_ == "event" and self.event is None:
            raise ValueError("an event export needs the 'event' name")
        elif self.as_ == "profile":
            if self.event is not None:
                raise ValueError("a profile export has no 'event'")
            if not self.fields:
                raise ValueError("a profile export needs 'fields'")
        return self
