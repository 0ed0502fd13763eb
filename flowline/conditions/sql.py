"""Conditions compiled to SQL, for a whole audience: the same meanings as the in-memory
evaluator (flowline/conditions/evaluate.py), on SQLite and PostgreSQL.

Every leaf is wrapped in ``coalesce(..., false)`` so SQL's unknown never leaks into ``not``.
On SQLite, date operators and numeric strings go through deterministic Python functions
registered on each connection (flowline/store/database.py); they call the evaluator's own code.
About 400 lines, kept whole: one compiler whose cases mirror evaluate.py's dispatch one for one.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, assert_never

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import Boolean, Numeric, String

from flowline.clock import since
from flowline.conditions.events import EventCondition
from flowline.conditions.operators import DAY_OFFSET_OPS, WINDOW_OPS
from flowline.conditions.property_filter import NUMERIC_TEXT, NUMERIC_TEXT_MAX, PropertyFilter, plain_number
from flowline.conditions.rules import (
    AllCondition,
    AnyCondition,
    AttributeCondition,
    Condition,
    DoNotContactCondition,
    FlowCondition,
    NotCondition,
    TagCondition,
)
from flowline.conditions.sql_json import JsonValue, sure
from flowline.durations import parse_duration
from flowline.store.tables import events, journeys, profiles, workspaces


def compile_condition(
    condition: Condition, *, workspace_id: str, now: datetime, dialect: str
) -> ColumnElement[bool]:
    """A boolean SQL expression over ``profiles`` true exactly where ``evaluate`` is true.

    Event counts are correlated subqueries (an index probe per profile): cheap when the query
    is restricted to a few profiles, or pages members in id order and stops early."""
    return _compiler(workspace_id, now, dialect, audience=False).compile(condition)


def compile_audience(
    condition: Condition, *, workspace_id: str, now: datetime, dialect: str
) -> ColumnElement[bool]:
    """The same meaning as ``compile_condition``, shaped for a whole workspace at once.

    Event counts read each window's events once, grouped by profile, and join them (a hash
    semi- or anti-join) instead of probing the events of every profile in turn: a correlated
    subquery runs once per profile and keeps PostgreSQL from scanning profiles in parallel.
    Restricted to a list of ids, prefer ``compile_condition`` (this one reads whole windows)."""
    return _compiler(workspace_id, now, dialect, audience=True).compile(condition)


def _compiler(workspace_id: str, now: datetime, dialect: str, *, audience: bool) -> _Compiler:
    if now.tzinfo is None:
        raise ValueError("naive datetime: give an aware 'now'")
    if dialect not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported dialect {dialect!r}")
    return _Compiler(workspace_id, now, dialect, audience=audience)


class _Compiler:
    def __init__(self, workspace_id: str, now: datetime, dialect: str, *, audience: bool) -> None:
        self.workspace_id, self.now, self.dialect = workspace_id, now, dialect
        self.pg, self.audience = dialect == "postgresql", audience

    def _number_literal(self, value: float) -> ColumnElement[Any]:
        # PostgreSQL compares numerics exactly (a float8 cast could overflow on huge numbers). A
        # float goes as a Decimal of its shortest text, the number the rule wrote: psycopg binds a
        # float as float8, and numeric > float8 compared in float8, so a stored 1e400 failed the
        # statement (out of range for type double precision).
        if self.pg:
            return literal(Decimal(repr(value)) if isinstance(value, float) else value, Numeric)
        # SQLite binds 64-bit integers only (OverflowError beyond, a 500); its JSON reads larger
        # integers as REAL too, so compare those as doubles.
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            return literal(float(value))
        return literal(value)

    def compile(self, condition: Condition) -> ColumnElement[bool]:
        match condition:
            case AttributeCondition():
                return sure(self._attribute(condition))
            case TagCondition():
                has = sure(self._tag(condition.tag))
                return has if condition.op == "has" else not_(has)
            case DoNotContactCondition():
                return sure(self._do_not_contact(condition))
            case EventCondition():
                return self._event(condition)
            case FlowCondition():
                return self._flow(condition)
            case AllCondition():
                return and_(*(self.compile(c) for c in condition.all))
            case AnyCondition():
                return or_(*(self.compile(c) for c in condition.any))
            case NotCondition():
                return not_(self.compile(condition.not_))
            case _:
                assert_never(condition)

    # ------------------------------------------------------------ attributes

    def _attribute(self, condition: AttributeCondition) -> ColumnElement[bool]:
        value = JsonValue(profiles.c.attributes, [condition.attribute], self.dialect)
        if condition.op == "is_empty":
            return value.empty()
        if condition.op == "is_not_empty":
            return not_(sure(value.empty()))
        if condition.op == "is_not":
            return not_(sure(self._holds("is", condition, value)))
        return self._holds(condition.op, condition, value)

    def _holds(self, op: str, condition: AttributeCondition, value: JsonValue) -> ColumnElement[bool]:
        expected, kind = condition.value, condition.kind
        if self.pg and op == "is" and kind in ("boolean", "text", "number"):
            # jsonb containment of {attribute: value} is that test at once (a string equals only
            # that string, a number an equal number, true only true; an array holding the value
            # does not count below the top level), and reads the attributes once, not three times.
            wanted = cast(literal(json.dumps({condition.attribute: expected}), String), JSONB)
            return profiles.c.attributes.op("@>")(wanted)
        if kind == "boolean":
            return value.kind() == ("boolean-true" if expected else "boolean-false")
        if kind == "text":
            assert isinstance(expected, str)
            return and_(value.kind() == "string", self._text(op, value.text(), expected))
        if kind == "number":
            assert isinstance(expected, int | float) and not isinstance(expected, bool)
            return and_(
                value.kind() == "number", _compare(op, value.number(), self._number_literal(expected))
            )
        if kind == "date":
            return self._date(op, condition, value)
        raise AssertionError(f"no meaning for {op!r} on {kind!r}")  # pragma: no cover - validated

    def _text(self, op: str, actual: ColumnElement[Any], expected: str) -> ColumnElement[bool]:
        wanted = literal(expected, String)
        if op == "is":
            return actual == wanted
        if not expected:
            return true()
        if op == "contains":
            return (func.strpos(actual, wanted) if self.pg else func.instr(actual, wanted)) > 0
        length = func.length(wanted)
        if op == "starts_with":
            return func.substr(actual, 1, length) == wanted
        if op == "ends_with":
            start = func.length(actual) - length + 1
            return and_(start >= 1, func.substr(actual, start, length) == wanted)
        raise AssertionError(op)  # pragma: no cover - validated

    def _zone_name(self) -> ColumnElement[Any]:
        """The profile's ``timezone`` attribute (a non-empty string), else the workspace's."""
        own = JsonValue(profiles.c.attributes, ["timezone"], self.dialect)
        workspace = (
            select(workspaces.c.timezone).where(workspaces.c.id == self.workspace_id).scalar_subquery()
        )
        return case((and_(own.kind() == "string", own.text() != ""), own.text()), else_=workspace)

    def _date(self, op: str, condition: AttributeCondition, value: JsonValue) -> ColumnElement[bool]:
        expected: Any = condition.value
        if self.pg:
            # flowline_date_holds (migration 0008) takes days, seconds or the value as written.
            if op in DAY_OFFSET_OPS:
                expected = str(parse_duration(expected).days)
            elif op in WINDOW_OPS:
                expected = str(int(parse_duration(expected).total_seconds()))
        holds: ColumnElement[bool] = func.flowline_date_holds(
            value.kind(),
            value.text(),
            self._zone_name(),
            op,
            expected,
            self.now if self.pg else self.now.isoformat(),
            type_=Boolean,
        )
        return holds

    # ------------------------------------------------------------ tags and consent

    def _tag(self, tag: str) -> ColumnElement[bool]:
        if self.pg:
            return and_(
                func.jsonb_typeof(profiles.c.tags) == "array",
                profiles.c.tags.op("@>")(func.jsonb_build_array(literal(tag, String))),
            )
        each = func.json_each(profiles.c.tags).table_valued("value", "type").alias("tag_each")
        return and_(
            func.json_type(profiles.c.tags) == "array",
            exists(select(literal(1)).select_from(each).where(each.c.type == "text", each.c.value == tag)),
        )

    def _do_not_contact(self, condition: DoNotContactCondition) -> ColumnElement[bool]:
        if self.pg:
            each = (
                func.jsonb_array_elements(
                    case(
                        (func.jsonb_typeof(profiles.c.do_not_contact) == "array", profiles.c.do_not_contact),
                        else_=cast(literal("[]"), JSONB),
                    )
                )
                .table_valued("value")
                .alias("dnc_each")
            )
            entry = each.c.value
            channel_kind: ColumnElement[Any] = func.jsonb_typeof(entry.op("->")("channel"))
            channel: ColumnElement[Any] = entry.op("->>")("channel")
            sender_kind: ColumnElement[Any] = func.jsonb_typeof(entry.op("->")("sender"))
            sender: ColumnElement[Any] = entry.op("->>")("sender")
            is_object: ColumnElement[bool] = func.jsonb_typeof(entry) == "object"
        else:
            each = func.json_each(profiles.c.do_not_contact).table_valued("value", "type").alias("dnc_each")
            entry = each.c.value
            channel_kind = func.json_type(entry, "$.channel")
            channel = func.json_extract(entry, "$.channel")
            sender_kind = func.json_type(entry, "$.sender")
            sender = func.json_extract(entry, "$.sender")
            is_object = and_(func.json_type(profiles.c.do_not_contact) == "array", each.c.type == "object")
            channel_kind = case((channel_kind == "text", "string"), else_=channel_kind)
            sender_kind = case((sender_kind == "text", "string"), else_=sender_kind)
        # load_profile_facts keeps entries whose channel is a string; sender: null or missing
        # means every sender (e.get("sender") is None).
        every_sender = or_(sender_kind.is_(None), sender_kind == "null")
        covers_sender = every_sender
        if condition.sender is not None:
            covers_sender = or_(every_sender, and_(sender_kind == "string", sender == condition.sender))
        wanted = condition.do_not_contact
        covers_channel: ColumnElement[bool] = true() if wanted == "any" else channel.in_((wanted, "all"))
        return exists(
            select(literal(1))
            .select_from(each)
            .where(is_object, channel_kind == "string", covers_sender, covers_channel)
        )

    # ------------------------------------------------------------ events and flows

    def _event(self, condition: EventCondition) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = [
            events.c.workspace_id == self.workspace_id,
            events.c.name == condition.event,
        ]
        if condition.within is not None:
            clauses += [
                events.c.timestamp >= since(self.now, condition.within),
                events.c.timestamp <= self.now,
            ]
        if condition.between is not None:
            clauses += [
                events.c.timestamp >= condition.between.from_,
                events.c.timestamp <= condition.between.to,
            ]
        clauses += [sure(self._filter(f)) for f in condition.where]
        op, value = (">=", 1) if condition.count is None else (condition.count.op, condition.count.value)
        holds: ColumnElement[bool]
        if (op == ">=" and value == 1) or (op != ">=" and value == 0):
            # At least one, or none at all: no need to count.
            some = self._some_event(clauses)
            holds = some if op == ">=" else not_(some)
        elif op == ">=" and value == 0:
            holds = true()
        elif op == "<=":
            holds = not_(self._event_count(clauses, ">=", value + 1))
        else:
            holds = self._event_count(clauses, op, value)
        return holds if condition.happened else not_(holds)

    def _some_event(self, clauses: list[ColumnElement[bool]]) -> ColumnElement[bool]:
        # Correlated EXISTS: PostgreSQL turns it into a semi- or anti-join on its own.
        return exists(
            select(literal(1)).select_from(events).where(events.c.profile_id == profiles.c.id, *clauses)
        )

    def _event_count(self, clauses: list[ColumnElement[bool]], op: str, value: int) -> ColumnElement[bool]:
        """The profile has ``op value`` such events (``>=`` or ``=``, value at least 1)."""
        if not self.audience:
            counted = (
                select(func.count())
                .select_from(events)
                .where(events.c.profile_id == profiles.c.id, *clauses)
                .scalar_subquery()
            )
            return counted >= value if op == ">=" else counted == value
        # The window's events once, counted per profile; EXISTS over it becomes a hash join.
        counted_ = func.count()
        grouped = (
            select(events.c.profile_id)
            .where(*clauses)
            .group_by(events.c.profile_id)
            .having(counted_ >= value if op == ">=" else counted_ == value)
            .subquery("event_counts")
        )
        return exists(select(literal(1)).select_from(grouped).where(grouped.c.profile_id == profiles.c.id))

    def _filter(self, f: PropertyFilter) -> ColumnElement[bool]:
        """A ``where`` filter on an event's properties, as PropertyFilter.matches defines it."""
        value = JsonValue(events.c.properties, f.property.split("."), self.dialect)
        kind, expected = value.kind(), f.value
        op = f.op
        if op == "is_empty":
            return value.empty()
        if op == "is_not_empty":
            return not_(sure(value.empty()))
        if op in ("is", "is_not"):
            equal = sure(self._equal(value, expected))
            return equal if op == "is" else not_(equal)
        if op == "contains":
            in_text = and_(kind == "string", self._text("contains", value.text(), str(expected)))
            return or_(sure(in_text), value.has_element(lambda element: self._equal(element, expected)))
        if op in ("starts_with", "ends_with"):
            return and_(kind == "string", self._text(op, value.text(), str(expected)))
        wanted = plain_number(expected)
        if wanted is None:
            return false()
        return _compare(op, self._numeric(value), self._number_literal(wanted))

    def _numeric(self, value: JsonValue) -> ColumnElement[Any]:
        """A JSON number, or a numeric string read as a number; NULL otherwise."""
        kind = value.kind()
        if self.pg:
            raw = value.text()
            return case(
                (kind == "number", cast(raw, Numeric)),
                (
                    and_(kind == "string", func.length(raw) <= NUMERIC_TEXT_MAX, raw.op("~")(NUMERIC_TEXT)),
                    cast(func.btrim(raw), Numeric),
                ),
                else_=None,
            )
        return case(
            (kind == "number", value.number()),
            (kind == "string", func.flowline_number(value.text())),
            else_=None,
        )

    def _equal(self, value: JsonValue, expected: Any) -> ColumnElement[bool]:
        """Python's ``actual == expected`` on JSON values (a missing value equals nothing)."""
        kind = value.kind()
        if expected is None:
            return kind == "null"
        if isinstance(expected, bool):
            as_number = 1 if expected else 0
            return or_(
                kind == ("boolean-true" if expected else "boolean-false"),
                and_(kind == "number", value.number() == as_number),
            )
        if isinstance(expected, int | float):
            matches = [and_(kind == "number", value.number() == self._number_literal(expected))]
            if expected == 1:
                matches.append(kind == "boolean-true")
            if expected == 0:
                matches.append(kind == "boolean-false")
            return or_(*matches)
        if isinstance(expected, str):
            return and_(kind == "string", value.text() == literal(expected, String))
        return false()  # lists and objects: not compiled (filters compare scalars)

    def _flow(self, condition: FlowCondition) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = [
            journeys.c.workspace_id == self.workspace_id,
            journeys.c.profile_id == profiles.c.id,
            journeys.c.flow_id == condition.flow,
        ]
        moment = journeys.c.ended_at if condition.state == "exited" else journeys.c.started_at
        if condition.state == "in_flow":
            clauses.append(journeys.c.status == "running")
        clauses.append(moment.is_not(None))
        if condition.within is not None:
            clauses += [moment >= since(self.now, condition.within), moment <= self.now]
        return exists(select(literal(1)).select_from(journeys).where(*clauses))


def _compare(op: str, left: Any, right: Any) -> ColumnElement[bool]:
    if op == "is":
        return left == right  # type: ignore[no-any-return]
    if op == "less_than":
        return left < right  # type: ignore[no-any-return]
    if op == "less_than_or_equal":
        return left <= right  # type: ignore[no-any-return]
    if op == "greater_than":
        return left > right  # type: ignore[no-any-return]
    if op == "greater_than_or_equal":
        return left >= right  # type: ignore[no-any-return]
    raise AssertionError(op)  # pragma: no cover - validated
