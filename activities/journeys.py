"""The activities journeys call. Each is idempotent through the delivery ledger, because
Temporal runs an activity at least once: a retry after a crash must not send twice."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from activities.bookkeeping import (
    end_recorded,
    not_recorded_yet,
    record_end,
    record_end_if_asked,
    record_path,
    template_context,
)
from activities.heartbeat import heartbeating
from flowline import expressions, metrics
from flowline.activity_contracts import implements
from flowline.channels import webhook
from flowline.channels.feedback import record_sent
from flowline.channels.outbound import OutboundRefused
from flowline.journey import (
    EventsFound,
    EventsRequest,
    ExpressionsRequest,
    ExpressionsResult,
    JourneyEnd,
    JourneyMoved,
    JourneyRef,
    JourneySteps,
    ProfileAttributes,
    ProfileAttributesRequest,
    SendInAppRequest,
    StepResult,
    TriggerEvent,
    WebhookRequest,
    contracts,
)
from flowline.store import deliveries, events, journeys, profiles, workspaces
from flowline.store.database import Store, utcnow
from flowline.templates import TemplateError, render_checked, render_value, uses_profile_attributes

log = logging.getLogger(__name__)


class JourneyActivities:
    def __init__(self, store: Store, http: httpx.AsyncClient) -> None:
        self.store = store
        self.http = http

    def all(self) -> Sequence[Callable[..., Any]]:
        return [
            self.send_in_app,
            self.deliver_webhook,
            self.record_journey_end,
            self.record_journey_move,
            self.record_journey_steps,
            self.profile_time_zone,
            self.evaluate_expressions,
            self.profile_attributes,
            self.events_since,
        ]

    @implements(contracts.send_in_app)
    async def send_in_app(self, request: SendInAppRequest) -> StepResult:
        ref = request.journey
        # One transaction: the profile is read, and the ledger row and the inbox message are
        # written together, so a retry finds the row and delivers nothing more.
        async with self.store.begin() as conn:
            templates = [request.title, request.body, request.data]
            context = await template_context(
                conn, ref, request.scope, load_profile=uses_profile_attributes(templates)
            )
            try:
                title = render_checked(request.title, context)
                body = render_checked(request.body, context)
                data = render_value(request.data, context)
            except TemplateError as error:
                # Journeys from before send-channels-v1 still send in-app messages here: a template
                # that fails on their data fails the step at once instead of a day of retries.
                raise ApplicationError(f"template: {error}", non_retryable=True) from None
            delivery = delivery_of(request, "in_app")
            now = utcnow()
            delivery_id, delivered = await deliveries.deliver_in_app(
                self.store, conn, delivery, title=title, body=body, data=data, now=now
            )
            if delivered:
                await record_sent(conn, {**asdict(delivery), "id": delivery_id}, now)
                metrics.count_send(conn, "in_app", "sent")
            ended = await record_end_if_asked(conn, request.ends_journey, "sent")
        return StepResult(branch="sent", delivery_id=delivery_id, journey_ended=ended)

    @implements(contracts.deliver_webhook)
    async def deliver_webhook(self, request: WebhookRequest) -> StepResult:
        # The workflow gives sends a heartbeat timeout: a crashed worker's send is retried in seconds.
        async with heartbeating():
            return await self._deliver_webhook(request)

    async def _deliver_webhook(self, request: WebhookRequest) -> StepResult:
        ref = request.journey
        async with self.store.begin() as conn:
            # Reads first: on SQLite the write lock is taken at the ledger insert and held to commit.
            secret = await workspaces.webhook_secret(conn, ref.workspace_id)
            context = await template_context(conn, ref, request.scope)
            row, _ = await deliveries.open_delivery(self.store, conn, delivery_of(request, "webhook"))
        if row["status"] == "sent":
            async with self.store.begin() as conn:
                ended = await record_end_if_asked(conn, request.ends_journey, "sent")
            return StepResult(branch="sent", delivery_id=row["id"], journey_ended=ended)

        try:
            data = render_value(request.data, context)
        except TemplateError as error:
            # Retrying a template that fails on the journey's data cannot help: the step fails at
            # once, recorded on the path, and the journey goes on.
            message = f"template: {error}"
            async with self.store.begin() as conn:
                await deliveries.close_delivery(conn, row["id"], "failed", message)
                metrics.count_send(conn, "webhook", "failed")
            raise ApplicationError(message, non_retryable=True) from None
        payload = {
            "flow": {"id": ref.flow_id, "version": ref.version, "name": request.scope.flow.get("name")},
            # The receivers' payload keeps its published key: "iteration" is the step's visit.
            "step": {"id": request.step_id, "iteration": request.visit},
            "journey": {"id": ref.journey_id},
            "profile": context["profile"],
            "event": request.scope.event or None,
            "data": data,
        }
        body = webhook.encode(payload)
        headers = {
            "Content-Type": "application/json",
            webhook.SIGNATURE_HEADER: webhook.sign(secret, body),
            # The same key on every retry: receivers can drop a duplicate after a lost response.
            webhook.IDEMPOTENCY_HEADER: row["id"],
        }
        try:
            response = await self.http.post(request.url, content=body, headers=headers)
        except OutboundRefused as error:
            async with self.store.begin() as conn:
                await deliveries.close_delivery(conn, row["id"], "failed", str(error))
                metrics.count_send(conn, "webhook", "failed")
            raise ApplicationError(
                f"webhook to {request.url} refused: {error}", non_retryable=True
            ) from error
        except httpx.HTTPError as error:
            metrics.count_send(None, "webhook", "retried")
            raise ApplicationError(f"webhook to {request.url} failed: {error!r}") from error
        if response.status_code >= 400:
            message = f"webhook to {request.url} answered {response.status_code}"
            log.warning(
                "webhook of step %s answered %d: delivery %s",
                request.step_id,
                response.status_code,
                row["id"],
            )
            # 4xx other than 408/429 will not get better with retries.
            retryable = response.status_code >= 500 or response.status_code in (408, 429)
            if not retryable:
                async with self.store.begin() as conn:
                    await deliveries.close_delivery(conn, row["id"], "failed", message)
                    metrics.count_send(conn, "webhook", "failed")
            else:
                metrics.count_send(None, "webhook", "retried")
            raise ApplicationError(message, non_retryable=not retryable)
        ended = await self._close_sent_and_end(row["id"], request.ends_journey)
        return StepResult(branch="sent", delivery_id=row["id"], journey_ended=ended)

    async def _close_sent_and_end(self, delivery_id: str, end: JourneyEnd | None) -> bool:
        """The ledger row closed as sent and, when asked, the journey's end: one transaction. If
        the journey's record is not committed yet, the close commits all the same and the end is
        retried: the retry finds the row sent, sends nothing again and records the end."""
        async with self.store.begin() as conn:
            await deliveries.close_delivery(conn, delivery_id, "sent")
            metrics.count_send(conn, "webhook", "sent")
            recorded = end is None or await end_recorded(conn, end.after_step("sent", utcnow()))
        if end is not None and not recorded:
            raise not_recorded_yet(end)
        return end is not None

    @implements(contracts.record_journey_end)
    async def record_journey_end(self, end: JourneyEnd) -> None:
        async with self.store.begin() as conn:
            await record_end(conn, end)

    @implements(contracts.record_journey_move)
    async def record_journey_move(self, moved: JourneyMoved) -> None:
        """Listing, stats and routing (the events a journey listens to) follow the new version."""
        async with self.store.begin() as conn:
            await journeys.record_move(conn, moved.journey.journey_id, moved.journey.version)

    @implements(contracts.record_journey_steps)
    async def record_journey_steps(self, steps: JourneySteps) -> None:
        """The path so far, before the journey waits long (a local activity: upserts, so retries
        and replays leave the same rows)."""
        async with self.store.begin() as conn:
            await record_path(conn, steps.journey, steps.start, steps.path)

    @implements(contracts.profile_time_zone)
    async def profile_time_zone(self, ref: JourneyRef) -> str:
        """The person's zone for wall-clock times: their ``timezone`` attribute, else the
        workspace's default ("" if neither)."""
        async with self.store.connect() as conn:
            profile = await profiles.get_profile(conn, ref.workspace_id, ref.profile_id)
            found = await workspaces.person_zone(
                conn, ref.workspace_id, profile["attributes"] if profile else {}
            )
        return found or ""

    @implements(contracts.evaluate_expressions)
    async def evaluate_expressions(self, request: ExpressionsRequest) -> ExpressionsResult:
        """Values of expressions; one that fails is reported, the others still count."""
        needs_profile = any("profile" in text for text in request.expressions.values())
        async with self.store.connect() as conn:
            context = await template_context(conn, request.journey, request.scope, load_profile=needs_profile)
        context["event"] = request.scope.event
        result = ExpressionsResult()
        for name, text in request.expressions.items():
            try:
                result.values[name] = expressions.evaluate(text, context)
            except expressions.ExpressionError as error:
                result.errors[name] = str(error)
        return result

    @implements(contracts.profile_attributes)
    async def profile_attributes(self, request: ProfileAttributesRequest) -> ProfileAttributes:
        """The asked-for attributes of the journey's profile, at this moment (for date waits)."""
        ref = request.journey
        async with self.store.connect() as conn:
            profile = await profiles.get_profile(conn, ref.workspace_id, ref.profile_id)
            attributes = dict(profile["attributes"]) if profile else {}
            if "timezone" in request.names:
                # Wall-clock times fall back to the workspace's zone.
                attributes["timezone"] = await workspaces.person_zone(conn, ref.workspace_id, attributes)
        return ProfileAttributes(
            values={name: attributes[name] for name in request.names if attributes.get(name) is not None}
        )

    @implements(contracts.events_since)
    async def events_since(self, request: EventsRequest) -> EventsFound:
        """The profile's events of these names since ``since`` (a wait that includes the events
        from the journey's entry on)."""
        ref = request.journey
        async with self.store.connect() as conn:
            rows = await events.events_since(
                conn, ref.workspace_id, ref.profile_id, request.names, request.since
            )
        return EventsFound(events=[TriggerEvent.model_validate(r) for r in rows])


def delivery_of(request: SendInAppRequest | WebhookRequest, channel: str) -> deliveries.Delivery:
    """The ledger entry of a single-recipient step (in-app, webhook): the journey's person."""
    ref = request.journey
    return deliveries.Delivery(
        workspace_id=ref.workspace_id,
        journey_id=ref.journey_id,
        step_id=request.step_id,
        visit=request.visit,
        recipient_id=ref.profile_id,
        channel=channel,
        flow_id=ref.flow_id,
        version=ref.version,
    )
