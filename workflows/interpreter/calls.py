"""The steps that call other systems inside a journey (call_api, custom): wait for the step's
window and a slot of its rate, then run the step's activity.

Workflow code, deterministic like the interpreter that runs it (tests/test_workflow_determinism.py
walks this package too): time from ``workflow.now()``, waits through the interpreter's durable
timers, the call and the rate's counter in activities.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from flowline.clock import zone
from flowline.flow.steps import CallApiStep, CustomStep
from flowline.flow.timing import window_opens
from flowline.flow.windows import CallRate, CallWindow
from flowline.journey import (
    CallApiRequest,
    CallApiResult,
    CallSlotRequest,
    CustomElementRequest,
    CustomElementResult,
    JourneyRef,
    TemplateScope,
    contracts,
)

# A 5xx or a missing answer is tried three times (1s, then 2s apart); a 4xx once.
CALL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2, maximum_attempts=3)

# The interpreter's durable timer: sleep until the moment, showing what the journey waits for.
SleepUntil = Callable[[datetime, str], Awaitable[None]]


async def reserve_slot(ref: JourneyRef, key: str, rate: CallRate) -> datetime:
    """When the next call (or message) under ``rate`` may go out: now or the start of a later
    period. ``key`` names the counter: a call_api step's id, or the flow's send rate."""
    slot = await workflow.execute_local_activity(
        contracts.reserve_call_slot,
        CallSlotRequest(
            journey=ref, step_id=key, period_seconds=rate.period_seconds, limit=rate.max, at=workflow.now()
        ),
        start_to_close_timeout=timedelta(seconds=30),
    )
    return slot.at


async def when_open(
    ref: JourneyRef,
    key: str,
    window: CallWindow | None,
    rate: CallRate | None,
    sleep_until: SleepUntil,
    resume_until: datetime | None = None,
) -> None:
    """Return once ``window`` is open and ``rate`` (counted under ``key``, the step's id) has a
    slot. ``resume_until``: the end of the wait a previous run handed over (window or rate; both
    are checked again after)."""
    if resume_until is not None:
        await sleep_until(resume_until, f"call: waiting until {resume_until.isoformat()}")
    tz: ZoneInfo | None = None
    if window is not None:
        # As everywhere (docs/sending.md): the step's zone when given, else the person's (their
        # attribute, else the workspace's), else UTC.
        profile_zone = window.timezone or await workflow.execute_local_activity(
            contracts.profile_time_zone, ref, start_to_close_timeout=timedelta(seconds=30)
        )
        tz = zone(profile_zone)
    while True:
        if window is not None and tz is not None:
            opens = window_opens(window, workflow.now(), tz)
            await sleep_until(opens, f"call window opens {opens.isoformat()}")
        if rate is None:
            break
        slot = await reserve_slot(ref, key, rate)
        await sleep_until(slot, f"call rate: a slot at {slot.isoformat()}")
        # A window that closed meanwhile: wait for it to open again, and for a new slot.
        if window is None or tz is None or window_opens(window, workflow.now(), tz) == workflow.now():
            break


async def call_api(
    step: CallApiStep,
    ref: JourneyRef,
    scope: TemplateScope,
    visit: int,
    sleep_until: SleepUntil,
    resume_until: datetime | None = None,
) -> CallApiResult:
    """Make the step's call once its window is open and its rate has room."""
    await when_open(ref, step.id, step.window, step.rate, sleep_until, resume_until)
    request = CallApiRequest(
        journey=ref, step=step, visit=visit, attempts=CALL_RETRY.maximum_attempts, scope=scope
    )
    try:
        result = await workflow.execute_activity(
            contracts.call_api,
            request,
            start_to_close_timeout=step.timeout + timedelta(seconds=30),
            retry_policy=CALL_RETRY,
        )
    except ActivityError as error:
        # The last attempt timed out or its worker was lost: no answer to go by.
        cause = error.cause if error.cause is not None else error
        return CallApiResult(branch="error", error=str(cause), variables=dict.fromkeys(step.saved_variables))
    return result


async def run_custom_element(
    step: CustomStep,
    ref: JourneyRef,
    scope: TemplateScope,
    visit: int,
    sleep_until: SleepUntil,
    resume_until: datetime | None = None,
) -> CustomElementResult:
    """Run the step's element once its window is open and its rate has room, with call_api's
    retries. The activity's own deadline covers the longest element timeout (60 s)."""
    await when_open(ref, step.id, step.window, step.rate, sleep_until, resume_until)
    request = CustomElementRequest(
        journey=ref, step=step, visit=visit, attempts=CALL_RETRY.maximum_attempts, scope=scope
    )
    try:
        return await workflow.execute_activity(
            contracts.run_custom_element,
            request,
            start_to_close_timeout=timedelta(seconds=90),
            retry_policy=CALL_RETRY,
        )
    except ActivityError as error:
        cause = error.cause if error.cause is not None else error
        return CustomElementResult(outcome="error", error=str(cause))
