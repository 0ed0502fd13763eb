"""``add_to_flow``: a journey hands its person (or another) to another flow, with variables."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from flowline.flow.base import ExpressionValue, Identifier, StepId, Template, VariableName
from flowline.flow.base import StepBase as _StepBase
from flowline.flow.base import Strict as _Strict


def _value_kind(value: Any) -> str | None:
    if isinstance(value, dict | ExpressionValue):
        return "Expression"
    if isinstance(value, bool):
        return "Flag"
    if isinstance(value, int | float):
        return "Number"
    return "Template" if isinstance(value, str) else None


# A value passed to another flow: a Liquid template (a string), a number, true/false, or
# {expression: CEL} for any other value (null, lists, maps, numbers computed from variables).
# Tagged by the value's own type, so a fault names what was wrong, not every kind it is not.
PassedValue = Annotated[
    Annotated[Template, Tag("Template")]
    | Annotated[bool, Tag("Flag")]
    | Annotated[int | float, Tag("Number")]
    | Annotated[ExpressionValue, Tag("Expression")],
    Discriminator(
        _value_kind,
        custom_error_type="passed_value",
        custom_error_message="a value is a template (string), a number, true/false or {expression: ...}",
    ),
]


class ParticipantSource(_Strict):
    """Where the participant's email, phone or id is read: a journey variable or a profile attribute."""

    variable: VariableName | None = None
    attribute: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_source(self) -> ParticipantSource:
        if (self.variable is None) == (self.attribute is None):
            raise ValueError("give either 'variable' or 'attribute'")
        return self


class OtherParticipant(_Strict):
    """Another person, found by email, phone or profile id (created with it when not found)."""

    by: Literal["email", "phone", "id"]
    from_: ParticipantSource = Field(alias="from")


class AddToFlowNext(_Strict):
    added: StepId | None = None
    failed: StepId | None = None


class AddToFlowStep(_StepBase):
    """Starts a journey of another running flow (or this one) for this person or another, with
    ``variables``; ``then: exit`` ends this journey once the person is added. ``failed`` is taken
    in all other cases (the flow is not running, the re-entry rule refuses, no participant)."""

    type: Literal["add_to_flow"]
    flow: Identifier
    variables: dict[VariableName, PassedValue] = Field(default_factory=dict, max_length=50)
    participant: Annotated[
        Annotated[Literal["self"], Tag("Self")] | Annotated[OtherParticipant, Tag("Other")],
        Discriminator(lambda v: "Self" if isinstance(v, str) else "Other"),
    ] = "self"
    then: Literal["continue", "exit"] = "continue"
    next: StepId | AddToFlowNext | None = None

    @model_validator(mode="after")
    def _exit_has_no_added_branch(self) -> AddToFlowStep:
        if self.then == "exit" and (
            isinstance(self.next, str) or (self.next is not None and self.next.added is not None)
        ):
            raise ValueError("with 'then: exit' the journey ends once added: give only 'next.failed'")
        return self
