"""What a condition is evaluated over: the facts about one profile, loaded before evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


class ContactBlock(NamedTuple):
    """A do-not-contact entry: ``channel`` "all" covers every channel, ``sender`` None every sender."""

    channel: str
    sender: str | None = None


class EventFact(NamedTuple):
    name: str
    timestamp: datetime
    properties: Mapping[str, Any]


class FlowMembership(NamedTuple):
    """One journey of the profile: status is running, completed, stopped or failed."""

    flow_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True)
class ProfileFacts:
    """A profile as conditions see it. ``events`` and ``flows`` hold only what the conditions at
    hand need (see ``needs``); ``timezone`` is an IANA name (an unknown one reads as UTC)."""

    attributes: Mapping[str, Any] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()
    do_not_contact: tuple[ContactBlock, ...] = ()
    events: tuple[EventFact, ...] = ()
    flows: tuple[FlowMembership, ...] = ()
    timezone: str = "UTC"


@dataclass(frozen=True)
class Needs:
    """The event names and flow ids some conditions read: a loader reads only those."""

    events: frozenset[str] = frozenset()
    flows: frozenset[str] = frozenset()
