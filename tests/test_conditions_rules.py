"""The rule language of docs/conditions.md, evaluated in memory for one profile: attributes,
nesting, validation (tags, consent, events and flows: tests/test_conditions_facts.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from flowline.conditions.evaluate import evaluate
from flowline.conditions.facts import ProfileFacts
from flowline.conditions.rules import Condition

RULE: TypeAdapter[Condition] = TypeAdapter(Condition)
NOW = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)
ATTRIBUTES: dict[str, Any] = {
    "vip": True,
    "newsletter": False,
    "name": "Ada Lovelace",
    "empty_text": "",
    "numeric_text": "36",
    "age": 36,
    "score": 2.5,
    "nothing": None,
    "list": [],
    "renewal": "2026-04-05",
    "signed_up": "2026-03-20T10:00:00+00:00",
    "today": "2026-03-25",
    "bad_date": "soon",
}


def holds(rule: dict[str, Any], facts: ProfileFacts | None = None, now: datetime = NOW) -> bool:
    return evaluate(RULE.validate_python(rule), facts or ProfileFacts(attributes=ATTRIBUTES), now)


def attr(name: str, op: str, value: Any = None, kind: str | None = None) -> dict[str, Any]:
    rule = {"attribute": name, "op": op, "value": value}
    return rule | {"type": kind} if kind else rule


BOOLEAN = [
    ("vip", "is", True, True),
    ("vip", "is", False, False),
    ("newsletter", "is", False, True),
    ("missing", "is", True, False),
    ("missing", "is_not", True, True),
    ("vip", "is_not", True, False),
    ("name", "is", True, False),  # a string is no boolean
    ("vip", "is_empty", None, False),
    ("nothing", "is_empty", None, True),
    ("vip", "is_not_empty", None, True),
    ("missing", "is_not_empty", None, False),
]
TEXT = [
    ("name", "is", "Ada Lovelace", True),
    ("name", "is", "ada lovelace", False),  # case-sensitive
    ("name", "is_not", "Bob", True),
    ("name", "is_not", "Ada Lovelace", False),
    ("missing", "is_not", "Bob", True),
    ("name", "contains", "Love", True),
    ("name", "contains", "love", False),
    ("missing", "contains", "a", False),
    ("name", "starts_with", "Ada", True),
    ("name", "starts_with", "Love", False),
    ("name", "ends_with", "lace", True),
    ("name", "ends_with", "Ada", False),
    ("age", "is", "36", False),  # a number is no text
    ("numeric_text", "is", "36", True),
    ("empty_text", "is_empty", None, True),
    ("list", "is_empty", None, True),
    ("name", "is_empty", None, False),
    ("name", "is_not_empty", None, True),
    ("empty_text", "is_not_empty", None, False),
]
NUMBER = [
    ("age", "is", 36, True),
    ("age", "is", 36.0, True),
    ("age", "is", 35, False),
    ("numeric_text", "is", 36, False),  # a numeric string is no number
    ("vip", "is", 1, False),  # nor is a boolean
    ("age", "is_not", 35, True),
    ("age", "is_not", 36, False),
    ("missing", "is_not", 1, True),
    ("age", "less_than", 40, True),
    ("age", "less_than", 36, False),
    ("age", "less_than_or_equal", 36, True),
    ("age", "less_than_or_equal", 35, False),
    ("age", "greater_than", 35, True),
    ("age", "greater_than", 36, False),
    ("age", "greater_than_or_equal", 36, True),
    ("age", "greater_than_or_equal", 37, False),
    ("score", "greater_than", 2, True),
    ("missing", "greater_than", 0, False),
    ("missing", "less_than", 0, False),
    ("age", "is_empty", None, False),
    ("missing", "is_empty", None, True),
    ("age", "is_not_empty", None, True),
]
DATE = [
    ("renewal", "is", "2026-04-05", True),
    ("renewal", "is", "2026-04-06", False),
    ("renewal", "is_not", "2026-04-06", True),
    ("renewal", "is_not", "2026-04-05", False),
    ("missing", "is_not", "2026-04-05", True),
    ("bad_date", "is_not", "2026-04-05", True),
    ("bad_date", "is", "2026-04-05", False),
    ("renewal", "before", "2026-04-06", True),
    ("renewal", "before", "2026-04-05", False),  # strict
    ("renewal", "until", "2026-04-05", True),  # inclusive
    ("renewal", "until", "2026-04-04", False),
    ("renewal", "since", "2026-04-05", True),
    ("renewal", "since", "2026-04-06", False),
    ("renewal", "after", "2026-04-04", True),
    ("renewal", "after", "2026-04-05", False),
    # Against a date: the calendar day; against a date-time: the instant.
    ("signed_up", "is", "2026-03-20", True),
    ("signed_up", "is", "2026-03-20T11:00:00+01:00", True),
    ("signed_up", "before", "2026-03-20T10:00:01Z", True),
    ("signed_up", "before", "2026-03-20T10:00:00Z", False),
    ("signed_up", "until", "2026-03-20T10:00:00Z", True),
    ("signed_up", "since", "2026-03-20T10:00:00Z", True),
    ("signed_up", "after", "2026-03-20T10:00:00Z", False),
    ("signed_up", "after", "2026-03-20T09:59:59", True),  # no offset: the profile's zone (UTC)
    ("renewal", "is", "2026-04-05T00:00:00+00:00", True),  # a date alone is 00:00 that day
    ("renewal", "will_be_in", "11d", True),
    ("renewal", "will_be_in", "10d", False),
    ("renewal", "will_be_within", "11d", True),  # 04-05 00:00 <= now + 11d
    ("renewal", "will_be_within", "10d", False),
    ("renewal", "will_be_more_than", "10d", True),
    ("renewal", "will_be_more_than", "11d", False),
    ("renewal", "was_within", "30d", False),  # the future is not "was"
    ("signed_up", "was", "5d", True),
    ("signed_up", "was", "4d", False),
    ("signed_up", "was_within", "6d", True),
    ("signed_up", "was_within", "5d", False),  # 10:00 < now - 5d (12:00)
    ("signed_up", "was_within", "122h", True),  # any duration: 10:00 five days ago, exactly
    ("signed_up", "was_more_than", "5d", True),
    ("signed_up", "was_more_than", "6d", False),
    ("today", "was_today", None, True),
    ("signed_up", "was_today", None, False),
    ("missing", "was_today", None, False),
    ("missing", "was_within", "7d", False),
    ("missing", "will_be_in", "1d", False),
    ("missing", "before", "2030-01-01", False),
    ("missing", "after", "2000-01-01", False),
    ("bad_date", "before", "2030-01-01", False),
    ("age", "before", "2030-01-01", False),  # a number is no date
    ("renewal", "is_empty", None, False),
    ("missing", "is_empty", None, True),
    ("renewal", "is_not_empty", None, True),
]


@pytest.mark.parametrize(
    ("kind", "name", "op", "value", "expected"),
    [("boolean", *case) for case in BOOLEAN]
    + [("text", *case) for case in TEXT]
    + [("number", *case) for case in NUMBER]
    + [("date", *case) for case in DATE],
)
def test_attribute_operators(kind: str, name: str, op: str, value: Any, expected: bool) -> None:
    assert holds(attr(name, op, value, kind)) is expected
    if op not in ("is_empty", "is_not_empty") and kind != "date":
        assert holds(attr(name, op, value)) is expected, "the same without a declared type (inferred)"


def test_the_type_is_inferred_from_the_operator_or_the_value() -> None:
    kinds = {
        ("contains", "x"): "text",
        ("less_than", 1): "number",
        ("was_within", "1d"): "date",
        ("is", True): "boolean",
        ("is", 1.5): "number",
        ("is", "2026-04-05"): "text",
        ("is_empty", None): None,
    }
    for (op, value), kind in kinds.items():
        assert RULE.validate_python(attr("a", op, value)).kind == kind  # type: ignore[union-attr]


BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(
    ("now", "value", "op", "duration", "expected"),
    [
        # 2026-03-29T22:30Z is 00:30 on 30 March in Berlin, after the spring-forward night;
        # 24 hours earlier was still 28 March there, but "1 day ago" is the 29th.
        (datetime(2026, 3, 29, 22, 30, tzinfo=UTC), "2026-03-30", "was_today", None, True),
        (datetime(2026, 3, 29, 22, 30, tzinfo=UTC), "2026-03-29", "was", "1d", True),
        (datetime(2026, 3, 29, 22, 30, tzinfo=UTC), "2026-03-28", "was", "1d", False),
        (datetime(2026, 3, 29, 22, 30, tzinfo=UTC), "2026-03-30T01:00:00+00:00", "was_today", None, True),
        # 00:30 on 25 October (fall-back day): 24 hours later is still the 25th, "in 1 day" the 26th.
        (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), "2026-10-26", "will_be_in", "1d", True),
        (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), "2026-10-25", "will_be_in", "1d", False),
        (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), "2026-10-25", "was_today", None, True),
        (datetime(2026, 10, 24, 22, 30, tzinfo=UTC), "2026-11-01", "will_be_in", "1w", True),
    ],
)
def test_calendar_days_are_in_the_profiles_zone_across_dst(
    now: datetime, value: str, op: str, duration: str | None, expected: bool
) -> None:
    facts = ProfileFacts(attributes={"d": value}, timezone=BERLIN)
    assert holds(attr("d", op, duration), facts, now) is expected
    # In UTC the same instant is on another calendar day.
    assert holds(attr("d", op, duration), ProfileFacts(attributes={"d": value}), now) is not expected


def test_dates_without_an_offset_are_in_the_profiles_zone() -> None:
    facts = ProfileFacts(attributes={"d": "2026-03-25T09:00:00", "e": "2026-03-25"}, timezone=BERLIN)
    # 09:00 in Berlin (CET) is 08:00 UTC.
    assert holds(attr("d", "is", "2026-03-25T08:00:00Z", "date"), facts)
    assert holds(attr("e", "after", "2026-03-24T22:59:59Z", "date"), facts)  # 00:00 CET
    assert not holds(attr("e", "after", "2026-03-24T23:00:00Z", "date"), facts)
    unknown_zone = ProfileFacts(attributes={"d": "2026-03-25T09:00:00"}, timezone="Mars/Olympus")
    assert holds(attr("d", "is", "2026-03-25T09:00:00Z", "date"), unknown_zone), "an unknown zone is UTC"


def test_all_any_not_nest() -> None:
    facts = ProfileFacts(attributes=ATTRIBUTES, tags=frozenset({"vip"}))
    yes, no = {"tag": "vip"}, {"tag": "churned"}
    assert holds({"all": [yes, {"attribute": "age", "op": "greater_than", "value": 18}]}, facts)
    assert not holds({"all": [yes, no]}, facts)
    assert holds({"any": [no, yes]}, facts)
    assert not holds({"any": [no, {"event": "refund"}]}, facts)
    assert holds({"not": no}, facts)
    assert not holds({"not": {"not": no}}, facts)
    nested = {"all": [{"any": [no, {"not": {"event": "refund"}}]}, {"not": {"all": [yes, no]}}]}
    assert holds(nested, facts)


def test_conditions_survive_a_round_trip_by_alias_and_by_field_name() -> None:
    rule = RULE.validate_python(
        {
            "not": {
                "all": [
                    {"event": "e", "between": {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}},
                    {"attribute": "d", "op": "was_within", "value": "7d"},
                ]
            }
        }
    )
    assert RULE.validate_json(RULE.dump_json(rule, by_alias=True)) == rule
    assert RULE.validate_json(to_json(rule)) == rule  # what Temporal's data converter writes


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="naive"):
        holds({"tag": "x"}, now=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (attr("age", "contains", 3), "'contains' on a text attribute needs a text value"),
        (attr("age", "before", 1, "number"), "'before' does not apply to a number attribute"),
        (attr("vip", "contains", "x", "boolean"), "'contains' does not apply to a boolean attribute"),
        (attr("name", "less_than", "b", "text"), "'less_than' does not apply to a text attribute"),
        (attr("vip", "is", "yes", "boolean"), "needs true or false"),
        (attr("age", "is", "3", "number"), "on a number attribute needs a number"),
        (attr("age", "is"), "'is' needs a value"),
        (attr("age", "is_empty", 1), "'is_empty' takes no value"),
        (attr("d", "was_today", "1d"), "'was_today' takes no value"),
        (attr("d", "was", "12h"), "give whole days"),
        (attr("d", "will_be_in", "36h"), "give whole days"),
        (attr("d", "was_within", "soon"), "is not a duration"),
        (attr("d", "before", "tomorrow"), "needs a date"),
        (attr("d", "equals", 1), "Input should be"),
        ({"colour": "red"}, "exactly one of the keys attribute, tag, do_not_contact"),
        ({"tag": "x", "attribute": "y"}, "exactly one of the keys"),
        ("vip", "exactly one of the keys"),
        ({"tag": "x", "colour": "red"}, "Extra inputs are not permitted"),
        ({"tag": "x", "op": "is"}, "Input should be 'has' or 'has_not'"),
        ({"all": []}, "at least 1 item"),
        ({"any": [{"tag": "x"}, {"colour": "red"}]}, "exactly one of the keys"),
        ({"do_not_contact": "fax"}, "Input should be"),
        ({"event": "e", "within": "7d", "between": {"from": "2026-01-01", "to": "2026-01-02"}}, "either"),
        ({"event": "e", "between": {"from": "2026-01-02", "to": "2026-01-01"}}, "'from' must not be after"),
        ({"event": "e", "within": "0d"}, "longer than zero"),
        ({"event": "e", "count": {"op": ">", "value": 1}}, "Input should be '=', '>=' or '<='"),
        ({"event": "e", "count": {"op": ">=", "value": -1}}, "greater than or equal to 0"),
        ({"flow": "f", "state": "left"}, "Input should be 'in_flow', 'entered' or 'exited'"),
        ({"flow": "f"}, "Field required"),
    ],
)
def test_invalid_conditions_are_refused_with_a_clear_message(rule: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RULE.validate_python(rule)
    assert message in str(caught.value)
