"""Property filters on event properties (trigger ``where``)."""

from __future__ import annotations

from typing import Any

import pytest

from flowline.conditions import PropertyFilter, matches_all

PROPS: dict[str, Any] = {
    "total": 42.5,
    "plan": "pro",
    "tags": ["a", "b"],
    "item": {"sku": "X-1"},
    "empty": "",
}


@pytest.mark.parametrize(
    ("prop", "op", "value", "expected"),
    [
        ("total", "greater_than", 0, True),
        ("total", "greater_than", 42.5, False),
        ("total", "greater_than_or_equal", 42.5, True),
        ("total", "less_than", "50", True),
        ("total", "less_than_or_equal", 42, False),
        ("plan", "is", "pro", True),
        ("plan", "is_not", "pro", False),
        ("plan", "contains", "r", True),
        ("plan", "starts_with", "p", True),
        ("plan", "ends_with", "x", False),
        ("tags", "contains", "b", True),
        ("item.sku", "is", "X-1", True),
        ("item.missing", "is", "X-1", False),
        ("missing", "is_not", "x", True),
        ("missing", "is_empty", None, True),
        ("empty", "is_empty", None, True),
        ("plan", "is_not_empty", None, True),
        ("plan", "greater_than", 1, False),
        ("total", "is", 42.5, True),
        ("total", "is", "42.5", False),
    ],
)
def test_operators(prop: str, op: str, value: Any, expected: bool) -> None:
    assert (
        PropertyFilter.model_validate({"property": prop, "op": op, "value": value}).matches(PROPS) is expected
    )


def test_all_filters_must_hold() -> None:
    filters = [
        PropertyFilter.model_validate({"property": "plan", "op": "is", "value": "pro"}),
        PropertyFilter.model_validate({"property": "total", "op": "less_than", "value": 10}),
    ]
    assert not matches_all(filters, PROPS)
    assert matches_all(filters[:1], PROPS)
    assert matches_all([], PROPS)
