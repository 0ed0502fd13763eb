"""The activities a journey calls, as typed references: workflow code passes these stubs to
``workflow.execute_activity`` / ``execute_local_activity``, so mypy ties each request to its
activity and result, and the SDK reads the result's type from the stub.

The stubs hold no code and this module imports no I/O: the workflow imports it, the worker runs
the implementations in activities/, each declared with ``@implements(<stub>)``
(flowline/activity_contracts.py: the same name, request and result; tests/test_activity_contracts.py
checks every one is registered). The names
are recorded in histories: never change one.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from temporalio import activity

from flowline.journey.requests import (
    AddToFlowRequest,
    CallApiRequest,
    CallApiResult,
    CallSlot,
    CallSlotRequest,
    ConditionsRequest,
    ConditionsResult,
    CustomElementRequest,
    CustomElementResult,
    EventsFound,
    EventsRequest,
    ExportRequest,
    ExpressionsRequest,
    ExpressionsResult,
    JourneyEnd,
    JourneyMoved,
    JourneyRef,
    JourneySteps,
    NotifyRequest,
    ProfileAttributes,
    ProfileAttributesRequest,
    ProfileStepRequest,
    SendInAppRequest,
    SendRequest,
    StepResult,
    WebhookRequest,
)

# ---------------------------------------------------------------- steps (activities)


@activity.defn(name="send_message")
async def send_message(request: SendRequest) -> StepResult:
    """A send step's message to each recipient, once (the delivery ledger)."""
    raise NotImplementedError


@activity.defn(name="send_in_app")
async def send_in_app(request: SendInAppRequest) -> StepResult:
    """An in-app message of a journey from before send-channels-v1."""
    raise NotImplementedError


@activity.defn(name="notify_internal")
async def notify_internal(request: NotifyRequest) -> StepResult:
    raise NotImplementedError


@activity.defn(name="deliver_webhook")
async def deliver_webhook(request: WebhookRequest) -> StepResult:
    raise NotImplementedError


@activity.defn(name="profile_step")
async def profile_step(request: ProfileStepRequest) -> StepResult:
    """update_profile, tag, do_not_contact, start_conversation: exactly once per visit."""
    raise NotImplementedError


@activity.defn(name="export_record")
async def export_record(request: ExportRequest) -> StepResult:
    """An export step's records written to the outbox, exactly once per visit (a local activity:
    the destination is not waited for, a batcher delivers the outbox)."""
    raise NotImplementedError


@activity.defn(name="add_to_flow")
async def add_to_flow(request: AddToFlowRequest) -> StepResult:
    raise NotImplementedError


@activity.defn(name="call_api")
async def call_api(request: CallApiRequest) -> CallApiResult:
    raise NotImplementedError


@activity.defn(name="run_custom_element")
async def run_custom_element(request: CustomElementRequest) -> CustomElementResult:
    """A custom step: its element's request (declarative) or function (code), and the outcome."""
    raise NotImplementedError


# ---------------------------------------------------------------- reads and bookkeeping (local)


@activity.defn(name="reserve_call_slot")
async def reserve_call_slot(request: CallSlotRequest) -> CallSlot:
    raise NotImplementedError


@activity.defn(name="profile_time_zone")
async def profile_time_zone(ref: JourneyRef) -> str:
    """The person's zone: their ``timezone`` attribute, else the workspace's ("" if neither)."""
    raise NotImplementedError


@activity.defn(name="profile_attributes")
async def profile_attributes(request: ProfileAttributesRequest) -> ProfileAttributes:
    raise NotImplementedError


@activity.defn(name="evaluate_expressions")
async def evaluate_expressions(request: ExpressionsRequest) -> ExpressionsResult:
    raise NotImplementedError


@activity.defn(name="evaluate_conditions")
async def evaluate_conditions(request: ConditionsRequest) -> ConditionsResult:
    raise NotImplementedError


@activity.defn(name="events_since")
async def events_since(request: EventsRequest) -> EventsFound:
    raise NotImplementedError


@activity.defn(name="record_journey_end")
async def record_journey_end(end: JourneyEnd) -> None:
    raise NotImplementedError


@activity.defn(name="record_journey_steps")
async def record_journey_steps(steps: JourneySteps) -> None:
    raise NotImplementedError


@activity.defn(name="record_journey_move")
async def record_journey_move(moved: JourneyMoved) -> None:
    raise NotImplementedError


# Every contract above (tests/test_activity_contracts.py checks the worker implements each).
CONTRACTS: tuple[Callable[..., Coroutine[Any, Any, Any]], ...] = (
    send_message,
    send_in_app,
    notify_internal,
    deliver_webhook,
    profile_step,
    export_record,
    add_to_flow,
    call_api,
    run_custom_element,
    reserve_call_slot,
    profile_time_zone,
    profile_attributes,
    evaluate_expressions,
    evaluate_conditions,
    events_since,
    record_journey_end,
    record_journey_steps,
    record_journey_move,
)
