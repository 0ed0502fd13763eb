"""Delivering one claimed batch of outbox records to its destination: one adapter per destination
type (flowline/destinations/settings.py), each answering every record's outcome or raising
``RetryLater`` when nothing can be told yet (the batcher retries the whole batch with backoff).

- CleverTap: ``POST {host}/1/upload`` of event and profile records (flowline/destinations/
  clevertap.py), each record's ``identity`` read from its profile when it is sent; a person
  without it is ``skipped`` with the reason.
- Webhook: ``POST {url}`` of ``{"records": [...]}`` signed as webhook steps are; a 2xx delivers
  every record but those the answer lists under ``rejected``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, assert_never

import httpx

from flowline.channels import webhook
from flowline.channels.http_call import CallFailed, CallRefused, exchange
from flowline.destinations.clevertap import (
    CleverTapAuthError,
    CleverTapClient,
    CleverTapError,
    CleverTapRetryableError,
    EventRecord,
    ProfileRecord,
    RetryPolicy,
    Sleep,
)
from flowline.destinations.settings import CleverTapDestination, WebhookDestination
from flowline.store.export_records import ClaimedRecord, Outcome

# The fields of a profile CleverTap's identity may name besides an attribute: its id.
PROFILE_ID = "id"


class RetryLater(Exception):
    """The destination gave no per-record answer (unreachable, 429, 5xx): try the batch again."""


@dataclass(frozen=True)
class Batch:
    records: Sequence[ClaimedRecord]
    # The attributes of the batch's people that still exist, by profile id.
    people: dict[str, dict[str, Any]]


def identity_of(field: str, profile_id: str, people: dict[str, dict[str, Any]]) -> str | None:
    """The value CleverTap knows the person by: the profile's id, or one of its attributes."""
    attributes = people.get(profile_id)
    if attributes is None:
        return None
    if field == PROFILE_ID:
        return profile_id
    value = attributes.get(field)
    if value is None or isinstance(value, dict | list) or value == "":
        return None
    return str(value)


def epoch_seconds(record: ClaimedRecord) -> int:
    return int(record.ts.timestamp())


async def deliver_clevertap(
    settings: CleverTapDestination,
    batch: Batch,
    http: httpx.AsyncClient,
    *,
    retry: RetryPolicy,
    sleep: Sleep | None = None,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    sendable: list[ClaimedRecord] = []
    wire: list[EventRecord | ProfileRecord] = []
    for record in batch.records:
        identity = identity_of(settings.identity, record.profile_id, batch.people)
        if identity is None:
            why = (
                f"profile {record.profile_id!r} no longer exists"
                if record.profile_id not in batch.people
                else f"profile {record.profile_id!r} has no {settings.identity!r} for CleverTap's identity"
            )
            outcomes.append(Outcome(record.id, "skipped", None, why))
            continue
        ts = epoch_seconds(record)
        if record.kind == "profile":
            wire.append(ProfileRecord(identity=identity, ts=ts, profileData=record.data))
        else:
            wire.append(EventRecord(identity=identity, ts=ts, evtName=record.name or "", evtData=record.data))
        sendable.append(record)
    if not sendable:
        return outcomes
    client = CleverTapClient(
        account_id=settings.account_id,
        passcode=settings.passcode,
        http=http,
        region=settings.region,
        base_url=None if settings.base_url is None else str(settings.base_url),
        retry=retry,
        **({} if sleep is None else {"sleep": sleep}),
    )
    try:
        result = await client.upload(wire)
    except CleverTapRetryableError as error:
        raise RetryLater(str(error)) from None
    except (CleverTapAuthError, CleverTapError) as error:
        # Refused as a whole (bad credentials, a malformed request): every record is rejected
        # with CleverTap's reason; retrying would be refused the same way.
        return outcomes + [Outcome(r.id, "rejected", error.status, str(error)) for r in sendable]
    for found in result.outcomes:
        outcomes.append(Outcome(sendable[found.index].id, found.status, found.code, found.message))
    return outcomes


def webhook_record(record: ClaimedRecord) -> dict[str, Any]:
    """A record as a webhook destination receives it."""
    shown: dict[str, Any] = {
        "id": record.record_key,
        "type": record.kind,
        "profile_id": record.profile_id,
        "ts": epoch_seconds(record),
        "data": record.data,
    }
    if record.kind == "event":
        shown["name"] = record.name
    return shown


async def deliver_webhook(
    settings: WebhookDestination, batch: Batch, http: httpx.AsyncClient, *, seconds: float
) -> list[Outcome]:
    body = webhook.encode({"records": [webhook_record(r) for r in batch.records]})
    headers = {
        "Content-Type": "application/json",
        webhook.SIGNATURE_HEADER: webhook.sign(settings.signing_secret, body),
    }
    request = http.build_request("POST", str(settings.url), content=body, headers=headers)
    try:
        answer = await exchange(http, request, seconds)
    except CallRefused as error:
        return [Outcome(r.id, "rejected", None, str(error)) for r in batch.records]
    except CallFailed as error:
        raise RetryLater(str(error)) from None
    text = " ".join(answer.body[:300].decode("utf-8", errors="replace").split())
    if answer.status == 429 or answer.status == 408 or answer.status >= 500:
        raise RetryLater(f"answered {answer.status}: {text}")
    if answer.status >= 300:
        return [
            Outcome(r.id, "rejected", answer.status, f"answered {answer.status}: {text}")
            for r in batch.records
        ]
    refused = _rejected_by_key(answer.body)
    outcomes = []
    for record in batch.records:
        said = refused.get(record.record_key)
        if said is None:
            outcomes.append(Outcome(record.id, "delivered"))
        else:
            outcomes.append(Outcome(record.id, "rejected", said[0], said[1]))
    return outcomes


def _rejected_by_key(body: bytes) -> dict[str, tuple[int | None, str]]:
    """``{"rejected": [{"id", "code"?, "message"?}]}`` in a 2xx answer: the records refused."""
    try:
        answer = json.loads(body) if body else None
    except ValueError:
        return {}
    listed = answer.get("rejected") if isinstance(answer, dict) else None
    if not isinstance(listed, list):
        return {}
    found: dict[str, tuple[int | None, str]] = {}
    for entry in listed:
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            code = entry.get("code")
            found[entry["id"]] = (
                code if isinstance(code, int) and not isinstance(code, bool) else None,
                str(entry.get("message") or "rejected"),
            )
    return found


async def deliver(
    settings: CleverTapDestination | WebhookDestination,
    batch: Batch,
    http: httpx.AsyncClient,
    *,
    seconds: float,
    retry: RetryPolicy,
    sleep: Sleep | None = None,
) -> list[Outcome]:
    """Every record's outcome; ``RetryLater`` when the destination must be tried again."""
    match settings:
        case CleverTapDestination():
            return await deliver_clevertap(settings, batch, http, retry=retry, sleep=sleep)
        case WebhookDestination():
            return await deliver_webhook(settings, batch, http, seconds=seconds)
        case _:
            assert_never(settings)


def batch_size(settings: CleverTapDestination | WebhookDestination) -> int:
    """How many records go in one request."""
    match settings:
        case CleverTapDestination():
            return 1000
        case WebhookDestination():
            return settings.batch_size
        case _:
            assert_never(settings)
