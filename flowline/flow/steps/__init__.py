"""Every step type of the flow language, one module per family, and ``Step``: their union.

- messaging: ``send`` (email, sms, push, in_app: one union by ``channel``), ``notify_internal``
- http: ``webhook``, ``call_api``
- profile: ``update_profile``, ``tag``, ``do_not_contact``, ``start_conversation``,
  ``update_variable``
- control: ``branch``, ``split``, ``add_to_flow``, ``exit``
- export: ``export`` (a record to an export destination)
- waiting: ``pause``, ``wait_for_date``, ``wait_for_event``, ``wait_for_change``
- custom: ``custom`` (a custom element: flowline/elements/)

Every model forbids unknown fields, so a typo in a flow is a fault with a path, not a silently
ignored setting. Adding a step type means adding it to ``Step``; the interpreter's dispatch
(``JourneyInterpreter`` in workflows/) and ``branch_targets`` (flowline/flow/graph.py) are
exhaustive over that union and fail type checking until the new case is handled.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from flowline.flow.steps.control import AddToFlowStep, BranchStep, ExitStep, SplitStep
from flowline.flow.steps.custom import CustomStep
from flowline.flow.steps.export import ExportStep
from flowline.flow.steps.http import CallApiStep, WebhookStep
from flowline.flow.steps.messaging import (
    EmailSendStep,
    InAppSendStep,
    NotifyInternalStep,
    PushSendStep,
    SendStep,
    SendSteps,
    SmsSendStep,
)
from flowline.flow.steps.profile import (
    DoNotContactStep,
    StartConversationStep,
    TagStep,
    UpdateProfileStep,
    UpdateVariableStep,
)
from flowline.flow.steps.waiting import PauseStep, WaitForChangeStep, WaitForDateStep, WaitForEventStep

# The order is the JSON Schema's (and so the OpenAPI document's): append new types at the end.
Step = Annotated[
    PauseStep
    | SendSteps
    | NotifyInternalStep
    | WebhookStep
    | SplitStep
    | BranchStep
    | UpdateVariableStep
    | WaitForDateStep
    | UpdateProfileStep
    | TagStep
    | DoNotContactStep
    | StartConversationStep
    | WaitForEventStep
    | WaitForChangeStep
    | AddToFlowStep
    | CallApiStep
    | ExitStep
    | ExportStep
    | CustomStep,
    Field(discriminator="type"),
]

__all__ = [
    "AddToFlowStep",
    "BranchStep",
    "CallApiStep",
    "CustomStep",
    "DoNotContactStep",
    "EmailSendStep",
    "ExitStep",
    "ExportStep",
    "InAppSendStep",
    "NotifyInternalStep",
    "PauseStep",
    "PushSendStep",
    "SendStep",
    "SendSteps",
    "SmsSendStep",
    "SplitStep",
    "StartConversationStep",
    "Step",
    "TagStep",
    "UpdateProfileStep",
    "UpdateVariableStep",
    "WaitForChangeStep",
    "WaitForDateStep",
    "WaitForEventStep",
    "WebhookStep",
]
