"""Custom elements in code: a Python package registers them under the entry-point group
``flowline.elements`` (docs/elements.md; examples/flowline_element_example/).

The entry point's name is the element's id and its object a ``CodeElement``: a pydantic model of
its params, the outcomes it may return, the variables it may save, and an async function the
worker runs as an activity (retries and timeouts as call_api's). The function's outbound HTTP
goes through ``ElementHttp``, which uses the worker's guarded client, so the SSRF guard
(flowline/channels/outbound.py) and the element's timeout apply to it as to every call.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import httpx
from pydantic import BaseModel

from flowline.channels import http_call
from flowline.flow.base import IDENTIFIER_PATTERN, VARIABLE_NAME_PATTERN

GROUP = "flowline.elements"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ElementAnswer:
    """What a server answered an element's request."""

    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ElementHttp:
    """Outbound HTTP for a code element: the worker's client (no redirects, the SSRF guard unless
    private addresses are allowed) and a timeout no longer than the element's. A refused address
    raises ``http_call.CallRefused`` (never retried); no answer ``http_call.CallFailed``."""

    def __init__(self, client: httpx.AsyncClient, timeout: timedelta, idempotency_key: str) -> None:
        self._client = client
        self._seconds = timeout.total_seconds()
        self.idempotency_key = idempotency_key

    async def request(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> ElementAnswer:
        merged = httpx.Headers({"User-Agent": http_call.USER_AGENT, **(headers or {})})
        content = None if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        if content is not None:
            merged.setdefault("Content-Type", "application/json")
        try:
            outgoing = self._client.build_request(
                method, url, headers=merged, params=params, content=content, timeout=self._seconds
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            raise http_call.CallRefused(f"the URL is not valid: {error}") from None
        answer = await http_call.exchange(self._client, outgoing, self._seconds)
        if answer.too_large:
            raise http_call.CallRefused(f"the response is larger than {http_call.MAX_RESPONSE_BYTES} bytes")
        return ElementAnswer(answer.status, answer.headers, answer.body)


@dataclass(frozen=True)
class ElementRun:
    """What a code element's function is given: its params (validated), the journey's template
    scope (profile, event, vars, flow, journey) and the HTTP helper."""

    params: BaseModel
    scope: dict[str, Any]
    http: ElementHttp


@dataclass(frozen=True)
class ElementResult:
    """The outcome the function chose (one of its ``outcomes``) and the variables to save (names
    among its ``saves``)."""

    outcome: str
    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CodeElement:
    params: type[BaseModel]
    outcomes: tuple[str, ...]
    run: Callable[[ElementRun], Awaitable[ElementResult]]
    saves: tuple[str, ...] = ()
    description: str = ""
    timeout: timedelta = timedelta(seconds=10)

    @property
    def outcome_names(self) -> list[str]:
        """Every outcome a step's ``next`` may name: its own and ``error`` (no usable answer)."""
        return [*self.outcomes, "error"]


def _fits(element: object, name: str) -> bool:
    if not isinstance(element, CodeElement):
        log.warning("entry point %s in %s is no CodeElement: ignored", name, GROUP)
        return False
    names = [name, *element.outcomes, *element.saves]
    if not re.match(IDENTIFIER_PATTERN, name) or not all(
        re.match(VARIABLE_NAME_PATTERN, n) for n in names[1:]
    ):
        log.warning("code element %s has an id, outcome or save name Flowline cannot use: ignored", name)
        return False
    if not timedelta(seconds=1) <= element.timeout <= timedelta(seconds=60):
        # The step's activity allows 90 s: an element's own timeout stays within call_api's range.
        log.warning("code element %s has a timeout outside 1s to 60s: ignored", name)
        return False
    return True


@cache
def code_elements() -> dict[str, CodeElement]:
    """Every code element installed, by id (read once per process: installing one needs a restart)."""
    found: dict[str, CodeElement] = {}
    for point in entry_points(group=GROUP):
        try:
            element = point.load()
        except Exception:
            log.exception("code element %s could not be loaded", point.name)
            continue
        if _fits(element, point.name):
            found[point.name] = element
    return dict(sorted(found.items()))
