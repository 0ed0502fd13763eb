"""Building blocks every step model shares (model.py and the step modules beside it use them)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from flowline.expressions import ExpressionError, check

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
StepId = Identifier


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class StepBase(Strict):
    id: StepId
    name: str | None = Field(default=None, max_length=200)


def _expression(text: str) -> str:
    try:
        return check(text)
    except ExpressionError as error:
        raise ValueError(str(error)) from None


# A CEL expression, compiled when the flow is validated (a fault names its path).
Expression = Annotated[str, Field(min_length=1, max_length=10_000), AfterValidator(_expression)]
VariableName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
