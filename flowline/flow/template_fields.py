"""Which fields of a flow are Liquid templates, and the one check every one of them goes through.

A step field is a template when its type is one of these: ``Template`` or ``LongTemplate`` (one
string), ``TemplatedData`` (a mapping whose values hold templates: webhook, push and in-app
``data``), ``TemplatedJson`` (any JSON value whose strings are templates: call_api's ``json``
body) or ``FormValue`` (call_api's ``form`` values). Each is checked here, string by string,
through ``flowline.templates.strings_in``; activities render the same fields with
``render_checked`` / ``render_value``, which walk values the same way.

Two rules differ by age, and stay as they were so stored flows still decode: ``Template``,
``LongTemplate`` and call_api's fields are always parsed (unknown filters refused only in flows
being saved); ``TemplatedData`` was not checked before, so it is checked only in flows being
saved, and its faults name where inside the value they are.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, JsonValue, ValidationInfo

from flowline.flow.base import strict_templates
from flowline.templates import TemplateError, check, strings_in


def check_templates(value: Any, *, filters: bool, name_place: bool = False) -> None:
    """Every string inside ``value`` parses as Liquid (with ``filters``: names known filters).
    With ``name_place`` a fault says where inside the value it is (``items[0].title: ...``)."""
    for where, text in strings_in(value):
        try:
            check(text, filters=filters)
        except TemplateError as error:
            place = where.lstrip(".")
            raise ValueError(f"{place}: {error}" if name_place and place else str(error)) from None


def _template(text: str, info: ValidationInfo) -> str:
    check_templates(text, filters=strict_templates(info))
    return text


def _templates(value: Any, info: ValidationInfo) -> Any:
    check_templates(value, filters=strict_templates(info))
    return value


def _templated_value(value: Any, info: ValidationInfo) -> Any:
    if strict_templates(info):
        check_templates(value, filters=True, name_place=True)
    return value


# A Liquid template, parsed when the flow is validated (a fault names its path).
Template = Annotated[str, Field(max_length=10_000), AfterValidator(_template)]
LongTemplate = Annotated[str, Field(max_length=100_000), AfterValidator(_template)]
# JSON data whose strings are Liquid templates (a webhook's data, a push or in-app message's data);
# a fault's path names the key, and the message where inside its value.
TemplatedData = dict[str, Annotated[Any, AfterValidator(_templated_value)]]
# A JSON value whose strings are Liquid templates (call_api's json body).
TemplatedJson = Annotated[JsonValue, AfterValidator(_templates)]
# A form field's value: a template, or a number or true/false sent as JSON writes it.
FormValue = Annotated[str | int | float | bool, AfterValidator(_templates)]
