"""Conditions evaluated in memory, for one profile: pure, no I/O, deterministic in ``now``.

The meaning of every operator is documented on its model (flowline/conditions/rules.py and
events.py); this module implements exactly that, in one exhaustive dispatch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any, TypeGuard, assert_never
from zoneinfo import ZoneInfo

from flowline.clock import local_instant, since, zone
from flowline.conditions.events import EventCondition
from flowline.conditions.facts import FlowMembership, Needs, ProfileFacts
from flowline.conditions.property_filter import matches_all
from flowline.conditions.rules import (
    AllCondition,
    AnyCondition,
    AttributeCondition,
    Condition,
    DoNotContactCondition,
    FlowCondition,
    NotCondition,
    TagCondition,
    parse_date_value,
)
from flowline.durations import parse_duration

_MISSING: Any = object()


def evaluate(condition: Condition, facts: ProfileFacts, now: datetime) -> bool:
    """Whether ``condition`` holds for the profile ``facts`` describe, at the instant ``now``."""
    if now.tzinfo is None:
        raise ValueError("naive datetime: give an aware 'now'")
    match condition:
        case AttributeCondition():
            return _attribute(condition, facts, now)
        case TagCondition():
            return (condition.tag in facts.tags) == (condition.op == "has")
        case DoNotContactCondition():
            return _do_not_contact(condition, facts)
        case EventCondition():
            return _event(condition, facts, now)
        case FlowCondition():
            return _flow(condition, facts, now)
        case AllCondition():
            return all(evaluate(c, facts, now) for c in condition.all)
        case AnyCondition():
            return any(evaluate(c, facts, now) for c in condition.any)
        case NotCondition():
            return not evaluate(condition.not_, facts, now)
        case _:
            assert_never(condition)


def needs(conditions: Iterable[Condition]) -> Needs:
    """The event names and flow ids ``conditions`` read, so a loader reads nothing more."""
    events: set[str] = set()
    flows: set[str] = set()
    pending = list(conditions)
    while pending:
        match pending.pop():
            case EventCondition() as condition:
                events.add(condition.event)
            case FlowCondition() as condition:
                flows.add(condition.flow)
            case AllCondition() as condition:
                pending.extend(condition.all)
            case AnyCondition() as condition:
                pending.extend(condition.any)
            case NotCondition() as condition:
                pending.append(condition.not_)
            case AttributeCondition() | TagCondition() | DoNotContactCondition():
                pass
    return Needs(events=frozenset(events), flows=frozenset(flows))


# ---------------------------------------------------------------- attributes


def _empty(value: Any) -> bool:
    return value is _MISSING or value is None or value == "" or value == [] or value == {}


def _attribute(condition: AttributeCondition, facts: ProfileFacts, now: datetime) -> bool:
    actual = facts.attributes.get(condition.attribute, _MISSING)
    if condition.op == "is_empty":
        return _empty(actual)
    if condition.op == "is_not_empty":
        return not _empty(actual)
    if condition.op == "is_not":
        return not _holds("is", condition, actual, facts, now)
    return _holds(condition.op, condition, actual, facts, now)


def _holds(op: str, condition: AttributeCondition, actual: Any, facts: ProfileFacts, now: datetime) -> bool:
    expected, kind = condition.value, condition.kind
    if kind == "boolean":
        return isinstance(actual, bool) and actual is expected
    if kind == "text":
        return isinstance(actual, str) and isinstance(expected, str) and _text(op, actual, expected)
    if kind == "number":
        return _is_number(actual) and _is_number(expected) and _number(op, actual, expected)
    if kind == "date":
        tz = zone(facts.timezone)
        moment = _moment(actual, tz)
        return moment is not None and _date(op, moment, expected, now, tz)
    raise AssertionError(f"no meaning for {op!r} on {kind!r}")  # pragma: no cover - validated


def _text(op: str, actual: str, expected: str) -> bool:
    if op == "is":
        return actual == expected
    if op == "contains":
        return expected in actual
    if op == "starts_with":
        return actual.startswith(expected)
    if op == "ends_with":
        return actual.endswith(expected)
    raise AssertionError(op)  # pragma: no cover - validated


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(op: str, actual: float, expected: float) -> bool:
    if op == "is":
        return actual == expected
    if op == "less_than":
        return actual < expected
    if op == "less_than_or_equal":
        return actual <= expected
    if op == "greater_than":
        return actual > expected
    if op == "greater_than_or_equal":
        return actual >= expected
    raise AssertionError(op)  # pragma: no cover - validated


def _moment(raw: Any, tz: ZoneInfo) -> tuple[date, datetime] | None:
    """An attribute's calendar day in ``tz`` and its instant (a date alone: 00:00 that day)."""
    if not isinstance(raw, str):
        return None
    try:
        parsed = parse_date_value(raw)
    except ValueError:
        return None
    instant = _instant(parsed, tz)
    return instant.astimezone(tz).date(), instant


def _instant(value: date | datetime, tz: ZoneInfo) -> datetime:
    """A date at 00:00, a date-time without an offset at its wall time, both in ``tz``."""
    if not isinstance(value, datetime):
        return local_instant(value, time(0, 0), tz)
    if value.tzinfo is None:
        return local_instant(value.date(), value.time(), tz)
    return value


def _date(op: str, moment: tuple[date, datetime], expected: Any, now: datetime, tz: ZoneInfo) -> bool:
    day, instant = moment
    today = now.astimezone(tz).date()
    if op == "was_today":
        return day == today
    if op in ("was", "will_be_in"):
        offset = timedelta(days=parse_duration(expected).days)
        return day == (today - offset if op == "was" else today + offset)
    if op in ("was_within", "was_more_than", "will_be_within", "will_be_more_than"):
        span = parse_duration(expected)
        if op == "was_within":
            return now - span <= instant <= now
        if op == "was_more_than":
            return instant < now - span
        if op == "will_be_within":
            return now <= instant <= now + span
        return instant > now + span
    value = parse_date_value(expected)
    # A date value compares calendar days; a date-time value compares instants.
    if isinstance(value, datetime):
        return _compare(op, instant, _instant(value, tz))
    return _compare(op, day, value)


def _compare(op: str, left: date, right: date) -> bool:
    """``left`` against ``right`` (two dates, or two aware date-times)."""
    if op == "is":
        return left == right
    if op == "before":
        return left < right
    if op == "until":
        return left <= right
    if op == "since":
        return left >= right
    if op == "after":
        return left > right
    raise AssertionError(op)  # pragma: no cover - validated


# ---------------------------------------------------------------- consent, events, flows


def _do_not_contact(condition: DoNotContactCondition, facts: ProfileFacts) -> bool:
    wanted = condition.do_not_contact
    for entry in facts.do_not_contact:
        covers_sender = entry.sender is None or (
            condition.sender is not None and entry.sender == condition.sender
        )
        if covers_sender and (wanted == "any" or entry.channel in (wanted, "all")):
            return True
    return False


def _in_window(moment: datetime, condition: EventCondition, now: datetime) -> bool:
    if condition.within is not None:
        return since(now, condition.within) <= moment <= now
    if condition.between is not None:
        return condition.between.from_ <= moment <= condition.between.to
    return True


def _event(condition: EventCondition, facts: ProfileFacts, now: datetime) -> bool:
    count = sum(
        1
        for event in facts.events
        if event.name == condition.event
        and _in_window(event.timestamp, condition, now)
        and matches_all(condition.where, event.properties)
    )
    return condition.holds_for(count)


def _flow(condition: FlowCondition, facts: ProfileFacts, now: datetime) -> bool:
    def recent(moment: datetime | None) -> bool:
        if moment is None:
            return False
        return condition.within is None or since(now, condition.within) <= moment <= now

    def matches(journey: FlowMembership) -> bool:
        if condition.state == "in_flow":
            return journey.status == "running" and recent(journey.started_at)
        if condition.state == "entered":
            return recent(journey.started_at)
        return recent(journey.ended_at)

    return any(journey.flow_id == condition.flow and matches(journey) for journey in facts.flows)
