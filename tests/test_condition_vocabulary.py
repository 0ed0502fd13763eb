"""One vocabulary: the operators are named once, a count means what its owner says (a rule's
``<=`` includes no event at all, a wait's does not), every step model is in the ``Step`` union,
and every templated value is walked the same way for checking and rendering."""

from __future__ import annotations

import inspect
from typing import get_args

import pytest
from pydantic import TypeAdapter

from flowline.conditions.events import EventCount, WaitCount
from flowline.conditions.operators import OPS_BY_TYPE, AttributeOp, FilterOp
from flowline.flow import steps
from flowline.flow.base import StepBase
from flowline.flow.steps import Step, control, custom, export, http, messaging, profile, waiting
from flowline.templates import map_strings, render_value, strings_in


def test_property_filters_and_attributes_share_their_operators() -> None:
    assert set(get_args(FilterOp)) <= set(get_args(AttributeOp))
    assert {op for ops in OPS_BY_TYPE.values() for op in ops} == set(get_args(AttributeOp))


@pytest.mark.parametrize(
    ("count", "rule", "wait"), [(0, True, False), (1, True, True), (2, True, True), (3, False, False)]
)
def test_at_most_counts_no_event_in_a_rule_but_not_in_a_wait(count: int, rule: bool, wait: bool) -> None:
    assert EventCount(op="<=", value=2).holds(count) is rule
    assert WaitCount(op="<=", value=2).holds(count) is wait


def test_every_step_model_is_in_the_union_and_exported() -> None:
    in_union = {model for member in get_args(get_args(Step)[0]) for model in _models(member)}
    defined = {
        model
        for module in (control, custom, export, http, messaging, profile, waiting)
        for _, model in inspect.getmembers(module, inspect.isclass)
        if issubclass(model, StepBase)
        and model.__module__ == module.__name__
        and "type" in model.model_fields
    }
    concrete = {m for m in defined if not m.__subclasses__()}
    assert concrete == in_union
    assert {m.__name__ for m in in_union} <= set(steps.__all__)
    TypeAdapter(Step)  # the union builds


def _models(member: object) -> set[type]:
    if isinstance(member, type):
        return {member}
    return {m for arg in get_args(member) for m in _models(arg)}


def test_one_walk_finds_and_renders_every_templated_string() -> None:
    value = {"a": "{{ vars.x }}", "b": [1, "{{ vars.y }}", {"c": "z"}], "d": None}
    assert list(strings_in(value)) == [(".a", "{{ vars.x }}"), (".b[1]", "{{ vars.y }}"), (".b[2].c", "z")]
    assert map_strings(value, str.upper) == {
        "a": "{{ VARS.X }}",
        "b": [1, "{{ VARS.Y }}", {"c": "Z"}],
        "d": None,
    }
    assert render_value(value, {"vars": {"x": 1, "y": "two"}}) == {
        "a": "1",
        "b": [1, "two", {"c": "z"}],
        "d": None,
    }
