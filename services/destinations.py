"""A workspace's export destinations: set (secrets kept behind the mask), read masked, delete
(refused while a running flow uses one), and check that a destination answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.channels import webhook
from flowline.channels.http_call import CallFailed, CallRefused, exchange
from flowline.channels.outbound import outbound_client
from flowline.destinations.clevertap import CleverTapClient
from flowline.destinations.settings import (
    SECRET_FIELDS,
    CleverTapDestination,
    WebhookDestination,
)
from flowline.flow.steps import ExportStep
from flowline.secrets import kept_secrets, mask
from flowline.store import destinations, event_exports, export_records
from flowline.store.database import Store
from flowline.store.destinations import StoredDestination
from flowline.store.lifecycle import flows_with_step
from services.errors import Invalid, NotFound, Refused


def masked(stored: StoredDestination) -> dict[str, Any]:
    """The destination as the API shows it: its id, settings and times, secrets as the mask."""
    shown = mask(stored.settings.model_dump(mode="json"), SECRET_FIELDS[stored.settings.type])
    return {
        "id": stored.destination_id,
        **shown,
        "created_at": stored.created_at.isoformat(),
        "updated_at": stored.updated_at.isoformat(),
    }


def _unmask(
    settings: CleverTapDestination | WebhookDestination, stored: StoredDestination | None
) -> tuple[CleverTapDestination | WebhookDestination, list[tuple[str, str]]]:
    """Put the stored secrets where ``settings`` sends the mask back (same type only); faults
    where none is stored."""
    same_type = stored is not None and stored.settings.type == settings.type
    kept, faults = kept_secrets(
        settings.model_dump(),
        stored.settings if stored is not None and same_type else None,
        SECRET_FIELDS[settings.type],
        "$",
    )
    return settings.model_copy(update=kept), faults


async def put_destination(
    store: Store, workspace_id: str, destination_id: str, settings: CleverTapDestination | WebhookDestination
) -> StoredDestination:
    """Create or replace the destination; a secret sent as the mask keeps the stored one (Invalid,
    with its path, when none is stored: nothing is written)."""
    async with store.begin() as conn:
        stored = await destinations.get_destination(conn, workspace_id, destination_id)
        settings, faults = _unmask(settings, stored)
        if faults:
            raise Invalid("the destination is invalid; nothing was changed", faults)
        saved = await destinations.put_destination(store, conn, workspace_id, destination_id, settings)
        event_exports.forget(conn, workspace_id)
        return saved


async def get_destination(store: Store, workspace_id: str, destination_id: str) -> StoredDestination:
    async with store.connect() as conn:
        found = await destinations.get_destination(conn, workspace_id, destination_id)
    if found is None:
        raise NotFound(f"no destination {destination_id!r}")
    return found


async def list_destinations(store: Store, workspace_id: str) -> list[StoredDestination]:
    async with store.connect() as conn:
        return await destinations.list_destinations(conn, workspace_id)


async def flows_using(
    conn: AsyncConnection, workspace_id: str, destination_id: str, *, lock: bool = False
) -> list[str]:
    """The running (or draining) flows whose current version uses the destination (export steps)."""
    return await flows_with_step(
        conn,
        workspace_id,
        lambda step: isinstance(step, ExportStep) and step.destination == destination_id,
        lock=lock,
    )


async def delete_destination(store: Store, workspace_id: str, destination_id: str) -> None:
    """Delete the destination: NotFound when there is none, Refused while a running flow uses it."""
    async with store.begin() as conn:
        if await destinations.get_destination(conn, workspace_id, destination_id) is None:
            raise NotFound(f"no destination {destination_id!r}")
        using = await flows_using(conn, workspace_id, destination_id, lock=True)
        if using:
            names = ", ".join(repr(flow_id) for flow_id in using)
            raise Refused(f"destination {destination_id!r} is used by running flows: {names}")
        await destinations.delete_destination(conn, workspace_id, destination_id)
        event_exports.forget(conn, workspace_id)


@dataclass(frozen=True)
class CheckResult:
    """What the destination answered a test: ``status`` None when no answer came."""

    ok: bool
    status: int | None
    message: str


# What a webhook destination receives as a test: an empty, signed batch.
TEST_BATCH: dict[str, Any] = {"records": [], "test": True}


async def check_webhook(settings: WebhookDestination, *, seconds: float, allow_private: bool) -> CheckResult:
    """POST a signed empty batch through the outbound guard (flowline/channels/outbound.py) and
    report the answer: ok for a 2xx."""
    body = webhook.encode(TEST_BATCH)
    headers = {
        "Content-Type": "application/json",
        webhook.SIGNATURE_HEADER: webhook.sign(settings.signing_secret, body),
    }
    async with outbound_client(timeout=seconds, allow_private=allow_private) as client:
        request = client.build_request("POST", str(settings.url), content=body, headers=headers)
        try:
            answer = await exchange(client, request, seconds)
        except (CallFailed, CallRefused) as error:
            return CheckResult(False, None, str(error))
    text = " ".join(answer.body[:300].decode("utf-8", errors="replace").split())
    said = f": {text}" if text else ""
    return CheckResult(200 <= answer.status < 300, answer.status, f"answered {answer.status}{said}")


async def check_clevertap(
    settings: CleverTapDestination, *, seconds: float, allow_private: bool
) -> CheckResult:
    """Check the account id and passcode against CleverTap (an upload of no record, which changes
    nothing), through the same outbound guard as webhooks."""
    async with outbound_client(timeout=seconds, allow_private=allow_private) as http:
        client = CleverTapClient(
            account_id=settings.account_id,
            passcode=settings.passcode,
            http=http,
            region=settings.region,
            base_url=None if settings.base_url is None else str(settings.base_url),
        )
        found = await client.check_credentials()
    return CheckResult(found.ok, found.status, found.message)


async def check_destination(
    store: Store, workspace_id: str, destination_id: str, *, seconds: float, allow_private: bool
) -> CheckResult:
    """Check the destination's settings against the destination itself; NotFound when unknown."""
    settings = (await get_destination(store, workspace_id, destination_id)).settings
    match settings:
        case WebhookDestination():
            return await check_webhook(settings, seconds=seconds, allow_private=allow_private)
        case CleverTapDestination():
            return await check_clevertap(settings, seconds=seconds, allow_private=allow_private)


async def destination_records(
    store: Store, workspace_id: str, destination_id: str, *, status: str | None, after: int, limit: int
) -> list[dict[str, Any]]:
    """The destination's outbox records in the order written, with each one's outcome."""
    async with store.connect() as conn:
        return await export_records.list_records(
            conn, workspace_id, destination_id, status=status, after=after, limit=limit
        )
