"""The activity of custom steps: a declarative element's HTTP request and outcomes, or a code
element's function (docs/elements.md).

Which version of a declarative element runs: the newest made at or before the journey entered
its flow (its row's ``started_at``, written by the claim with the same clock as the versions'
``created_at``), so a journey in flight keeps the element it started with and new journeys take
an edit at once, with no state in the workflow. The workflow's own clock is not used: Temporal's
time can differ from the store's (the time-skipping test server runs it far ahead).

Attempts, timeouts and refusals follow call_api's: a 5xx or no answer is retried up to the last
attempt, which reports it; an address the SSRF guard refuses, a template that fails or params
that do not fit are the ``error`` outcome at once. The result carries the outcome, the status,
an error text (method and URL without the query string, never headers) and the saved values.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from liquid.exceptions import LiquidError
from pydantic import ValidationError
from sqlalchemy import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.bookkeeping import template_context
from flowline import expressions, jsonpath
from flowline.activity_contracts import implements
from flowline.channels import http_call
from flowline.elements.definition import ERROR, FALLBACK, DeclarativeElement, ElementOutcome
from flowline.elements.params import declarative_faults, with_defaults
from flowline.elements.plugins import CodeElement, ElementHttp, ElementRun, code_elements
from flowline.flow.steps.http import CallApiBody
from flowline.journey import CustomElementRequest, CustomElementResult, contracts
from flowline.json_values import non_finite_error
from flowline.store import elements
from flowline.store.database import Store
from flowline.store.tables import journeys

_STATUS_CLASSES = {"2xx": 2, "4xx": 4, "5xx": 5}


@dataclass(frozen=True)
class _Template:
    """A declarative element's request as http_call.build_request reads a call_api step."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: CallApiBody | None
    timeout: timedelta
    wait_for_response: bool = True


def _failed(reason: str, variables: Sequence[str] = (), version: int | None = None) -> CustomElementResult:
    return CustomElementResult(
        outcome=ERROR, error=reason, variables=dict.fromkeys(variables), element_version=version
    )


def _matches(outcome: ElementOutcome, status: int, context: dict[str, Any], notes: list[str]) -> bool:
    if outcome.status is not None and status // 100 != _STATUS_CLASSES[outcome.status]:
        return False
    if outcome.when is None:
        return True
    try:
        return expressions.evaluate(outcome.when, context) is True
    except expressions.ExpressionError as error:
        notes.append(f"outcome {outcome.name}: {error}")  # a condition that cannot be read does not hold
        return False


def decide(
    definition: DeclarativeElement, status: int, body: bytes, too_large: bool, params: dict[str, Any]
) -> tuple[str, dict[str, Any], list[str]]:
    """The outcome (the first that holds, else fallback), the saved variables and notes."""
    notes: list[str] = []
    document: Any = None
    readable = False
    if too_large:
        notes.append(f"the response is larger than {http_call.MAX_RESPONSE_BYTES} bytes")
    else:
        try:
            document, readable = json.loads(body), True
        except ValueError:
            if definition.save:
                notes.append("the response is not JSON")
    if readable and non_finite_error(document) is not None:
        document, readable = None, False  # NaN or 1e400 in the answer: no JSON value to go by
        notes.append("the response holds a number JSON cannot carry")
    context = {"response": {"status": status, "body": document}, "params": params}
    outcome = next((o.name for o in definition.outcomes if _matches(o, status, context, notes)), FALLBACK)
    variables: dict[str, Any] = {}
    for name, path in definition.save.items():
        variables[name] = None
        if not readable:
            continue
        variables[name], why = jsonpath.select_one(path, document)
        if why is not None:
            notes.append(f"save {name}: {why}")
    return outcome, variables, notes


class CustomElementActivities:
    def __init__(self, store: Store, http: httpx.AsyncClient) -> None:
        self.store = store
        self.http = http

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.run_custom_element]

    @implements(contracts.run_custom_element)
    async def run_custom_element(self, request: CustomElementRequest) -> CustomElementResult:
        step, ref = request.step, request.journey
        code = code_elements().get(step.element)
        async with self.store.connect() as conn:
            context = await template_context(conn, ref, request.scope)
            stored = None
            if code is None:
                entered = await _entered_at(conn, ref.journey_id)
                stored = await elements.get_element(conn, ref.workspace_id, step.element, as_of=entered)
        last = activity.info().attempt >= request.attempts
        key = http_call.idempotency_key(ref.journey_id, step.id, request.visit)
        try:
            params = http_call.render_json(step.params, context)
        except LiquidError as error:
            return _failed(f"a param's template failed: {str(error).splitlines()[0]}")
        if code is not None:
            return await self._run_code(code, params, context, key, last)
        if stored is None:
            return _failed(f"no element {step.element!r}")
        return await self._run_declarative(stored.definition, stored.version, params, context, key, last)

    async def _run_declarative(
        self,
        definition: DeclarativeElement,
        version: int,
        given: dict[str, Any],
        context: dict[str, Any],
        key: str,
        last: bool,
    ) -> CustomElementResult:
        saves = list(definition.save)
        faults = declarative_faults(definition, given, "params", rendered=True)
        if faults:
            return _failed("; ".join(f"{path}: {why}" for path, why in faults), saves, version)
        params = with_defaults(definition, given)
        spec = definition.request
        template = _Template(spec.method, spec.url, spec.headers, spec.body, definition.timeout)
        try:
            outgoing = http_call.build_request(self.http, template, {**context, "params": params}, key)
            answer = await http_call.exchange(self.http, outgoing, definition.timeout.total_seconds())
        except http_call.CallRefused as error:
            return _failed(str(error), saves, version)  # e.g. a private address: no retry helps
        except http_call.CallFailed as error:
            if last:
                return _failed(str(error), saves, version)
            raise ApplicationError(str(error), type="CallFailed") from None
        if answer.status >= 500 and not last:
            raise ApplicationError(
                f"{http_call.where(outgoing)} answered {answer.status}", type="ServerError"
            )
        outcome, variables, notes = decide(definition, answer.status, answer.body, answer.too_large, params)
        if not 200 <= answer.status < 300:
            notes.insert(
                0, f"{http_call.where(outgoing)} answered {answer.status}{http_call.snippet(answer.body)}"
            )
        return CustomElementResult(
            outcome=outcome,
            status_code=answer.status,
            error="; ".join(notes) or None,
            variables=variables,
            element_version=version,
        )

    async def _run_code(
        self, code: CodeElement, given: dict[str, Any], context: dict[str, Any], key: str, last: bool
    ) -> CustomElementResult:
        saves = list(code.saves)
        try:
            params = code.params.model_validate(given)
        except ValidationError as error:
            why = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            return _failed(f"the params do not fit: {why}", saves)
        run = ElementRun(params=params, scope=context, http=ElementHttp(self.http, code.timeout, key))
        try:
            async with asyncio.timeout(code.timeout.total_seconds()):
                result = await code.run(run)
        except http_call.CallRefused as error:
            return _failed(str(error), saves)
        except Exception as error:  # the element's own failure or no answer: retried like a call
            reason = (
                f"timed out after {code.timeout.total_seconds():g}s"
                if isinstance(error, TimeoutError)
                else str(error)
            )
            if last:
                return _failed(reason or type(error).__name__, saves)
            raise ApplicationError(reason or type(error).__name__, type="ElementFailed") from None
        notes = []
        if result.outcome not in code.outcomes:
            return _failed(f"the element returned the unknown outcome {result.outcome!r}", saves)
        variables: dict[str, Any] = dict.fromkeys(saves)
        for name, value in result.variables.items():
            if name not in code.saves:
                notes.append(f"save {name}: not among the element's saves")
                continue
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                notes.append(f"save {name}: not a JSON value")
                continue
            variables[name] = value
        return CustomElementResult(
            outcome=result.outcome, error="; ".join(notes) or None, variables=variables
        )


async def _entered_at(conn: Any, journey_id: str) -> datetime | None:
    query = select(journeys.c.started_at).where(journeys.c.id == journey_id)
    found: datetime | None = (await conn.execute(query)).scalar_one_or_none()
    return found
