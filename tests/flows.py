"""Flow documents the tests and the history recorder share."""

from __future__ import annotations

from typing import Any


def welcome_flow(hook_url: str, *, pause: str = "2d", reentry: str = "after_exit") -> dict[str, Any]:
    """The README's example: event -> pause -> in-app message -> webhook -> exit."""
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
