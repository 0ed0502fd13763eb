"""The events Flowline writes itself and the properties each one carries (docs/engine-events.md).

A filter on one of them naming a property it never carries can never match (a missing property
equals nothing), so the journey silently takes its fallback: ``where: [{property: step, ...}]`` on
``message_opened``, whose property is ``step_id``. New flow documents and segment rules are checked
against this registry (``filter_faults``); stored flows and journeys in flight are not re-checked.

Keep it in step with the writers: flowline/store/journeys.py (flow_*), flowline/channels/feedback.py
and inbox.py (message_*), flowline/store/profile_changes.py and conversations.py (profile steps,
``Origin.properties``), flowline/store/segment_members.py (segment_*).
tests/test_engine_events.py compares it with the events the engine really writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel

from flowline.conditions.property_filter import PropertyFilter
from flowline.json_values import member_path


@dataclass(frozen=True)
class Property:
    """One property. ``keys``: an object's fixed keys; ``each``: an object whose keys are free
    (an attribute's name) and each value has this shape; neither: nothing is checked below it
    when ``type`` is ``any`` or ``object``."""

    type: str
    meaning: str
    keys: Mapping[str, Property] | None = None
    each: Property | None = None
    always: bool = True


@dataclass(frozen=True)
class EngineEvent:
    name: str
    meaning: str
    properties: Mapping[str, Property] = field(default_factory=dict)


def _p(type_: str, meaning: str, **extra: Any) -> Property:
    return Property(type_, meaning, **extra)


_DELIVERY = {
    "delivery_id": _p("string", "the delivery (the send's ledger row)"),
    "channel": _p("string", "email, sms, push or in_app"),
    "flow_id": _p("string", "the flow that sent the message"),
    "version": _p("integer", "its version"),
    "step_id": _p("string", "the send step's id"),
    "journey_id": _p("string", "the journey that sent it"),
}
_REASON = {"reason": _p("string", "the provider's reason, when its report gives one", always=False)}
# Who made a profile change (profile_changes.Origin): the API, a flow's step, an unsubscribe...
_ORIGIN = {
    "source": _p("string", "api, flow, unsubscribe or bounce"),
    "flow_id": _p("string", "the flow whose step made the change", always=False),
    "journey_id": _p("string", "that journey", always=False),
    "step_id": _p("string", "that step", always=False),
}
_CHANGE = _p(
    "object", "", keys={"from": _p("any", "the value before (null: unset)"), "to": _p("any", "after")}
)
_INBOX = {
    "message_id": _p("string", "the inbox message"),
    "channel": _p("string", "in_app"),
    **{k: Property(v.type, v.meaning, always=False) for k, v in _DELIVERY.items() if k != "channel"},
}
_LIST = "list"


def _event(name: str, meaning: str, properties: Mapping[str, Property]) -> tuple[str, EngineEvent]:
    return name, EngineEvent(name, meaning, properties)


ENGINE_EVENTS: Mapping[str, EngineEvent] = dict(
    [
        _event(
            "flow_entered",
            "a journey started (written with its claim)",
            {
                "flow_id": _p("string", "the flow"),
                "version": _p("integer", "the flow version the journey runs"),
                "journey_id": _p("string", "the journey"),
            },
        ),
        _event(
            "flow_exited",
            "a journey ended",
            {
                "flow_id": _p("string", "the flow"),
                "journey_id": _p("string", "the journey"),
                "exit_reason": _p("string", "why it ended (exit step, stop_when: ..., goal_reached, ...)"),
                "status": _p("string", "completed, stopped, failed, ..."),
            },
        ),
        _event(
            "message_sent", "a person's message left (accepted by the provider, or in the inbox)", _DELIVERY
        ),
        _event("message_delivered", "a provider reported the message delivered", _DELIVERY | _REASON),
        _event(
            "message_opened",
            "the open pixel loaded, a provider reported a read, or the in-app message was read",
            _DELIVERY | _REASON | {"message_id": _p("string", "the inbox message (in_app)", always=False)},
        ),
        _event(
            "message_clicked", "a tracked link was followed", _DELIVERY | {"url": _p("string", "the link")}
        ),
        _event("message_failed", "a provider reported the message failed", _DELIVERY | _REASON),
        _event("message_bounced", "a provider reported a bounce", _DELIVERY | _REASON),
        _event("message_unsubscribed", "the person unsubscribed through the message's link", _DELIVERY),
        _event(
            "message_consumed",
            "the app consumed a consumable in-app message (its reward)",
            _INBOX | {"data": _p("object", "the message's data, as sent")},
        ),
        _event(
            "profile_changed",
            "attributes changed (PUT /v1/profiles, a profile step)",
            {"changed": _p("object", "attribute name -> {from, to}", each=_CHANGE), **_ORIGIN},
        ),
        _event(
            "tags_changed",
            "tags were added or removed",
            {
                "added": _p(_LIST, "tags added"),
                "removed": _p(_LIST, "tags removed"),
                "tags": _p(_LIST, "the tags now"),
                **_ORIGIN,
            },
        ),
        _event(
            "do_not_contact_changed",
            "do-not-contact entries changed (a step, an unsubscribe, a bounce)",
            {
                "added": _p(_LIST, "entries added: {channel, sender}"),
                "removed": _p(_LIST, "entries removed"),
                "entries": _p(_LIST, "the entries now"),
                **_ORIGIN,
            },
        ),
        _event(
            "referrer_changed",
            "the person's referrer changed",
            {
                "from": _p("string", "the referrer before (null: none)"),
                "to": _p("string", "after"),
                **_ORIGIN,
            },
        ),
        _event(
            "friends_changed",
            "friends were added or removed",
            {"added": _p(_LIST, "profile ids added"), "removed": _p(_LIST, "profile ids removed"), **_ORIGIN},
        ),
        _event(
            "conversation_started",
            "a start_conversation step opened a conversation",
            {
                "conversation_id": _p("string", "the conversation"),
                "tag": _p("string", "its tag"),
                "note": _p("string", "its note"),
                **_ORIGIN,
            },
        ),
        _event(
            "segment_entered", "the person entered a segment", {"segment": _p("string", "the segment's id")}
        ),
        _event("segment_exited", "the person left a segment", {"segment": _p("string", "the segment's id")}),
    ]
)


def property_fault(event: str, dotted: str) -> str | None:
    """Why a filter on ``event``'s property ``dotted`` (``changed.plan.to``) can never match; None
    when it can, or when ``event`` is not one the engine writes (a client's events are free)."""
    known = ENGINE_EVENTS.get(event)
    if known is None:
        return None
    # What is below the part read so far: fixed keys, any key of one shape, or anything.
    keys: Mapping[str, Property] | None = known.properties
    each: Property | None = None
    kind, read = "object", ""
    for part in dotted.split("."):
        if kind not in _OPEN:
            return f"{read!r} of {event!r} is a {kind}: a dotted path reads nothing below it"
        if each is not None:
            prop = each
        elif keys is None:
            return None
        elif part in keys:
            prop = keys[part]
        else:
            where = f"{read!r} of {event!r}" if read else repr(event)
            return f"{where} never carries {part!r}; it carries {', '.join(keys)} (docs/engine-events.md)"
        read = f"{read}.{part}" if read else part
        kind, keys, each = prop.type, prop.keys, prop.each
    return None


# Types a dotted path may read into (a list is not indexed: property_filter.py).
_OPEN = frozenset({"object", "any"})


def filter_faults(model: BaseModel, path: str = "$") -> list[tuple[str, str]]:
    """(path, message) for every filter in ``model`` (a flow document, a rule) that names a
    property its engine event never carries: ``where`` of triggers, waits, stop_when, goals and
    event conditions, and an event trigger's ``match`` (``event_property``). Paths follow the
    document's keys (field aliases)."""
    return list(_faults(model, path))


def _faults(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, BaseModel):
        # A model's fields are in its __dict__ (getattr of an absent name is slow in pydantic).
        fields = node.__dict__
        event = fields.get("event")
        if isinstance(event, str) and event in ENGINE_EVENTS:
            for index, item in enumerate(fields.get("where") or ()):
                if isinstance(item, PropertyFilter) and (fault := property_fault(event, item.property)):
                    yield f"{member_path(path, 'where')}[{index}].property", fault
            for index, item in enumerate(fields.get("match") or ()):
                prop = getattr(item, "event_property", None)
                if isinstance(prop, str) and (fault := property_fault(event, prop)):
                    yield f"{member_path(path, 'match')}[{index}].event_property", fault
        keys = _keys(type(node))
        for name, child in fields.items():
            # Only containers can hold a filter: scalars (most fields) cost no path.
            if isinstance(child, _CONTAINERS) and child:
                yield from _faults(child, member_path(path, keys.get(name, name)))
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            if isinstance(item, _CONTAINERS):
                yield from _faults(item, f"{path}[{index}]")
    elif isinstance(node, dict):
        for key, item in node.items():
            if isinstance(item, _CONTAINERS):
                yield from _faults(item, member_path(path, str(key)))


_CONTAINERS = (BaseModel, list, tuple, dict)


@cache
def _keys(model: type[BaseModel]) -> dict[str, str]:
    """Each field's key in the document: its alias (``for``, ``not``) or its name."""
    return {name: info.alias or name for name, info in model.model_fields.items()}
