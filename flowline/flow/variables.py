"""Declared flow variables: values given at entry are checked against their declarations."""

from __future__ import annotations

from typing import Any

from flowline.flow.flow_settings import FlowSettings, variable_fits
from flowline.json_values import member_path


def variable_faults(settings: FlowSettings, given: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, message) for each given value that does not fit its declared type. Undeclared
    names are allowed: a flow need not declare the variables it uses."""
    faults = []
    for name, value in given.items():
        declaration = settings.variables.get(name)
        if declaration is not None and not variable_fits(declaration.type, value):
            faults.append((member_path("$.variables", name), f"must be a {declaration.type}"))
    return faults
