"""Steps that change what is known: the person (attributes, tags, do-not-contact, a hand-over
to a human agent) and the journey's flow variables.

None of them branches: each continues with its ``next`` (or the step listed after it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, JsonValue, Tag, model_validator

from flowline.flow.base import Expression, ExpressionValue, StepBase, StepId, VariableName
from flowline.flow.template_fields import Template
from flowline.strict import Strict


class TemplateValue(Strict):
    """The attribute becomes the rendered text of a Liquid template."""

    template: Template


def _value_kind(value: Any) -> str:
    # A mapping whose only key is ``template`` or ``expression`` is computed; anything else, null
    # included, is the value itself. (Capitalised tags stay out of validation fault paths.)
    if isinstance(value, TemplateValue) or (isinstance(value, dict) and set(value) == {"template"}):
        return "Template"
    if isinstance(value, ExpressionValue) or (isinstance(value, dict) and set(value) == {"expression"}):
        return "Expression"
    return "Literal"


AttributeValue = Annotated[
    Annotated[TemplateValue, Tag("Template")]
    | Annotated[ExpressionValue, Tag("Expression")]
    | Annotated[JsonValue, Tag("Literal")],
    Discriminator(_value_kind),
]
AttributeName = Annotated[str, Field(min_length=1, max_length=200)]
Target = Literal["self", "referrer", "friends"]


class UpdateProfileStep(StepBase):
    """Sets attributes of the person (``self``), of their referrer, or of each of their friends.

    Each value is a literal, ``{template: ...}``, ``{expression: ...}``, or null to erase.
    Templates and expressions see ``profile`` (the person in the journey), ``target`` (the
    profile being changed), ``event``, ``vars``, ``flow`` and ``journey``. One that fails is
    recorded on the path and skipped; the other attributes still change.
    """

    type: Literal["update_profile"]
    target: Target = "self"
    set: dict[AttributeName, AttributeValue] = Field(min_length=1, max_length=100)
    next: StepId | None = None


TagName = Annotated[str, Field(min_length=1, max_length=200)]


class TagStep(StepBase):
    type: Literal["tag"]
    add: list[TagName] = Field(default_factory=list, max_length=100)
    remove: list[TagName] = Field(default_factory=list, max_length=100)
    next: StepId | None = None

    @model_validator(mode="after")
    def _something_to_do(self) -> TagStep:
        if not self.add and not self.remove:
            raise ValueError("a tag step needs tags to 'add' or 'remove'")
        both = sorted(set(self.add) & set(self.remove))
        if both:
            raise ValueError(f"tags both added and removed: {', '.join(both)}")
        return self


ContactChannel = Literal["email", "sms", "push", "in_app", "all"]
SenderName = Annotated[str, Field(min_length=1, max_length=200)]


class DoNotContactStep(StepBase):
    """``add`` stops messages to the person on ``channel`` (``all``: every channel) from
    ``senders`` (absent: every sender); ``remove`` lifts such entries again."""

    type: Literal["do_not_contact"]
    action: Literal["add", "remove"]
    channel: ContactChannel
    senders: list[SenderName] | None = Field(default=None, min_length=1, max_length=100)
    next: StepId | None = None


class StartConversationStep(StepBase):
    """Hands the person to a human agent: a conversation record and a ``conversation_started``
    event. ``note`` is a Liquid template (it sees what update_profile templates see)."""

    type: Literal["start_conversation"]
    tag: str | None = Field(default=None, min_length=1, max_length=200)
    note: Template = ""
    next: StepId | None = None


class UpdateVariableStep(StepBase):
    """Sets flow variables to the values of CEL expressions over profile, event, vars and flow."""

    type: Literal["update_variable"]
    set: dict[VariableName, Expression] = Field(min_length=1, max_length=50)
    next: StepId | None = None
