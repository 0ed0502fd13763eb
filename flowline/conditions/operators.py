"""The operators of the condition language, named once and shared by every place that compares.

Profile attributes (``{attribute, op, value}``, flowline/conditions/rules.py) and event
properties (``where: [{property, op, value}]``, flowline/conditions/property_filter.py) use
the same words for the same tests; attributes add date operators and check each operator
against the attribute's type. Event counts (``count: {op, value}``) compare with ``CountOp``:
what a count's ``<=`` includes differs between rules and waits (flowline/conditions/events.py).
"""

from __future__ import annotations

from typing import Literal, get_args

EqualityOp = Literal["is", "is_not"]
EmptinessOp = Literal["is_empty", "is_not_empty"]
TextOp = Literal["contains", "starts_with", "ends_with"]
NumberOp = Literal["less_than", "less_than_or_equal", "greater_than", "greater_than_or_equal"]
# A date attribute against a date or date-time value: before / after strict, until / since inclusive.
DateOrderOp = Literal["before", "until", "since", "after"]
# A date attribute relative to now (a duration) or to today (calendar days).
RelativeDateOp = Literal[
    "will_be_in",
    "will_be_within",
    "will_be_more_than",
    "was",
    "was_within",
    "was_more_than",
    "was_today",
]

# An event property's filter; the order is the one the JSON Schema lists.
FilterOp = Literal[EqualityOp, TextOp, NumberOp, EmptinessOp]
# A profile attribute's condition.
AttributeOp = Literal[EqualityOp, EmptinessOp, TextOp, NumberOp, DateOrderOp, RelativeDateOp]
# How an event count compares with its value.
CountOp = Literal["=", ">=", "<="]

AttributeType = Literal["boolean", "text", "number", "date"]

EQUALITY_OPS: tuple[str, ...] = get_args(EqualityOp)
EMPTINESS_OPS: tuple[str, ...] = get_args(EmptinessOp)
TEXT_OPS: tuple[str, ...] = get_args(TextOp)
NUMBER_OPS: tuple[str, ...] = get_args(NumberOp)
RELATIVE_DATE_OPS: tuple[str, ...] = get_args(RelativeDateOp)
# The operators each attribute type takes (the order fault messages list them in).
OPS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "boolean": (*EQUALITY_OPS, *EMPTINESS_OPS),
    "text": (*EQUALITY_OPS, *TEXT_OPS, *EMPTINESS_OPS),
    "number": (*EQUALITY_OPS, *NUMBER_OPS, *EMPTINESS_OPS),
    "date": (*EQUALITY_OPS, *get_args(DateOrderOp), *EMPTINESS_OPS, *RELATIVE_DATE_OPS),
}
assert {op for ops in OPS_BY_TYPE.values() for op in ops} == set(get_args(AttributeOp))
# Date operators that name a calendar day relative to today (a whole number of days).
DAY_OFFSET_OPS = ("will_be_in", "was")
# Date operators over a window of time relative to now (any duration).
WINDOW_OPS = ("will_be_within", "will_be_more_than", "was_within", "was_more_than")
# Date operators comparing with a date or date-time value.
DATE_COMPARISON_OPS: tuple[str, ...] = (*EQUALITY_OPS, *get_args(DateOrderOp))
