"""Building blocks every part of the flow document uses: step ids, times of day, zones, CEL
expressions and the validation context (templates: template_fields.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, ValidationInfo
from pydantic_core import core_schema

from flowline.expressions import ExpressionError, check
from flowline.strict import Strict

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
TIME_OF_DAY_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
VARIABLE_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# What each pattern asks for, in words (validation turns "should match pattern" into these).
PATTERN_MEANINGS = {
    IDENTIFIER_PATTERN: "an id (1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit)",
    TIME_OF_DAY_PATTERN: "a time of day (HH:MM, 00:00 to 23:59)",
    VARIABLE_NAME_PATTERN: "a variable name (1 to 64 letters, digits or '_', not starting with a digit)",
}

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
StepId = Identifier


class Named:
    """Publishes a type (a nested discriminated union) as a JSON Schema definition of its own.

    OpenAPI wants each discriminator mapping value to be a string reference; an inline union
    would be an object there. Validation is unchanged: only the core schema gets a ``ref``.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return {**handler(source), "ref": self.name}


class StepBase(Strict):
    id: StepId
    name: str | None = Field(default=None, max_length=200)


TimeOfDay = Annotated[str, Field(pattern=TIME_OF_DAY_PATTERN, description="HH:MM")]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = Weekday.__args__  # type: ignore[attr-defined]


def check_zone(name: str | None) -> None:
    if name is not None:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None


def _expression(text: str, info: ValidationInfo) -> str:
    try:
        return check(text, functions=strict_templates(info))
    except ExpressionError as error:
        raise ValueError(str(error)) from None


# A CEL expression, compiled when the flow is validated (a fault names its path).
Expression = Annotated[str, Field(min_length=1, max_length=10_000), AfterValidator(_expression)]
VariableName = Annotated[str, Field(pattern=VARIABLE_NAME_PATTERN)]


class ExpressionValue(Strict):
    """A value computed by a CEL expression (any JSON type), where a template would give a string."""

    expression: Expression


# The validation context under which templates must also name only known filters, and CEL
# expressions only known functions: parse_flow (every flow the API saves or publishes) asks for
# it. Flows read back from the store or from a journey's input are validated without it, so a
# journey in flight from before these rules, whose flow has an unknown filter or function, still
# decodes (the step fails at run time, recorded on its path).
STRICT_TEMPLATES = "strict_templates"


def strict_templates(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get(STRICT_TEMPLATES))
