"""Steps that talk to other systems over HTTP: ``webhook`` and ``call_api``.

A webhook POSTs and goes on (its one way out, also when it failed for good). A call goes down
``success`` (2xx), ``client_error`` (4xx), ``server_error`` (5xx, after retries) or ``error`` (no
usable response: timeout, refused connection, redirect, a body that is not JSON when values are
to be saved). ``error`` is also where a 4xx or 5xx goes when its own branch is not given.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from flowline.durations import Duration, duration_default
from flowline.flow.base import StepBase, StepId, VariableName, strict_templates
from flowline.flow.template_fields import FormValue, Template, TemplatedData, TemplatedJson, check_templates
from flowline.flow.windows import CallRate, CallWindow
from flowline.strict import Strict

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
CALL_BRANCHES = ("success", "client_error", "server_error", "error")
# httpx sets these from the request itself; letting a flow set them would corrupt the request.
_RESERVED_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}
_LITERAL_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def _url(text: str, info: ValidationInfo) -> str:
    check_templates(text, filters=strict_templates(info))
    text = text.strip()
    if not text.lower().startswith(("http://", "https://")):
        raise ValueError("the URL starts with http:// or https:// (templates may follow)")
    if "{" not in text:
        try:
            _LITERAL_URL.validate_python(text)
        except ValidationError as error:
            raise ValueError(f"not a valid URL: {error.errors()[0]['msg']}") from None
    return text


def _header_name(name: str) -> str:
    if name.lower() in _RESERVED_HEADERS:
        raise ValueError(f"the {name} header is set by the HTTP client")
    return name


def _timeout(value: timedelta) -> timedelta:
    if not timedelta(seconds=1) <= value <= timedelta(seconds=60):
        raise ValueError("a call's timeout is from 1s to 60s")
    return value


HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
RequestHeaderName = Annotated[HeaderName, AfterValidator(_header_name)]
# Parsed by flow validation (validation.py), not here: the workflow sandbox decodes flows too, and
# jsonpath-ng's parser generator cannot run inside it.
JsonPathText = Annotated[str, Field(min_length=1, max_length=1000)]
CallTimeout = Annotated[Duration, AfterValidator(_timeout)]
# An http(s) URL, templates allowed (a literal one must be a valid URL).
CallUrl = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_url)]


class CallApiNext(Strict):
    success: StepId | None = None
    client_error: StepId | None = None
    server_error: StepId | None = None
    error: StepId | None = None


class CallApiBody(Strict):
    """The request body: ``json`` (any JSON value; strings are Liquid templates, and a string that
    is exactly ``{{ path }}`` keeps the JSON type of what it names) or ``form`` (a flat mapping,
    sent URL-encoded, values rendered as text)."""

    json_: TemplatedJson = Field(default=None, alias="json")
    form: dict[str, FormValue] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CallApiBody:
        if (self.json_ is None) == (self.form is None):
            raise ValueError("a body is either 'json' or 'form'")
        return self


class WebhookStep(StepBase):
    """POSTs the flow, step, journey and profile with ``data`` (Liquid templates) to ``url``."""

    type: Literal["webhook"]
    url: AnyHttpUrl
    data: TemplatedData = Field(default_factory=dict)
    next: StepId | None = None


class CallApiStep(StepBase):
    """Calls an HTTP API. ``url``, header values and body strings are Liquid templates over
    profile, event, vars, flow and journey. ``save`` takes variables from the JSON response by
    JSONPath (a path selecting anything but exactly one value saves null), ``save_headers`` from
    response headers. Every call carries an ``Idempotency-Key`` that is the same on each retry."""

    type: Literal["call_api"]
    method: HttpMethod
    url: CallUrl
    headers: dict[RequestHeaderName, Template] = Field(default_factory=dict, max_length=50)
    body: CallApiBody | None = None
    # False: go on down ``success`` as soon as the request is sent; the answer is not awaited.
    wait_for_response: bool = True
    timeout: CallTimeout = duration_default(timedelta(seconds=10))
    save: dict[VariableName, JsonPathText] = Field(default_factory=dict, max_length=50)
    save_headers: dict[VariableName, HeaderName] = Field(default_factory=dict, max_length=50)
    window: CallWindow | None = None
    rate: CallRate | None = None
    next: StepId | CallApiNext | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CallApiStep:
        if self.method == "GET" and self.body is not None:
            raise ValueError("a GET request takes no body")
        if not self.wait_for_response and (self.save or self.save_headers):
            raise ValueError("'save' and 'save_headers' need wait_for_response: true")
        both = sorted(set(self.save) & set(self.save_headers))
        if both:
            raise ValueError(f"saved twice (save and save_headers): {', '.join(both)}")
        return self

    @property
    def saved_variables(self) -> list[str]:
        return [*self.save, *self.save_headers]
