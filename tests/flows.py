"""Flow documents the tests and the history recorder share."""

from __future__ import annotations

import copy
from typing import Any, get_args

from flowline.flow.steps import Step


def welcome_flow(hook_url: str, *, pause: str = "2d", reentry: str = "after_exit") -> dict[str, Any]:
    """The walkthrough's example (README): event -> pause -> in-app message -> webhook -> exit."""
    return {
        "id": "welcome",
        "name": "Welcome",
        "trigger": {
            "type": "event",
            "event": "signed_up",
            "where": [{"property": "plan", "op": "is", "value": "pro"}],
        },
        "settings": {"reentry": reentry},
        "steps": [
            {"id": "wait", "type": "pause", "for": pause},
            {
                "id": "hello",
                "type": "send",
                "channel": "in_app",
                "content": {
                    "title": "Welcome",
                    "body": "Hi {{ profile.first_name | default: 'there' }}, enjoy {{ event.plan }}",
                    "data": {"cta": "open:{{ event.plan }}"},
                },
            },
            {
                "id": "notify",
                "type": "webhook",
                "url": f"{hook_url}/hook",
                "data": {"who": "{{ profile.id }}"},
            },
            {"id": "done", "type": "exit"},
        ],
    }


def send_then_exit_flow(event: str = "signed_up", *, first: dict[str, Any] | None = None) -> dict[str, Any]:
    """The shortest useful journey: one in-app message, then the exit; ``first``, a step before them."""
    flow: dict[str, Any] = {
        "id": "short",
        "name": "Short",
        "trigger": {"type": "event", "event": event},
        "steps": [
            {"id": "hi", "type": "send", "channel": "in_app", "content": {"body": "hi"}},
            {"id": "bye", "type": "exit"},
        ],
    }
    if first is not None:
        flow["steps"].insert(0, first)
    return flow


def target_flow(flow_id: str = "target", *, reentry: str = "after_exit") -> dict[str, Any]:
    """A flow only other flows enter: its message shows the variables it was given."""
    return {
        "id": flow_id,
        "name": "Target",
        "trigger": {"type": "flow"},
        "settings": {"reentry": reentry},
        "steps": [
            {
                "id": "tell",
                "type": "send",
                "channel": "in_app",
                "content": {"body": "{{ vars.coupon | default: 'none' }} for {{ profile.id }}"},
            }
        ],
    }


def profile_steps_flow(trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every step that changes the person, then an in-app message that reads the changes."""
    return {
        "id": "profile-steps",
        "name": "Profile steps",
        "trigger": trigger or {"type": "flow"},
        "steps": [
            {
                "id": "update",
                "type": "update_profile",
                "set": {
                    "plan": "pro",
                    "greeting": {"template": "Hi {{ profile.first_name | default: 'there' }}"},
                    "visits": {"expression": "has(profile.visits) ? profile.visits + 1 : 1"},
                    "trial": None,
                },
            },
            {"id": "label", "type": "tag", "add": ["vip", "beta"], "remove": ["trial"]},
            {
                "id": "quiet",
                "type": "do_not_contact",
                "action": "add",
                "channel": "email",
                "senders": ["promo"],
            },
            {
                "id": "handover",
                "type": "start_conversation",
                "tag": "vip",
                "note": "{{ profile.greeting }} wants help with {{ profile.plan }}",
            },
            {
                "id": "tell",
                "type": "send",
                "channel": "in_app",
                "content": {"body": "{{ profile.greeting }}, visit {{ profile.visits }}"},
            },
            {"id": "bye", "type": "exit"},
        ],
    }


# A minimal valid step of every type of the ``Step`` union (without id and next).
STEP_EXAMPLES: dict[str, dict[str, Any]] = {
    "pause": {"type": "pause", "for": "1h"},
    "send": {"type": "send", "channel": "in_app", "content": {"body": "hi"}},
    "webhook": {"type": "webhook", "url": "http://127.0.0.1:1/hook"},
    "split": {"type": "split", "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]},
    "branch": {"type": "branch", "branches": [{"name": "vip", "when": {"tag": "vip", "op": "has"}}]},
    "update_variable": {"type": "update_variable", "set": {"n": "1 + 1"}},
    "wait_for_date": {"type": "wait_for_date", "attribute": "renewal", "is_today": True},
    "update_profile": {"type": "update_profile", "set": {"plan": "pro"}},
    "tag": {"type": "tag", "add": ["vip"]},
    "do_not_contact": {"type": "do_not_contact", "action": "add", "channel": "email"},
    "start_conversation": {"type": "start_conversation", "tag": "support"},
    "wait_for_event": {"type": "wait_for_event", "conditions": [{"event": "bought"}], "timeout": "1d"},
    "wait_for_change": {"type": "wait_for_change", "attribute": "plan", "timeout": "1d"},
    "add_to_flow": {"type": "add_to_flow", "flow": "other"},
    "call_api": {"type": "call_api", "method": "GET", "url": "http://127.0.0.1:1/x"},
    "export": {"type": "export", "destination": "crm", "event": "Signed Up", "fields": {"plan": "pro"}},
    "notify_internal": {
        "type": "notify_internal",
        "channel": "email",
        "to": ["team@example.com"],
        "subject": "New lead",
        "body": "{{ profile.email }}",
    },
    "exit": {"type": "exit"},
    # The example plugin's code element (examples/flowline_element_example/, installed by make).
    "custom": {
        "type": "custom",
        "element": "example.score",
        "params": {"service": "http://127.0.0.1:1", "email": "{{ profile.email }}"},
    },
}


def step_types() -> set[str]:
    """The ``type`` of every member of the ``Step`` union."""
    members = []
    for member in get_args(get_args(Step)[0]):
        # A send is itself a union (one member per channel), all of type "send".
        members.extend(get_args(get_args(member)[0]) if get_args(member) else [member])
    return {get_args(member.model_fields["type"].annotation)[0] for member in members}


def every_step_type_flow() -> dict[str, Any]:
    """One valid flow using every member of the ``Step`` union, each branch leading on."""
    steps = [{"id": kind, **copy.deepcopy(STEP_EXAMPLES[kind])} for kind in STEP_EXAMPLES if kind != "exit"]
    steps[0]["next"] = "send"
    steps[1]["next"] = {"sent": "webhook", "skipped": "webhook", "failed": "exit"}
    steps[3]["variants"][0]["next"] = "branch"
    steps[4]["else"] = "update_variable"
    steps.append({"id": "exit", "type": "exit"})
    return {"id": "f", "name": "F", "trigger": {"type": "event", "event": "e"}, "steps": steps}
