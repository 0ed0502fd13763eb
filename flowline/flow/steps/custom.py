"""The ``custom`` step: runs a custom element, configured once and used by many flows.

An element is either declarative (``PUT /v1/elements/{id}``: inputs, an HTTP request template,
saves and outcomes) or code a Python package registers under the entry-point group
``flowline.elements`` (docs/elements.md). The step names the element, gives its ``params`` and
maps the element's outcomes to steps; an outcome without a target goes on to the step listed
next, as a call_api branch does. The catalogue lives in the store, so the params and outcomes are
checked against it where the store is at hand (saving, validating and publishing a flow:
services/elements.py), not here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from flowline.flow.base import VARIABLE_NAME_PATTERN, Identifier, StepBase, StepId
from flowline.flow.template_fields import TemplatedData
from flowline.flow.windows import CallRate, CallWindow

OutcomeKey = Annotated[str, Field(pattern=VARIABLE_NAME_PATTERN)]


class CustomStep(StepBase):
    """Runs ``element`` with ``params`` (strings are Liquid templates over profile, event, vars,
    flow and journey; a string that is exactly ``{{ path }}`` keeps the JSON type of what it
    names). ``next`` is one step for every outcome, or a step per outcome."""

    type: Literal["custom"]
    element: Identifier
    params: TemplatedData = Field(default_factory=dict, max_length=50)
    window: CallWindow | None = None
    rate: CallRate | None = None
    next: StepId | dict[OutcomeKey, StepId] | None = None
