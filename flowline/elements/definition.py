"""A declarative custom element: typed inputs, one HTTP request template, what to save from the
answer and the outcomes it branches by (docs/elements.md).

Configured once through ``PUT /v1/elements/{id}`` and used by ``custom`` steps of many flows. The
request's url, header values and body strings are Liquid templates over ``params`` and the
journey's scope (profile, event, vars, flow, journey), as call_api's are; outcomes are tried in
order, each by a status class, a CEL condition over ``response`` and ``params``, or both; the
first that holds is taken, else ``fallback``. ``error`` is the outcome of no usable answer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from flowline import jsonpath
from flowline.durations import duration_default
from flowline.flow.base import VARIABLE_NAME_PATTERN, Expression, VariableName
from flowline.flow.steps.http import (
    CallApiBody,
    CallTimeout,
    CallUrl,
    HttpMethod,
    JsonPathText,
    RequestHeaderName,
)
from flowline.flow.template_fields import Template
from flowline.strict import Strict

# The outcomes every declarative element has besides its own.
FALLBACK = "fallback"
ERROR = "error"
InputType = Literal["string", "number", "integer", "boolean", "object", "array"]
InputName = Annotated[str, Field(pattern=VARIABLE_NAME_PATTERN)]
OutcomeName = Annotated[str, Field(pattern=VARIABLE_NAME_PATTERN)]
StatusClass = Literal["2xx", "4xx", "5xx"]


def type_fault(kind: InputType, value: Any) -> str | None:
    """Why ``value`` is not of ``kind`` (None when it is). Booleans are no numbers here, as in JSON."""
    fits = {
        "string": isinstance(value, str),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }[kind]
    return None if fits else f"expected {'an' if kind in ('integer', 'object', 'array') else 'a'} {kind}"


class ElementInput(Strict):
    """A named, typed parameter; a step that leaves out one that is not ``required`` gets its
    ``default`` (null without one)."""

    type: InputType
    required: bool = False
    default: Any = None
    description: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _default_fits(self) -> ElementInput:
        if self.default is not None:
            if self.required:
                raise ValueError("a required input has no default")
            why = type_fault(self.type, self.default)
            if why is not None:
                raise ValueError(f"the default is not of its type: {why}")
        return self


class ElementRequest(Strict):
    """The HTTP request the element makes, as call_api makes its own (templates also see
    ``params``)."""

    method: HttpMethod
    url: CallUrl
    headers: dict[RequestHeaderName, Template] = Field(default_factory=dict, max_length=50)
    body: CallApiBody | None = None

    # http_call.build_request reads these of call_api steps too.
    wait_for_response: Literal[True] = True

    @model_validator(mode="after")
    def _no_get_body(self) -> ElementRequest:
        if self.method == "GET" and self.body is not None:
            raise ValueError("a GET request takes no body")
        return self


class ElementOutcome(Strict):
    """Taken when the answer's ``status`` class matches and ``when`` (CEL over
    ``response.status``, ``response.body``, ``params``) holds; either may be left out, not both."""

    name: OutcomeName
    status: StatusClass | None = None
    when: Expression | None = None

    @model_validator(mode="after")
    def _says_when(self) -> ElementOutcome:
        if self.status is None and self.when is None:
            raise ValueError("an outcome has a 'status', a 'when' condition, or both")
        if self.name in (FALLBACK, ERROR):
            raise ValueError(f"{self.name!r} is an outcome every element has")
        return self


def _json_path(text: str, _info: ValidationInfo) -> str:
    try:
        return jsonpath.check(text)
    except jsonpath.PathError as error:
        raise ValueError(str(error)) from None


class DeclarativeElement(Strict):
    """What ``PUT /v1/elements/{id}`` takes; every change is kept as a new version."""

    description: str | None = Field(default=None, max_length=2000)
    inputs: dict[InputName, ElementInput] = Field(default_factory=dict, max_length=50)
    request: ElementRequest
    # variable <- JSONPath into the JSON answer; a path selecting anything but one value saves null.
    save: dict[VariableName, Annotated[JsonPathText, AfterValidator(_json_path)]] = Field(
        default_factory=dict, max_length=50
    )
    timeout: CallTimeout = duration_default(timedelta(seconds=10))
    outcomes: list[ElementOutcome] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _distinct(self) -> DeclarativeElement:
        names = [o.name for o in self.outcomes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"outcome names are listed once: {', '.join(twice)}")
        return self

    @property
    def outcome_names(self) -> list[str]:
        """Every outcome a step's ``next`` may name, in order."""
        return [*(o.name for o in self.outcomes), FALLBACK, ERROR]

    def input_schema(self) -> dict[str, Any]:
        """The inputs as a JSON Schema object (what ``GET /v1/elements`` shows)."""
        properties: dict[str, Any] = {}
        for name, given in self.inputs.items():
            one: dict[str, Any] = {"type": given.type}
            if given.description is not None:
                one["description"] = given.description
            if given.default is not None:
                one["default"] = given.default
            properties[name] = one
        required = [name for name, given in self.inputs.items() if given.required]
        schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        return schema | ({"required": required} if required else {})
