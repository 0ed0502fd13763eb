"""Steps that choose the way: ``branch`` (rules), ``split`` (A/B test), ``add_to_flow`` (hand a
person to another flow) and ``exit``.

``branch`` takes the first rule (the condition language: flowline/conditions/) that holds for
the person at that moment, else ``else``; ``split`` assigns each person one variant by weight,
stably (flowline/flow/experiments.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from flowline.conditions.rules import MAX_DEPTH, Condition, depth
from flowline.flow.base import ExpressionValue, Identifier, StepBase, StepId, VariableName
from flowline.flow.template_fields import Template
from flowline.strict import Strict

# ---------------------------------------------------------------- branch


class BranchRule(Strict):
    name: Identifier
    when: Condition
    # Where this branch goes; None: the step listed after the branch step.
    next: StepId | None = None

    @model_validator(mode="after")
    def _shallow(self) -> BranchRule:
        if depth(self.when) > MAX_DEPTH:
            raise ValueError(f"conditions nest at most {MAX_DEPTH} levels deep")
        return self


class BranchStep(StepBase):
    """Takes the first branch whose condition holds for the person now, else ``else`` (None: the
    step listed after the branch step). Conditions: flowline/conditions/rules.py."""

    type: Literal["branch"]
    branches: list[BranchRule] = Field(min_length=1, max_length=50)
    else_: StepId | None = Field(default=None, alias="else")

    @model_validator(mode="after")
    def _distinct(self) -> BranchStep:
        names = [b.name for b in self.branches]
        if len(set(names)) != len(names):
            raise ValueError("branch names must be distinct")
        if "else" in names:
            raise ValueError("'else' is the branch taken when no condition holds; name the branch otherwise")
        return self


# ---------------------------------------------------------------- split


class SplitVariant(Strict):
    name: Identifier
    weight: float = Field(gt=0, le=1_000_000)
    # Where this variant goes; None: the step listed after the split.
    next: StepId | None = None


class SplitControl(Strict):
    """A hold-out group: it gets none of the variants' messages and leaves (unless ``next``)."""

    weight: float = Field(gt=0, le=1_000_000)
    next: StepId | None = None


class SplitStep(StepBase):
    """A/B test: each person takes one variant (or the control group), by weight, and always the
    same one for the same flow and step, also when re-entering or on a newer version."""

    type: Literal["split"]
    variants: list[SplitVariant] = Field(min_length=1, max_length=26)
    control: SplitControl | None = None

    @model_validator(mode="after")
    def _distinct(self) -> SplitStep:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be distinct")
        if "control" in names:
            raise ValueError("'control' is the control group's branch; name the variant otherwise")
        if len(self.variants) < 2 and self.control is None:
            raise ValueError("a split needs two variants, or one and a control group")
        return self

    def weighted_branches(self) -> list[tuple[str, float]]:
        branches = [(v.name, v.weight) for v in self.variants]
        return [*branches, ("control", self.control.weight)] if self.control else branches


# ---------------------------------------------------------------- add_to_flow


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


class ParticipantSource(Strict):
    """Where the participant's email, phone or id is read: a journey variable or a profile attribute."""

    variable: VariableName | None = None
    attribute: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_source(self) -> ParticipantSource:
        if (self.variable is None) == (self.attribute is None):
            raise ValueError("give either 'variable' or 'attribute'")
        return self


class OtherParticipant(Strict):
    """Another person, found by email, phone or profile id (created with it when not found)."""

    by: Literal["email", "phone", "id"]
    from_: ParticipantSource = Field(alias="from")


class AddToFlowNext(Strict):
    added: StepId | None = None
    failed: StepId | None = None


class AddToFlowStep(StepBase):
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


# ---------------------------------------------------------------- exit


class ExitStep(StepBase):
    type: Literal["exit"]
