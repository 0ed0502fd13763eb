"""The activities of the send and notify_internal steps: each message to each recipient once.

A recipient's delivery moves through the ledger (flowline/store/deliveries.py): the rules are
checked and the row written in one transaction ('skipped' with its reason, or 'pending'), the
provider is called outside it with the row's id as idempotency key, and the row is closed
'sent' (with the provider's message id) or 'failed'. A retry finds the row: a closed one is
reported as it is, a pending one is sent again with the same key (the provider, or the
receiver's Message-ID check, recognises the repeat). Push is one FCM call per device and FCM takes
no key: each device's success is written at once (flowline/store/push_sends.py), and a retry
sends only to the devices without one. In-app messages are written with their
ledger row in one transaction, so they exist exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.exceptions import ApplicationError

from activities.bookkeeping import not_recorded_yet, record_end_if_asked, template_context
from activities.heartbeat import heartbeating
from activities.send_messages import render_messages
from flowline import metrics
from flowline.activity_contracts import implements
from flowline.channels.config import ChannelSettings
from flowline.channels.email_links import UNSUBSCRIBE_VARIABLE, EmailLinks
from flowline.channels.fcm import TokenUnregistered
from flowline.channels.feedback import record_sent
from flowline.channels.providers import DeliveryFailed, MessageChannel, OutgoingMessage, Provider
from flowline.channels.registry import provider_for
from flowline.channels.send_rules import address_of, contact_blocked
from flowline.channels.tracking_keys import TrackingKeys
from flowline.durations import format_duration
from flowline.flow.steps import EmailSendStep, InAppSendStep, PushSendStep, SmsSendStep
from flowline.journey import (
    JourneyEnd,
    JourneyRef,
    NotifyRequest,
    SendRequest,
    StepResult,
    contracts,
)
from flowline.store import deliveries, journey_steps, journeys, push_sends, push_tokens, workspaces
from flowline.store.database import Store, utcnow
from flowline.store.events import SystemEvents
from flowline.store.profile_changes import friends_of, lock_profile
from flowline.store.profiles import get_profile, profile_exists
from flowline.templates import TemplateError, render_checked, render_value

log = logging.getLogger(__name__)
# Friends are many: this many sends at once.
RECIPIENT_CONCURRENCY = 10


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | skipped | failed
    delivery_id: str | None
    detail: str | None = None
    # The journey's end was recorded with the ledger row's close (one recipient: ``_close``).
    ended: bool = False


def _outcome(row: dict[str, Any]) -> Outcome:
    return Outcome(row["status"], row["id"], row.get("detail"))


class SendActivities:
    def __init__(self, store: Store, http: httpx.AsyncClient, public_url: str | None = None) -> None:
        self.store = store
        self.http = http
        # Where email tracking links (open pixel, clicks, unsubscribe) point; None: emails go as
        # written.
        self.public_url = public_url
        self.tracking_keys = TrackingKeys(store)

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.send_message, self.notify_internal]

    # ------------------------------------------------------------ send

    @implements(contracts.send_message)
    async def send_message(self, request: SendRequest) -> StepResult:
        # The workflow gives sends a heartbeat timeout: a crashed worker's send is retried in seconds.
        async with heartbeating():
            return await self._send_message(request)

    async def _send_message(self, request: SendRequest) -> StepResult:
        ref, step = request.journey, request.step
        if isinstance(step, InAppSendStep) and step.to == "self":
            return await self._in_app_to_self(request, step)
        async with self.store.connect() as conn:
            recipients = await _recipients(conn, ref, step.to)
            # In-app messages need no provider: no settings to read for them.
            settings = (
                None
                if isinstance(step, InAppSendStep)
                else await workspaces.channel_settings(conn, ref.workspace_id)
            )
        if not recipients:
            return await self._result(request, [], f"no {step.to}: nobody to send to")
        gate = asyncio.Semaphore(RECIPIENT_CONCURRENCY)

        # One recipient: the journey's end (when only the end follows) is recorded in the
        # transaction that closes the ledger row, not in one of its own.
        end = request.ends_journey if len(recipients) == 1 else None

        async def one(recipient: str) -> Outcome:
            async with gate:
                return await self._send_to(request, recipient, settings, end)

        outcomes = await asyncio.gather(*(one(r) for r in recipients))
        return await self._result(request, list(outcomes), None)

    async def _result(self, request: SendRequest, outcomes: list[Outcome], nobody: str | None) -> StepResult:
        sent = [o for o in outcomes if o.status == "sent"]
        if sent:
            branch = "sent"
        elif all(o.status == "skipped" for o in outcomes):
            branch = "skipped"
        else:
            branch = "failed"
        details = sorted({o.detail for o in outcomes if o.status != "sent" and o.detail})
        error = nobody or ("; ".join(details) if details else None)
        ended = any(o.ended for o in outcomes)
        if request.ends_journey is not None and not ended:
            async with self.store.begin() as conn:
                ended = await record_end_if_asked(conn, request.ends_journey, branch, error)
        first = sent[0].delivery_id if sent else (outcomes[0].delivery_id if outcomes else None)
        return StepResult(branch=branch, delivery_id=first, error=error, journey_ended=ended)

    async def _in_app_to_self(self, request: SendRequest, step: InAppSendStep) -> StepResult:
        """An in-app message to the journey's own person (the usual in-app step): one transaction
        writes the ledger row, the inbox message, ``message_sent`` and, when only the end follows
        the step, the journey's end (its record, ``flow_exited`` with ``message_sent`` in one
        INSERT, and the path). Nothing is read that the transaction does not use: no channel
        settings (no provider), no ledger lookup first (the ledger's INSERT ... ON CONFLICT finds
        an earlier attempt's row), the person once. If the journey's record is not committed yet,
        nothing is kept and the retry does it all (as ``send_in_app``)."""
        ref, end = request.journey, request.ends_journey
        at = utcnow()
        written = SystemEvents(ref.workspace_id)
        async with self.store.begin() as conn:
            # The record first when the step ends the journey: the first write takes SQLite's write
            # lock, so the person read next cannot be erased before this commits (PostgreSQL: the
            # read below locks the row), and their events need no second look.
            if end is not None and not await journeys.close_record(conn, end.after_step("sent", at)):
                raise not_recorded_yet(end)
            if request.cap is not None:
                profile, exists = await lock_profile(self.store, conn, ref.workspace_id, ref.profile_id), True
            else:
                found = await get_profile(conn, ref.workspace_id, ref.profile_id, lock=True)
                exists = found is not None
                profile = found or {"id": ref.profile_id, "attributes": {}, "do_not_contact": []}
            # Whether ``exists`` holds until the commit: read under lock (PostgreSQL, a cap) or
            # after this transaction's first write (SQLite); else message_sent looks again.
            locked = end is not None or request.cap is not None or self.store.dialect == "postgresql"
            outcome = await self._in_app_alone(
                conn, request, step, profile, written, exists if locked else None
            )
            branch = {"sent": "sent", "skipped": "skipped"}.get(outcome.status, "failed")
            error = outcome.detail if outcome.status != "sent" and outcome.detail else None
            final = None if end is None else end.after_step(branch, at, error)
            if final is not None and exists:
                journeys.add_exited_event(written, final)
            await written.write(conn)
            if final is not None:
                await journey_steps.record_steps(conn, final.journey, final.path_start, final.path)
                # Counted when this commits; read nothing more for it (issue 17: statements per
                # journey). Only a retry after this commit (a worker killed before the activity
                # reported) would count the end twice.
                metrics.count_journey_end(conn, final)
        return StepResult(
            branch=branch, delivery_id=outcome.delivery_id, error=error, journey_ended=end is not None
        )

    async def _in_app_alone(
        self,
        conn: AsyncConnection,
        request: SendRequest,
        step: InAppSendStep,
        profile: dict[str, Any],
        written: SystemEvents,
        person_exists: bool | None,
    ) -> Outcome:
        """The message of ``_in_app_to_self``: the rules, the templates, then the ledger row (an
        earlier attempt's row, found by the INSERT, is reported as it is)."""
        ref, now = request.journey, request.now
        delivery = self._delivery(request, ref.profile_id)
        _, reason = await self._check(conn, request, ref.profile_id, profile)
        if reason is None:
            context = await _context(conn, ref, request, profile)
            try:
                title = render_checked(step.content.title, context)
                body = render_checked(step.content.body, context)
                data = render_value(step.content.data, context)
            except TemplateError as error:
                reason = f"template: {error}"
        if reason is not None:
            metrics.count_send(conn, delivery.channel, "skipped")
            return _outcome(await deliveries.skip_delivery(self.store, conn, delivery, reason, now))
        if step.consumable:
            data = {**data, "consumable": True}
        delivery_id, delivered = await deliveries.deliver_in_app(
            self.store, conn, delivery, title=title, body=body, data=data, now=now
        )
        if not delivered:
            row = await deliveries.find_delivery(conn, delivery.key)
            assert row is not None
            return _outcome(row)
        row = {**asdict(delivery), "id": delivery_id}
        await record_sent(conn, row, now, into=written, person_exists=person_exists)
        metrics.count_send(conn, delivery.channel, "sent")
        return Outcome("sent", delivery_id)

    @staticmethod
    def _delivery(request: SendRequest, recipient: str) -> deliveries.Delivery:
        ref, step = request.journey, request.step
        return deliveries.Delivery(
            workspace_id=ref.workspace_id,
            journey_id=ref.journey_id,
            step_id=step.id,
            visit=request.visit,
            recipient_id=recipient,
            channel=step.channel,
            flow_id=ref.flow_id,
            version=ref.version,
            sender=step.sender,
        )

    async def _send_to(
        self,
        request: SendRequest,
        recipient: str,
        settings: ChannelSettings | None,
        end: JourneyEnd | None = None,
    ) -> Outcome:
        ref, step, now = request.journey, request.step, request.now
        delivery = self._delivery(request, recipient)
        async with self.store.begin() as conn:
            row = await deliveries.find_delivery(conn, delivery.key)
            if row is not None and row["status"] != "pending":
                return _outcome(row)
            if row is None:
                profile = await self._recipient_row(conn, request, recipient)
                address, reason = await self._check(conn, request, recipient, profile)
                if reason is not None:
                    metrics.count_send(conn, delivery.channel, "skipped")
                    return _outcome(await deliveries.skip_delivery(self.store, conn, delivery, reason, now))
                context = await _context(conn, ref, request, profile)
                if isinstance(step, InAppSendStep):
                    return await self._in_app(conn, step, delivery, context, now)
                delivery = deliveries.Delivery(**{**delivery.__dict__, "address": address})
                row, _ = await deliveries.open_delivery(self.store, conn, delivery, now)
            else:
                profile = await get_profile(conn, ref.workspace_id, recipient) or {"attributes": {}}
                context = await _context(conn, ref, request, profile)
        return await self._deliver(row, step, context, settings, now, end)

    async def _recipient_row(
        self, conn: AsyncConnection, request: SendRequest, recipient: str
    ) -> dict[str, Any]:
        """The recipient's profile; locked under a frequency cap, so that two sends to one person
        count each other against it (without a cap, a plain read: no write lock to wait for)."""
        ws = request.journey.workspace_id
        if request.cap is not None:
            return await lock_profile(self.store, conn, ws, recipient)
        found = await get_profile(conn, ws, recipient)
        return found if found is not None else {"id": recipient, "attributes": {}, "do_not_contact": []}

    async def _check(
        self, conn: AsyncConnection, request: SendRequest, recipient: str, profile: dict[str, Any]
    ) -> tuple[str | None, str | None]:
        """(address, None) when the message may go; (None, reason) when a rule leaves it out."""
        step, ws = request.step, request.journey.workspace_id
        if contact_blocked(profile["do_not_contact"], step.channel, step.sender):
            return None, f"do_not_contact: {step.channel}" + (f" from {step.sender}" if step.sender else "")
        address: str | None = "inbox"
        if isinstance(step, PushSendStep):
            tokens = await push_tokens.push_tokens_of(conn, ws, recipient)
            address = ",".join(t["token"] for t in tokens) or None
        elif isinstance(step, EmailSendStep | SmsSendStep):
            address = address_of(step.channel, profile["attributes"])
        if address is None:
            return None, f"no contact: no {'push token' if step.channel == 'push' else step.channel} address"
        cap = request.cap
        if cap is not None:
            sent = await deliveries.recent_sends(conn, ws, recipient, step.channel, request.now - cap.per)
            if sent >= cap.max:
                within = format_duration(cap.per)
                return None, f"frequency_cap: {sent} {step.channel} messages within {within}"
        return address, None

    async def _in_app(
        self,
        conn: AsyncConnection,
        step: InAppSendStep,
        delivery: deliveries.Delivery,
        context: dict[str, Any],
        now: datetime,
    ) -> Outcome:
        try:
            title = render_checked(step.content.title, context)
            body = render_checked(step.content.body, context)
            data = render_value(step.content.data, context)
        except TemplateError as error:
            metrics.count_send(conn, delivery.channel, "skipped")
            return _outcome(
                await deliveries.skip_delivery(self.store, conn, delivery, f"template: {error}", now)
            )
        if step.consumable:
            data = {**data, "consumable": True}
        delivery_id, delivered = await deliveries.deliver_in_app(
            self.store, conn, delivery, title=title, body=body, data=data, now=now
        )
        if delivered:
            await record_sent(conn, {**asdict(delivery), "id": delivery_id}, now)
            metrics.count_send(conn, delivery.channel, "sent")
        return Outcome("sent", delivery_id)

    async def _deliver(
        self,
        row: dict[str, Any],
        step: EmailSendStep | SmsSendStep | PushSendStep | InAppSendStep,
        context: dict[str, Any],
        settings: ChannelSettings | None,
        now: datetime,
        end: JourneyEnd | None = None,
    ) -> Outcome:
        """Send through the provider and close the ledger row (with the journey's ``end``, if
        given: ``_close``)."""
        assert not isinstance(step, InAppSendStep) and settings is not None
        channel: MessageChannel = step.channel
        provider = provider_for(channel, settings, self.http)
        if provider is None:
            return await self._close(
                row, "failed", f"no {channel} provider is configured for the workspace", end=end
            )
        ws, delivery_id = row["workspace_id"], row["id"]
        links = await self._email_links(ws) if isinstance(step, EmailSendStep) else None
        if links is not None:
            # Templates may place the link themselves: {{ unsubscribe_url }}.
            unsubscribe = links.unsubscribe_url(workspace_id=ws, delivery_id=delivery_id)
            context = {**context, UNSUBSCRIBE_VARIABLE: unsubscribe}
        try:
            messages = render_messages(step, row, context)
        except TemplateError as error:
            return await self._close(row, "failed", f"template: {error}", end=end)
        if links is not None:
            messages = [links.prepare(m, workspace_id=ws, delivery_id=delivery_id) for m in messages]
        # Push: the devices an earlier attempt reached (FCM takes no key: never message them twice).
        reached = await self._devices_sent(row) if channel == "push" else {}
        receipt_ids: list[str | None] = []
        gone: list[str] = []
        try:
            for message in messages:
                if message.to in reached:
                    receipt_ids.append(reached[message.to])
                    continue
                try:
                    receipt = await provider.send(message)
                except TokenUnregistered as unregistered:
                    # The device is gone: forget its token, the person's other devices still get it.
                    await self._forget_token(row, unregistered.token)
                    gone.append(str(unregistered))
                    continue
                if channel == "push":
                    # Committed before the next device: a retry or re-run skips this one.
                    await self._device_sent(row, message.to, receipt.provider_message_id, now)
                receipt_ids.append(receipt.provider_message_id)
        except DeliveryFailed as failure:
            if failure.permanent:
                return await self._close(row, "failed", str(failure), end=end)
            # Retried by Temporal with the same key; the row stays pending.
            metrics.count_send(None, channel, "retried")
            raise ApplicationError(f"{channel} provider: {failure}") from failure
        if not receipt_ids:
            return await self._close(row, "failed", "; ".join(gone), end=end)
        provider_id = next((r for r in receipt_ids if r), None)
        return await self._close(row, "sent", None, provider_id, now, personal=True, end=end)

    async def _devices_sent(self, row: dict[str, Any]) -> dict[str, str | None]:
        async with self.store.connect() as conn:
            return await push_sends.sent_devices(conn, row["id"])

    async def _device_sent(
        self, row: dict[str, Any], token: str, provider_message_id: str | None, now: datetime
    ) -> None:
        async with self.store.begin() as conn:
            await push_sends.record_device_send(self.store, conn, row["id"], token, provider_message_id, now)

    async def _forget_token(self, row: dict[str, Any], token: str) -> None:
        async with self.store.begin() as conn:
            await push_tokens.remove_push_token(conn, row["workspace_id"], token, row["recipient_id"])

    async def _email_links(self, workspace_id: str) -> EmailLinks | None:
        if self.public_url is None:
            return None
        key = await self.tracking_keys.key(workspace_id)
        return EmailLinks(self.public_url, key) if key is not None else None

    async def _close(
        self,
        row: dict[str, Any],
        status: str,
        detail: str | None,
        provider_message_id: str | None = None,
        at: datetime | None = None,
        *,
        personal: bool = False,
        end: JourneyEnd | None = None,
    ) -> Outcome:
        """Close the ledger row; ``personal``: a person's message, whose 'sent' writes
        message_sent in the same transaction (notify_internal's messages are the team's).

        ``end``: the journey's end, recorded in the same transaction (its record, flow_exited
        with message_sent in one INSERT, the path; the person looked up once when the message
        was theirs). If the journey's record is not committed yet, the close commits all the
        same and the activity fails to be retried: the retry finds the row closed, sends nothing
        again and records the end (``_result``)."""
        ws, written = row["workspace_id"], SystemEvents(row["workspace_id"])
        branch = "sent" if status == "sent" else "failed"
        final = (
            None
            if end is None
            else end.after_step(branch, utcnow(), (detail or None) if status != "sent" else None)
        )
        recorded = False
        async with self.store.begin() as conn:
            await deliveries.close_delivery(
                conn, row["id"], status, detail, provider_message_id=provider_message_id, at=at
            )
            recipient_exists: bool | None = None
            if personal and status == "sent":
                recipient_exists = await profile_exists(conn, ws, row["recipient_id"])
                await record_sent(conn, row, at or utcnow(), into=written, person_exists=recipient_exists)
            metrics.count_send(conn, row["channel"], status)
            if final is not None and await journeys.close_record(conn, final):
                recorded = True
                # Counted once: this transaction is the end's first record (a retry after it
                # commits records it through _result, which knows a repeated end).
                metrics.count_journey_end(conn, final)
                ref = final.journey
                exists = recipient_exists
                if exists is None or row["recipient_id"] != ref.profile_id:
                    exists = await profile_exists(conn, ref.workspace_id, ref.profile_id)
                if exists:
                    journeys.add_exited_event(written, final)
            await written.write(conn)
            if final is not None and recorded:
                await journey_steps.record_steps(conn, final.journey, final.path_start, final.path)
        if status == "failed":
            # The reason stays in the ledger: a provider's may quote the address.
            log.warning(
                "%s message of step %s failed for good: delivery %s",
                row["channel"],
                row["step_id"],
                row["id"],
            )
        if end is not None and not recorded:
            raise not_recorded_yet(end)
        return Outcome(status, row["id"], detail, ended=recorded)

    # ------------------------------------------------------------ notify_internal

    @implements(contracts.notify_internal)
    async def notify_internal(self, request: NotifyRequest) -> StepResult:
        """The team's message: to each address (rendered), once per address and step visit."""
        async with heartbeating():
            return await self._notify_internal(request)

    async def _notify_internal(self, request: NotifyRequest) -> StepResult:
        ref, step = request.journey, request.step
        async with self.store.connect() as conn:
            settings = await workspaces.channel_settings(conn, ref.workspace_id)
            context = await template_context(conn, ref, request.scope)
        provider = provider_for(step.channel, settings, self.http)
        if provider is None:
            return StepResult(branch="failed", error=f"no {step.channel} provider is configured")
        try:
            addresses = sorted({render_checked(a, context).strip() for a in step.to} - {""})
            subject = render_checked(step.subject, context)
            body = render_checked(step.body, context)
        except TemplateError as error:
            return StepResult(branch="failed", error=f"template: {error}")
        if not addresses:
            return StepResult(branch="skipped", error="no address: every 'to' rendered empty")
        for address in addresses:
            await self._notify_one(request, provider, address, subject, body)
        async with self.store.begin() as conn:
            ended = await record_end_if_asked(conn, request.ends_journey, "sent")
        return StepResult(branch="sent", journey_ended=ended)

    async def _notify_one(
        self, request: NotifyRequest, provider: Provider, address: str, subject: str, body: str
    ) -> None:
        ref, step = request.journey, request.step
        # The recipient of the ledger is the address itself: the team has no profile.
        delivery = deliveries.Delivery(
            workspace_id=ref.workspace_id,
            journey_id=ref.journey_id,
            step_id=step.id,
            visit=request.visit,
            recipient_id=f"internal:{address}"[:200],
            channel=step.channel,
            flow_id=ref.flow_id,
            version=ref.version,
            address=address,
        )
        async with self.store.begin() as conn:
            row, _ = await deliveries.open_delivery(self.store, conn, delivery, request.now)
        if row["status"] != "pending":
            return
        message = OutgoingMessage(
            channel=step.channel, idempotency_key=row["id"], to=address, subject=subject, text=body
        )
        try:
            receipt = await provider.send(message)
        except DeliveryFailed as failure:
            if failure.permanent:
                await self._close(row, "failed", str(failure))
                return
            metrics.count_send(None, step.channel, "retried")
            raise ApplicationError(f"{step.channel} provider: {failure}") from failure
        await self._close(row, "sent", None, receipt.provider_message_id, request.now)


async def _recipients(conn: AsyncConnection, ref: JourneyRef, to: str) -> list[str]:
    if to == "self":
        return [ref.profile_id]
    if to == "referrer":
        profile = await get_profile(conn, ref.workspace_id, ref.profile_id)
        referrer = profile.get("referrer_id") if profile else None
        return [referrer] if referrer else []
    return await friends_of(conn, ref.workspace_id, ref.profile_id)


async def _context(
    conn: AsyncConnection, ref: JourneyRef, request: SendRequest, recipient: dict[str, Any]
) -> dict[str, Any]:
    """Templates see the journey's person as ``profile`` and whoever gets the message as
    ``recipient`` (the same person unless the step sends to a referrer or friends)."""
    own = recipient.get("id") == ref.profile_id
    context = await template_context(conn, ref, request.scope, load_profile=not own)
    attributes = dict(recipient.get("attributes") or {})
    if own:  # the recipient's row is the journey's person: no second read
        context["profile"] = {**attributes, "id": ref.profile_id}
    context["recipient"] = {**attributes, "id": recipient.get("id")}
    return context
