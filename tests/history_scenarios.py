"""The journeys tests/record_histories.py records, one scenario per history in tests/histories/:
each scenario's flow (given the local receiver's URL) and the status the receiver answers, the
answers of call_api scenarios, the signals sent mid-journey, and the limits some scenarios start
with. Add a scenario here when a workflow path needs a recorded history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flowline.flow.steps.waiting import PROFILE_CHANGED
from flowline.flow.validation import parse_flow
from flowline.journey import (
    EVENT_SIGNAL,
    MOVE_SIGNAL,
    STOP_SIGNAL,
    JourneyLimits,
    MoveRequest,
    StopRequest,
    TriggerEvent,
)
from tests.flows import profile_steps_flow, send_then_exit_flow, welcome_flow
from tests.servers import Reply


def _branching_send(hook_url: str) -> dict[str, Any]:
    flow = welcome_flow(hook_url, pause="1h")
    flow["id"] = "branching"
    flow["steps"][1]["next"] = {"sent": "notify", "failed": "done"}
    return flow


_WAIT = {"id": "wait", "type": "wait_for_event", "conditions": [{"event": "checkout"}], "timeout": "1d"}
_MATCH_TOTAL = [{"property": "total", "op": "greater_than", "value": 0}]


def _listening(
    step: dict[str, Any], *, goal_exit: bool = False, max_duration: str | None = None
) -> Callable[[str], dict[str, Any]]:
    """``step`` first in a flow that stops on orders and counts purchases as its goal."""

    def make(_url: str) -> dict[str, Any]:
        first = dict(step)
        flow = send_then_exit_flow("go", first=first)
        if first["type"] == "wait_for_event":
            first["conditions"] = [
                {**c, "where": _MATCH_TOTAL} if c["event"] == "checkout" and "count" not in c else c
                for c in first["conditions"]
            ]
        flow["settings"] = {
            "stop_when": [{"event": "order_completed"}],
            "goal": {"event": "purchase", "within": "7d", "exit": goal_exit},
        }
        if max_duration is not None:
            flow["settings"]["max_duration"] = max_duration
        return flow

    return make


def _segment_stop(_url: str) -> dict[str, Any]:
    """A week's pause that entering the segment "vip" stops."""
    flow = send_then_exit_flow("go", first={"id": "wait", "type": "pause", "for": "7d"})
    flow["settings"] = {"stop_when": [{"event": "order_completed"}, {"segment": "vip"}]}
    return flow


def _first(step: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    """A scenario whose flow runs ``step``, then an in-app message, then the exit."""
    return lambda _url: send_then_exit_flow("go", first=step)


_NOTIFY_TEAM = {
    "id": "team",
    "type": "notify_internal",
    "channel": "email",
    "to": ["team@example.com", "{{ profile.email }}"],
    "subject": "New lead",
    "body": "{{ profile.id }} signed up",
}


def _notify_next(_url: str) -> dict[str, Any]:
    """A notify_internal step whose ``next`` ("later") skips the in-app message listed after it
    ("hi", which "later" leads to: validation wants every step reachable)."""
    notify = {**_NOTIFY_TEAM, "next": "later"}
    flow = send_then_exit_flow("go", first=notify)
    later = {"id": "later", "type": "send", "channel": "in_app", "content": {"body": "later"}, "next": "hi"}
    flow["steps"][1]["next"] = "bye"
    flow["steps"].insert(2, later)
    return flow


_AB = [{"name": "a", "weight": 1, "next": "hi"}, {"name": "b", "weight": 1, "next": "hi"}]
_CONTROL = {"weight": 1}
_PAUSE = {"for": "1d", "until_time": "09:00"}
_YEARLY = {"attribute": "anniversary", "is_today": True, "every_year": True, "at": "09:00"}
# The recording profile lives in Berlin with an anniversary in 2000: the first branch holds.
_BERLIN = {
    "all": [
        {"attribute": "timezone", "op": "is", "value": "Europe/Berlin"},
        {"attribute": "anniversary", "type": "date", "op": "before", "value": "2001-01-01"},
    ]
}
_BRANCHES = [
    {"name": "berlin", "when": _BERLIN, "next": "hi"},
    {"name": "buyer", "when": {"event": "purchase", "within": "7d"}, "next": "hi"},
]


def _call(path: str, **fields: Any) -> Callable[[str], dict[str, Any]]:
    """A call_api step to the receiver's ``path`` before the in-app message (on every branch)."""
    step = {"id": "call", "type": "call_api", "method": "POST", "url": "", **fields}
    return lambda url: send_then_exit_flow("go", first=step | {"url": f"{url}{path}"})


_SAVES = {"save": {"order": "$.order.id", "both": "$.items[*]"}, "save_headers": {"request": "X-Request-Id"}}
# What the receiver answers on a path, for scenarios whose step reads the answer.
REPLIES: dict[str, dict[str, Reply]] = {
    "call_api_success_saves_then_send": {
        "/orders": Reply(200, {"order": {"id": "A-1"}, "items": [1, 2]}, headers={"X-Request-Id": "r-1"})
    },
    "call_api_client_error_then_send": {"/orders": Reply(422, {"error": "invalid"})},
    # Raw text: json.dumps would not write 1e400 (Python's json.loads reads it as inf).
    "call_api_not_finite_save_then_send": {"/score": Reply(200, b'{"total": 1e400, "id": "A-1"}')},
    "custom_element_outcome_saves_then_send": {"/register": Reply(409, {"id": "R-1", "code": "taken"})},
}


def _register(url: str) -> dict[str, Any]:
    """A declarative element (the recording workspace has it) whose outcome is read from the answer."""
    return {
        "inputs": {"email": {"type": "string", "required": True}, "seats": {"type": "integer", "default": 1}},
        "request": {
            "method": "POST",
            "url": f"{url}/register",
            "headers": {"Authorization": "Bearer not-in-the-history"},
            "body": {"json": {"email": "{{ params.email }}", "seats": "{{ params.seats }}"}},
        },
        "save": {"registration": "$.id"},
        "outcomes": [
            {"name": "registered", "status": "2xx"},
            {"name": "already", "when": "response.status == 409 && response.body.code == 'taken'"},
        ],
    }


# The declarative elements put into the recording workspace before any scenario runs.
ELEMENTS: dict[str, Callable[[str], dict[str, Any]]] = {"register": _register}
_CUSTOM = {
    "id": "custom",
    "type": "custom",
    "element": "register",
    "params": {"email": "{{ profile.id }}@example.com"},
    "next": {"registered": "hi", "already": "hi", "fallback": "hi", "error": "hi"},
}


def _send_rules(_url: str) -> dict[str, Any]:
    """An email inside a window and quiet hours, under the flow's send_rate and a frequency cap
    (no provider is configured where histories are recorded: the send takes 'failed'), then the
    in-app message (through send_message since the send-channels-v1 patch) and the exit."""
    email = {
        "id": "mail",
        "type": "send",
        "channel": "email",
        "content": {"subject": "Hi", "text": "Hello {{ profile.id }}"},
        "window": {"from": "09:00", "to": "17:00"},
    }
    doc = send_then_exit_flow("go", first=email)
    doc["settings"] = {
        "quiet_hours": {"from": "21:00", "to": "08:00"},
        "send_rate": {"max": 100, "per": "minute"},
        "frequency_cap": [{"channel": "in_app", "max": 5, "per": "1d"}],
    }
    return doc


# Histories recorded earlier stay as they are, and keep proving that journeys in flight from
# before a patch still replay: welcome_pause_send_webhook_exit, webhook_client_error_goes_on and
# send_with_branches were recorded before the "lean-bookkeeping-v1" patch.
SCENARIOS: dict[str, tuple[Callable[[str], dict[str, Any]], int]] = {
    # name: (flow document for the receiver's URL, HTTP status the receiver answers)
    "lean_welcome_pause_send_webhook_exit": (lambda url: welcome_flow(url, pause="2d"), 200),
    "lean_webhook_client_error_goes_on": (lambda url: welcome_flow(url, pause="30s"), 410),
    "lean_send_with_branches": (_branching_send, 200),
    "lean_send_then_exit": (lambda _url: send_then_exit_flow("go"), 200),
    "pause_for_then_until_time_of_day": (
        _first({"id": "wait", "type": "pause", "for": "1d", "until_time": "09:00"}),
        200,
    ),
    "split_then_send": (
        _first({"id": "ab", "type": "split", "variants": _AB, "control": {"weight": 1}}),
        200,
    ),
    # Export steps write the outbox in a local activity; the destination is never waited for.
    "export_event_then_send": (
        _first(
            {
                "id": "tell_crm",
                "type": "export",
                "destination": "crm",
                "event": "Joined {{ flow.name }}",
                "fields": {"plan": "{{ profile.plan }}", "twice": {"expression": "2 * 2"}},
            }
        ),
        200,
    ),
    "export_profile_then_exit": (
        lambda _url: {
            "id": "export_exit",
            "name": "Export then exit",
            "trigger": {"type": "event", "event": "go"},
            "steps": [
                {
                    "id": "sync",
                    "type": "export",
                    "destination": "crm",
                    "as": "profile",
                    "fields": {"Plan": "pro"},
                },
                {"id": "bye", "type": "exit"},
            ],
        },
        200,
    ),
    "update_variable_then_send": (
        _first({"id": "compute", "type": "update_variable", "set": {"n": "size(flow.name) * 2"}}),
        200,
    ),
    # The recording profile has no 'renewal' attribute: the wait records why and goes on.
    "wait_for_date_missing_then_send": (
        _first({"id": "wait", "type": "wait_for_date", "attribute": "renewal", "was": "1d"}),
        200,
    ),
    "wait_for_date_every_year_then_send": (
        _first({"id": "wait", "type": "wait_for_date", **_YEARLY}),
        200,
    ),
    "call_api_success_saves_then_send": (
        _call("/orders", body={"json": {"who": "{{ profile.id }}"}}, **_SAVES),
        200,
    ),
    "call_api_client_error_then_send": (_call("/orders", save={"order": "$.order.id"}), 200),
    "send_channels_window_rate_cap_then_send": (_send_rules, 200),
    "branch_on_attribute_then_send": (
        _first({"id": "check", "type": "branch", "branches": _BRANCHES, "else": "bye"}),
        200,
    ),
    # Adds the person to the published flow "target" (see main), with a variable.
    "add_to_flow_then_send": (
        _first(
            {"id": "add", "type": "add_to_flow", "flow": "target", "variables": {"coupon": "{{ flow.id }}"}}
        ),
        200,
    ),
    # No email provider is configured where histories are recorded: the team's message is
    # recorded as failed and the person goes on (the activity is scheduled all the same).
    "notify_internal_then_send": (
        _first(_NOTIFY_TEAM),
        200,
    ),
    # A notify_internal step whose `next` skips the step listed after it. Recorded before the
    # "notify-next-v1" patch: the journey went to the listed step ("hi") and ignored `next`.
    "notify_internal_next_unpatched": (_notify_next, 200),
    # Since "notify-next-v1": the journey follows `next` ("later"), whatever the activity answered.
    "notify_internal_next": (_notify_next, 200),
    # update_profile, tag, do_not_contact, start_conversation, then an in-app message and the exit.
    "update_profile_tag_then_send": (lambda _url: profile_steps_flow({"type": "event", "event": "go"}), 200),
    # Signal-driven paths (SIGNALS below says what each hears once it waits).
    "wait_for_event_happened_saves_then_send": (_listening({**_WAIT, "save": {"total": "total"}}), 200),
    "wait_for_event_timeout_then_send": (_listening(_WAIT), 200),
    "wait_for_event_since_entry_then_send": (_listening({**_WAIT, "include_since_entry": True}), 200),
    "wait_for_change_then_send": (
        _listening({"id": "wait", "type": "wait_for_change", "attribute": "plan", "timeout": "1d"}),
        200,
    ),
    "stop_when_mid_pause": (_listening({"id": "wait", "type": "pause", "for": "7d"}), 200),
    "stop_signal_mid_wait": (_listening(_WAIT), 200),
    # Before the "stop-mid-listen-v1" patch the stop event, also heard by the wait, was lost with
    # the wait's cancellation (Python 3.11's asyncio.wait_for) and the journey went on to the end
    # of the wait: histories/retired/stop_when_mid_event_wait_unpatched.json, which today's code
    # refuses since the patch was deprecated (docs/patches.md). No code records that path now.
    # Since "stop-mid-listen-v1": the same stop ends the wait and the journey at once.
    "stop_when_mid_event_wait": (_listening(_WAIT), 200),
    # The same since the patch was deprecated: its marker recorded flagged as deprecated.
    "stop_when_mid_event_wait_deprecated": (_listening(_WAIT), 200),
    "stop_when_segment_mid_pause": (_segment_stop, 200),
    "goal_exit_mid_pause": (_listening({"id": "wait", "type": "pause", "for": "7d"}, goal_exit=True), 200),
    "max_duration_ends_indefinite_wait": (
        _listening({**_WAIT, "timeout": "indefinite"}, max_duration="30d"),
        200,
    ),
    # Moves mid-pause to version 2 (_MOVED: a shorter pause, another message); the moved run is
    # recorded, and the first as <name>_first_run.
    "version_move_mid_pause": (_first({"id": "wait", "type": "pause", "for": "7d"}), 200),
    # Continues as new after every 3 signals: the last run resumes the wait (the first run's
    # history is recorded too, as <name>_first_run).
    "continue_as_new_in_wait_then_send": (
        _listening({**_WAIT, "conditions": [{"event": "checkout", "count": {"op": ">=", "value": 5}}]}),
        200,
    ),
    # "journey-steps-v1": the path is written (a local activity) before a long wait and before
    # continuing as new; the end carries the rest.
    "steps_written_before_pause_then_send": (_first({"id": "wait", "type": "pause", "for": "2d"}), 200),
    "steps_written_continue_as_new_in_wait": (
        _listening({**_WAIT, "conditions": [{"event": "checkout", "count": {"op": ">=", "value": 5}}]}),
        200,
    ),
    # The first history recorded with the payload codec: every payload encrypted.
    "encrypted_send_then_exit": (_first({"id": "wait", "type": "pause", "for": "1d"}), 200),
    # Non-finite values refused at the step (issue 12): the activities report the error and keep
    # nothing, so the workflow issues the same commands as for any failing expression or save.
    "update_variable_not_finite_then_send": (
        _first({"id": "compute", "type": "update_variable", "set": {"ratio": "1.0 / 0.0", "n": "2"}}),
        200,
    ),
    "update_profile_not_finite_then_send": (
        _first(
            {
                "id": "set",
                "type": "update_profile",
                "set": {"score": {"expression": "1e308 * 10.0"}, "plan": "pro"},
            }
        ),
        200,
    ),
    "call_api_not_finite_save_then_send": (_call("/score", save={"total": "$.total", "id": "$.id"}), 200),
    "custom_element_outcome_saves_then_send": (_first(_CUSTOM), 200),
    # Signals that reach the run before its first workflow task (EARLY below). Before the
    # "early-signals-v1" patch they were dropped: the journey waited out its pause although the
    # stop event had come, and its first wait never heard the event it waited for.
    "stop_when_before_first_task_unpatched": (_listening({"id": "wait", "type": "pause", "for": "7d"}), 200),
    "wait_for_event_before_first_task_unpatched": (_listening(_WAIT), 200),
    # Since the patch: the stop ends the journey at once; the wait hears the event.
    "stop_when_before_first_task": (_listening({"id": "wait", "type": "pause", "for": "7d"}), 200),
    "wait_for_event_before_first_task": (_listening(_WAIT), 200),
}


def _moved_flow() -> dict[str, Any]:
    flow = send_then_exit_flow("go", first={"id": "wait", "type": "pause", "for": "2d"})
    flow["steps"][1]["content"] = {"body": "moved"}
    return flow


_MOVED = MoveRequest(version=2, flow=parse_flow(_moved_flow()))


def _heard(name: str, number: int, **properties: Any) -> tuple[str, Any]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return EVENT_SIGNAL, TriggerEvent(id=f"{name}-{number}", name=name, timestamp=at, properties=properties)


SIGNALS: dict[str, list[tuple[str, Any]]] = {
    "wait_for_event_happened_saves_then_send": [
        _heard("purchase", 1),  # the goal: recorded on the journey, no command
        _heard("checkout", 1, total=0),  # filtered out
        _heard("checkout", 2, total=12),
    ],
    "wait_for_change_then_send": [
        _heard(PROFILE_CHANGED, 1, changed={"plan": {"from": "free", "to": "pro"}}),
    ],
    "stop_when_mid_pause": [_heard("order_completed", 1)],
    "stop_signal_mid_wait": [(STOP_SIGNAL, StopRequest(reason="flow stopped"))],
    "stop_when_mid_event_wait": [_heard("order_completed", 1)],
    "stop_when_mid_event_wait_deprecated": [_heard("order_completed", 1)],
    # Another segment's entry, then this segment's exit, go unheeded; its entry stops the journey.
    "stop_when_segment_mid_pause": [
        _heard("segment_entered", 1, segment="other"),
        _heard("segment_exited", 1, segment="vip"),
        _heard("segment_entered", 2, segment="vip"),
    ],
    "goal_exit_mid_pause": [_heard("purchase", 1)],
    "continue_as_new_in_wait_then_send": [_heard("checkout", n, total=n) for n in range(1, 6)],
    "version_move_mid_pause": [(MOVE_SIGNAL, _MOVED)],
    "steps_written_continue_as_new_in_wait": [_heard("checkout", n, total=n) for n in range(1, 6)],
    "stop_when_before_first_task_unpatched": [_heard("order_completed", 1)],
    "wait_for_event_before_first_task_unpatched": [_heard("checkout", 1, total=12)],
    "stop_when_before_first_task": [_heard("order_completed", 1)],
    "wait_for_event_before_first_task": [_heard("checkout", 1, total=12)],
}
# Scenarios whose signals are sent before any worker polls the journey's task queue, so that the
# run's first workflow task holds its start and the signals together.
EARLY = {
    "stop_when_before_first_task_unpatched",
    "wait_for_event_before_first_task_unpatched",
    "stop_when_before_first_task",
    "wait_for_event_before_first_task",
}
LIMITS = {
    "continue_as_new_in_wait_then_send": JourneyLimits(signals_per_run=3),
    "steps_written_continue_as_new_in_wait": JourneyLimits(signals_per_run=3),
}
