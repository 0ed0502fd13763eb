"""A custom step's params against its element's inputs: when a flow is saved (the faults, each
with its path) and when the step runs (templates rendered, defaults filled, types checked again).

A param whose value is a string with a Liquid tag is a template: its value is known only when a
journey renders it, so it is checked then (a mismatch is the step's ``error`` outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from flowline.elements.definition import DeclarativeElement, type_fault
from flowline.json_values import member_path


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def declarative_faults(
    element: DeclarativeElement, params: Mapping[str, Any], path: str, *, rendered: bool = False
) -> list[tuple[str, str]]:
    """Unknown names, missing required inputs and values of another type (templates unless
    ``rendered``)."""
    faults = [
        (
            member_path(path, name),
            f"unknown param (the element's inputs: {', '.join(sorted(element.inputs)) or 'none'})",
        )
        for name in params
        if name not in element.inputs
    ]
    for name, given in element.inputs.items():
        if name not in params or params[name] is None:
            if given.required:
                faults.append((member_path(path, name), "a required param is missing"))
            continue
        value = params[name]
        if not rendered and is_template(value):
            continue
        why = type_fault(given.type, value)
        if why is not None:
            faults.append((member_path(path, name), why))
    return faults


def with_defaults(element: DeclarativeElement, params: Mapping[str, Any]) -> dict[str, Any]:
    return {name: params.get(name, given.default) for name, given in element.inputs.items()}


def code_faults(
    model: type[BaseModel], params: Mapping[str, Any], path: str, *, rendered: bool = False
) -> list[tuple[str, str]]:
    """The params model's faults for the params as given (templates unless ``rendered``)."""
    fields = model.model_fields
    faults = [
        (member_path(path, name), f"unknown param (the element's params: {', '.join(fields) or 'none'})")
        for name in params
        if name not in fields
    ]
    templated = {name for name, value in params.items() if not rendered and is_template(value)}
    try:
        model.model_validate({k: v for k, v in params.items() if k in fields and k not in templated})
    except ValidationError as error:
        for item in error.errors(include_url=False):
            name = str(item["loc"][0]) if item["loc"] else ""
            if item["type"] == "missing" and name in templated:
                continue
            where = member_path(path, name) if name else path
            for part in item["loc"][1:]:
                where = f"{where}[{part}]" if isinstance(part, int) else member_path(where, str(part))
            message = "a required param is missing" if item["type"] == "missing" else item["msg"]
            faults.append((where, message.removeprefix("Value error, ")))
    return faults


def outcome_faults(
    outcomes: list[str], chosen: Mapping[str, str], path: str, element_id: str
) -> list[tuple[str, str]]:
    """A ``next`` that names an outcome the element does not have."""
    return [
        (
            member_path(path, name),
            f"element {element_id!r} has no outcome {name!r} (its outcomes: {', '.join(outcomes)})",
        )
        for name in chosen
        if name not in outcomes
    ]
