"""The rule language of docs/conditions.md as pydantic models: one discriminated union ``Condition``.

A condition is a mapping keyed by what it is about — ``attribute``, ``tag``,
``do_not_contact``, ``event``, ``flow`` — or by how it combines others — ``all``, ``any``,
``not``. The key picks the model (``_shape``); a mapping with none or several of these keys
is refused with one clear message. Meanings are defined precisely in the docstrings so that
the in-memory evaluator (flowline/conditions/evaluate.py) and a SQL compilation of the same
rules can agree. The operators are named in operators.py; the event condition, and how it
differs from a wait's, is in events.py.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, model_validator

from flowline.conditions.events import EventCondition
from flowline.conditions.operators import (
    DATE_COMPARISON_OPS,
    DAY_OFFSET_OPS,
    EMPTINESS_OPS,
    OPS_BY_TYPE,
    AttributeOp,
    AttributeType,
)
from flowline.durations import Duration, parse_duration
from flowline.strict import Strict

# ---------------------------------------------------------------- attributes

Scalar = bool | int | float | str | None


def _infer_type(op: str, value: Scalar) -> str | None:
    """The attribute type an operator (and, for is / is_not, the value) implies."""
    owners = [kind for kind, ops in OPS_BY_TYPE.items() if op in ops]
    if len(owners) == 1:
        return owners[0]
    if op in EMPTINESS_OPS:
        return None  # emptiness means the same for every type
    # is / is_not: the value tells
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    raise ValueError(f"'{op}' needs a value")


# The date forms conditions read (the SQL compilation parses exactly these): a date, or a
# date-time to the minute or second, with ``Z`` or an offset ``+HH:MM`` or none.
DATE_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def parse_date_value(text: str) -> date | datetime:
    """A date (``2026-05-01``) or a date-time (``2026-05-01T09:00:00+02:00``, offset optional).

    Only the forms of DATE_TEXT, exactly (no surrounding spaces, no other ISO 8601 forms)."""
    if not DATE_TEXT.fullmatch(text):
        raise ValueError(f"'{text}' is not a date such as 2026-05-01 or 2026-05-01T09:00:00+02:00")
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text)


def _check_value(kind: str | None, op: str, value: Scalar) -> None:
    if op in EMPTINESS_OPS or op == "was_today":
        if value is not None:
            raise ValueError(f"'{op}' takes no value")
        return
    if kind == "boolean" and not isinstance(value, bool):
        raise ValueError(f"'{op}' on a boolean attribute needs true or false")
    if kind == "text" and not isinstance(value, str):
        raise ValueError(f"'{op}' on a text attribute needs a text value")
    if kind == "number" and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        raise ValueError(f"'{op}' on a number attribute needs a number")
    if kind != "date":
        return
    if not isinstance(value, str):
        raise ValueError(f"'{op}' on a date attribute needs a text value")
    if op in DATE_COMPARISON_OPS:
        try:
            parse_date_value(value)
        except ValueError:
            raise ValueError(
                f"'{op}' needs a date (2026-05-01) or a date-time (2026-05-01T09:00:00+02:00)"
            ) from None
        return
    duration = parse_duration(value)
    if op in DAY_OFFSET_OPS and duration % timedelta(days=1):
        raise ValueError(f"'{op}' names a calendar day: give whole days, such as '3d' or '2w'")


class AttributeCondition(Strict):
    """A profile attribute (top-level name) against a value; ``type`` is inferred when omitted.

    Without ``type``: date-only, number-only and text-only operators name their type; ``is`` and
    ``is_not`` take the type of the value (true/false: boolean, a number: number, a string:
    text — give ``type: date`` to compare dates); ``is_empty`` / ``is_not_empty`` need none.

    Meanings (a *missing* attribute equals nothing: every operator is false on it except
    ``is_not`` and ``is_empty``; an attribute of another JSON type counts as missing):
    - empty: the attribute is missing, null, ``""``, ``[]`` or ``{}`` (the same for every type).
    - boolean ``is``: the attribute is that JSON boolean.
    - text: only JSON strings; case-sensitive; ``contains`` / ``starts_with`` / ``ends_with``
      are substring tests.
    - number: only JSON numbers (not numeric strings), compared as numbers (``1`` is ``1.0``).
    - ``is_not``: exactly ``not is``, so it holds for a missing attribute.
    - date: the attribute holds a date (``2026-05-01``: 00:00 that day) or a date-time (without
      an offset: wall time) in the profile's time zone — exactly the forms of ``DATE_TEXT``
      (``2026-05-01T09:00``, ``…T09:00:00``, with ``Z`` or ``+02:00`` or none; other text is
      not a date). A wall time skipped by a DST change is the first instant after the jump;
      one that happens twice is the first (flowline/clock.py ``local_instant``). Against a
      date value, ``is`` / ``before`` / ``until`` / ``since`` / ``after`` compare the
      attribute's calendar day in that zone; against a date-time value (without an offset: in
      the profile's zone), the instants. ``before`` and ``after`` are strict, ``until`` and
      ``since`` inclusive.
    - date, relative to now, with a duration ``d`` (the attribute as an instant ``t``):
      ``was_within d``: now - d <= t <= now; ``was_more_than d``: t < now - d;
      ``will_be_within d``: now <= t <= now + d; ``will_be_more_than d``: t > now + d.
    - the profile's zone: its ``timezone`` attribute (a non-empty string), else the workspace's
      zone; a name that is no IANA zone reads as UTC.
    - date, calendar days in the profile's zone (whole days, DST-safe): ``was_today``: the
      attribute's day is today; ``was Nd``: it is N days before today; ``will_be_in Nd``: it is
      N days after today.
    """

    # No double quote: SQLite's JSON paths cannot name such a key (flowline/conditions/sql.py).
    attribute: str = Field(min_length=1, max_length=200, pattern=r'^[^"]+$')
    op: AttributeOp
    value: Scalar = None
    type: AttributeType | None = None

    @model_validator(mode="after")
    def _fits(self) -> AttributeCondition:
        kind = self.type or _infer_type(self.op, self.value)
        if kind is not None and self.op not in OPS_BY_TYPE[kind]:
            allowed = ", ".join(OPS_BY_TYPE[kind])
            raise ValueError(f"'{self.op}' does not apply to a {kind} attribute (it takes {allowed})")
        _check_value(kind, self.op, self.value)
        return self

    @property
    def kind(self) -> str | None:
        """The attribute type (None: an emptiness test without a declared type)."""
        return self.type or _infer_type(self.op, self.value)


# ---------------------------------------------------------------- tags and consent


class TagCondition(Strict):
    """``has``: the profile carries the tag (exact, case-sensitive name); ``has_not``: it does not."""

    tag: str = Field(min_length=1, max_length=200)
    op: Literal["has", "has_not"] = "has"


Channel = Literal["email", "sms", "push", "in_app"]


class DoNotContactCondition(Strict):
    """The profile opted out of ``do_not_contact`` (a channel, or ``any`` channel).

    An opt-out entry ``{channel, sender}`` covers a channel when its channel is that one or
    ``all``, and covers a sender when its sender is null (every sender) or that sender. Without
    ``sender`` the condition asks about every sender: only entries with a null sender count.
    With ``sender`` it asks whether that sender may not contact the person. ``any``: some
    channel is covered in that sense.
    """

    do_not_contact: Channel | Literal["any"]
    sender: str | None = Field(default=None, min_length=1, max_length=200)


# ---------------------------------------------------------------- flow membership


class FlowCondition(Strict):
    """Journeys of the profile in flow ``flow`` (the current journey counts too).

    ``in_flow``: a journey of that flow is running (with ``within d``: one that started in the
    last d); ``entered``: a journey started (in the last d); ``exited``: a journey ended (in the
    last d). "In the last d" is now - d <= time <= now.
    """

    flow: str = Field(min_length=1, max_length=200)
    state: Literal["in_flow", "entered", "exited"]
    within: Duration | None = None


# ---------------------------------------------------------------- combinations


class AllCondition(Strict):
    """Every condition holds."""

    all: list[Condition] = Field(min_length=1, max_length=100)


class AnyCondition(Strict):
    """At least one condition holds."""

    any: list[Condition] = Field(min_length=1, max_length=100)


class NotCondition(Strict):
    """The condition does not hold."""

    not_: Condition = Field(alias="not")


# The key that names each shape, and the tag of its model (capitalised: error paths skip it).
_SHAPES: dict[str, tuple[str, type[BaseModel]]] = {
    "attribute": ("Attribute", AttributeCondition),
    "tag": ("Tag", TagCondition),
    "do_not_contact": ("DoNotContact", DoNotContactCondition),
    "event": ("Event", EventCondition),
    "flow": ("Flow", FlowCondition),
    "all": ("All", AllCondition),
    "any": ("Any", AnyCondition),
    "not": ("Not", NotCondition),
}
_TAG_OF_MODEL = {model: tag for tag, model in _SHAPES.values()}
SHAPE_KEYS = ", ".join(_SHAPES)


def _shape(value: Any) -> str | None:
    if isinstance(value, dict):
        # "not_": the field name, as data converters that dump by name write it.
        keys = [key for key in _SHAPES if key in value or (key == "not" and "not_" in value)]
        return _SHAPES[keys[0]][0] if len(keys) == 1 else None
    return _TAG_OF_MODEL.get(type(value))


Condition = Annotated[
    Annotated[AttributeCondition, Tag("Attribute")]
    | Annotated[TagCondition, Tag("Tag")]
    | Annotated[DoNotContactCondition, Tag("DoNotContact")]
    | Annotated[EventCondition, Tag("Event")]
    | Annotated[FlowCondition, Tag("Flow")]
    | Annotated[AllCondition, Tag("All")]
    | Annotated[AnyCondition, Tag("Any")]
    | Annotated[NotCondition, Tag("Not")],
    Discriminator(
        _shape,
        custom_error_type="condition_shape",
        custom_error_message=f"a condition is a mapping with exactly one of the keys {SHAPE_KEYS}",
    ),
]

for _model in (AllCondition, AnyCondition, NotCondition):
    _model.model_rebuild()

MAX_DEPTH = 16


def depth(condition: Condition) -> int:
    """How deeply ``all`` / ``any`` / ``not`` nest (a plain condition is 1)."""
    match condition:
        case AllCondition():
            return 1 + max(depth(c) for c in condition.all)
        case AnyCondition():
            return 1 + max(depth(c) for c in condition.any)
        case NotCondition():
            return 1 + depth(condition.not_)
        case _:
            return 1
