"""The send step inside a journey: wait until the message may go out, then send it.

A message waits (durable timers, never dropped) for the step's delivery window and the flow's
quiet hours, each in its own ``timezone`` when given, else the person's, and for a slot of the
flow's send_rate, which every worker shares through the database. Workflow code: deterministic
like the interpreter (tests/test_workflow_determinism.py walks this package too).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio import workflow

from flowline.clock import zone
from flowline.flow.document import FlowDocument
from flowline.flow.flow_settings import FlowSettings
from flowline.flow.steps import InAppSendStep, SendStep, SendSteps
from flowline.flow.timing import window_opens
from flowline.flow.windows import CallWindow
from flowline.journey import JourneyEnd, JourneyRef, SendInAppRequest, SendRequest, TemplateScope, contracts
from workflows.interpreter.calls import SleepUntil, reserve_slot
from workflows.patches import PATCHES

# The send_rate's counter in call_rates: one per flow, whatever step sends.
SEND_RATE_KEY = "@send_rate"


async def prepare_send(
    step: SendSteps,
    ref: JourneyRef,
    scope: TemplateScope,
    flow: FlowDocument,
    visit: int,
    *,
    ending: Callable[[], JourneyEnd | None],
    sleep_until: SleepUntil,
    resume_until: datetime | None,
) -> SendInAppRequest | SendRequest:
    """Wait until the message may go out; then the request (of send_in_app or send_message).
    ``ending``: the journey's end for the activity to record, if only the end follows."""
    if isinstance(step, InAppSendStep) and not PATCHES.send_channels.new_path():
        # Journeys recorded before channels existed sent in-app messages only, this way.
        old = SendInAppRequest(
            journey=ref,
            step_id=step.id,
            visit=visit,
            title=step.content.title,
            body=step.content.body,
            data=step.content.data,
            scope=scope,
            ends_journey=ending(),
        )
        return old
    await wait_to_send(step, step.channel, flow.settings, ref, sleep_until, resume_until)
    cap = next((c for c in flow.settings.frequency_cap if c.channel == step.channel), None)
    request = SendRequest(
        journey=ref,
        step=step,
        visit=visit,
        scope=scope,
        cap=cap,
        now=workflow.now(),
        ends_journey=ending(),
    )
    return request


def windows_of(step: SendStep, settings: FlowSettings, channel: str) -> list[CallWindow]:
    """The windows a message of ``step`` must be inside: its own, and outside the quiet hours."""
    found = [step.window] if step.window is not None else []
    quiet = settings.quiet_hours
    if quiet is not None and channel in quiet.channels:
        found.append(quiet.as_window())
    return found


async def wait_to_send(
    step: SendStep,
    channel: str,
    settings: FlowSettings,
    ref: JourneyRef,
    sleep_until: SleepUntil,
    resume_until: datetime | None = None,
) -> None:
    """Returns once every window is open and the flow's rate has a slot for this message.
    ``resume_until``: the end of a wait a previous run handed over (all is checked again after)."""
    if resume_until is not None:
        await sleep_until(resume_until, f"send: waiting until {resume_until.isoformat()}")
    windows = windows_of(step, settings, channel)
    rate = settings.send_rate
    if not windows and rate is None:
        return
    zones: list[ZoneInfo] = []
    person_zone: str | None = None
    for window in windows:
        if window.timezone is None and person_zone is None:
            person_zone = await workflow.execute_local_activity(
                contracts.profile_time_zone, ref, start_to_close_timeout=timedelta(seconds=30)
            )
        zones.append(zone(window.timezone or person_zone))

    def all_open_at() -> datetime:
        """The first moment from now at which every window is open."""
        moment = workflow.now()
        for _ in range(20):  # windows that never overlap are caught by validation; this bounds it
            later = max(
                (window_opens(w, moment, tz) for w, tz in zip(windows, zones, strict=True)), default=moment
            )
            if later == moment:
                return moment
            moment = later
        return moment

    while True:
        opens = all_open_at()
        if opens > workflow.now():
            await sleep_until(opens, f"send window opens {opens.isoformat()}")
        if rate is None:
            return
        slot = await reserve_slot(ref, SEND_RATE_KEY, rate)
        if slot > workflow.now():
            await sleep_until(slot, f"send rate: a slot at {slot.isoformat()}")
        # A window that closed while waiting for the slot: wait for it again, and a new slot.
        if all_open_at() == workflow.now():
            return
