"""Custom elements without servers: how a declarative element's answer decides the outcome and
the saves, the step's graph rules, and param checks against inputs."""

from __future__ import annotations

import json

import pytest

from activities.custom_elements import decide
from flowline.elements.definition import DeclarativeElement
from flowline.elements.params import declarative_faults
from flowline.flow.graph import next_step
from flowline.flow.validation import FlowInvalid, parse_flow
from tests.test_custom_elements import custom_flow, register_element

ELEMENT = DeclarativeElement.model_validate(register_element("https://x.example.com/register"))


def test_outcomes_are_tried_in_order_and_fallback_takes_the_rest() -> None:
    taken = json.dumps({"code": "taken", "id": "R-0"}).encode()
    assert decide(ELEMENT, 409, taken, False, {"seats": 1})[0] == "already"
    assert decide(ELEMENT, 200, taken, False, {"seats": 1})[0] == "registered"
    assert decide(ELEMENT, 422, b"{}", False, {"seats": 2})[0] == "rejected"
    assert decide(ELEMENT, 422, b"{}", False, {"seats": 1})[0] == "fallback"
    assert decide(ELEMENT, 503, b"{}", False, {"seats": 2})[0] == "fallback"


def test_a_condition_that_cannot_be_read_does_not_hold_and_says_why() -> None:
    # 409 with a body without 'code': the condition fails on the missing key.
    outcome, _, notes = decide(ELEMENT, 409, b'{"id": "R-0"}', False, {"seats": 1})
    assert outcome == "fallback"
    assert any(note.startswith("outcome already:") for note in notes)


def test_saves_follow_the_single_value_rule_and_need_json() -> None:
    _, saved, notes = decide(ELEMENT, 200, b'{"id": "R-1", "codes": ["a"]}', False, {})
    assert saved == {"registration": "R-1", "codes": "a"} and notes == []
    outcome, saved, notes = decide(ELEMENT, 200, b"<html>", False, {})
    assert outcome == "registered" and saved == {"registration": None, "codes": None}
    assert notes == ["the response is not JSON"]
    _, saved, notes = decide(ELEMENT, 200, b'{"id": 1e400}', False, {})
    assert saved == {"registration": None, "codes": None}
    assert notes == ["the response holds a number JSON cannot carry"]


def test_params_are_checked_by_name_requirement_and_type() -> None:
    given = {"email": 7, "seats": True, "tags": "{{ vars.tags }}", "other": 1}
    assert declarative_faults(ELEMENT, given, "$.p") == [
        ("$.p.other", "unknown param (the element's inputs: email, seats, tags)"),
        ("$.p.email", "expected a string"),
        ("$.p.seats", "expected an integer"),  # a boolean is no number, as in JSON
    ]
    assert declarative_faults(ELEMENT, {"tags": "x"}, "$.p", rendered=True) == [
        ("$.p.email", "a required param is missing"),
        ("$.p.tags", "expected an array"),
    ]


def test_outcomes_without_a_target_go_on_to_the_next_listed_step() -> None:
    flow = parse_flow(custom_flow({"element": "e", "next": {"error": "on_error"}}))
    [step] = [s for s in flow.steps if s.id == "custom"]
    assert next_step(flow, step, "error") == "on_error"
    assert next_step(flow, step, "registered") == "on_error"  # the step listed after it
    one = parse_flow(custom_flow({"element": "e", "next": "done"}))
    assert next_step(one, one.steps[0], "anything") == "done"


def test_a_target_that_is_no_step_is_a_fault_with_its_path() -> None:
    flow = custom_flow({"element": "e", "next": {"registered": "on_registered"}})
    flow["steps"][0]["next"]["ok"] = "ghost"
    with pytest.raises(FlowInvalid) as raised:
        parse_flow(flow)
    assert [(f.path, f.message) for f in raised.value.faults] == [
        ("$.steps[0].next.ok", "no step has the id 'ghost'")
    ]
