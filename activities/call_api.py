"""The activities of call_api steps: the HTTP call itself, and slots of a shared rate limit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.bookkeeping import template_context
from flowline.activity_contracts import implements
from flowline.channels import http_call
from flowline.journey import (
    CallApiRequest,
    CallApiResult,
    CallSlot,
    CallSlotRequest,
    contracts,
)
from flowline.store import call_rates
from flowline.store.database import Store
from flowline.templates import uses_profile_attributes


class CallApiActivities:
    def __init__(self, store: Store, http: httpx.AsyncClient) -> None:
        self.store = store
        self.http = http
        # Requests sent without waiting for their answer, kept referenced until they end.
        self._unawaited: set[asyncio.Task[Any]] = set()

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.call_api, self.reserve_call_slot]

    @implements(contracts.call_api)
    async def call_api(self, request: CallApiRequest) -> CallApiResult:
        """One attempt. A 5xx or no answer raises for a retry, except on the last attempt, which
        reports it as its branch (so the journey can tell ``server_error`` from ``error``)."""
        step, ref = request.step, request.journey
        templates = [step.url, step.headers, step.body.model_dump() if step.body else None]
        async with self.store.connect() as conn:
            context = await template_context(
                conn, ref, request.scope, load_profile=uses_profile_attributes(templates)
            )
        key = http_call.idempotency_key(ref.journey_id, step.id, request.visit)
        try:
            outgoing = http_call.build_request(self.http, step, context, key)
        except http_call.CallRefused as error:
            return http_call.failure(step, str(error))
        last = activity.info().attempt >= request.attempts
        seconds = step.timeout.total_seconds()
        try:
            if not step.wait_for_response:
                await http_call.send_only(self.http, outgoing, seconds, self._unawaited)
                return CallApiResult(branch="success")
            answer = await http_call.exchange(self.http, outgoing, seconds)
        except http_call.CallRefused as error:
            return http_call.failure(step, str(error))  # e.g. a private address: no retry helps
        except http_call.CallFailed as error:
            if last:
                return http_call.failure(step, str(error))
            raise ApplicationError(str(error), type="CallFailed") from None
        result = http_call.outcome(step, outgoing, answer)
        if result.branch == "server_error" and not last:
            raise ApplicationError(result.error or "server error", type="ServerError")
        return result

    @implements(contracts.reserve_call_slot)
    async def reserve_call_slot(self, request: CallSlotRequest) -> CallSlot:
        """When the journey may make its call under the step's rate (a local activity)."""
        ref = request.journey
        async with self.store.begin() as conn:
            at = await call_rates.reserve(
                self.store,
                conn,
                workspace_id=ref.workspace_id,
                flow_id=ref.flow_id,
                step_id=request.step_id,
                period_seconds=request.period_seconds,
                limit=request.limit,
                at=request.at,
            )
        return CallSlot(at=at)
