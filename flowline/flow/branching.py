"""The ``branch`` step: ordered rules in the condition language of SPEC §4; the first that holds
for the person at that moment wins, else ``else``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flowline.conditions.rules import MAX_DEPTH, Condition, depth
from flowline.flow.base import Identifier, StepBase, StepId, Strict


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
