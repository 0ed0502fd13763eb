"""A push to a person's several devices, through the send activity and the fake FCM server, on
both databases: FCM takes no idempotency key, so a retry after one device failed, or a re-run
after the worker died between devices, must not message the devices already reached, and every
device's message id is kept."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.sends import SendActivities
from flowline.channels.config import ChannelSettings
from flowline.flow.steps import PushSendStep
from flowline.journey import JourneyRef, SendRequest, StepResult, TemplateScope
from flowline.store import deliveries, push_tokens, workspaces
from flowline.store.database import Store, utcnow
from flowline.store.erasure import erase_profile
from flowline.store.tables import push_sends
from tests.conftest import Tenant
from tests.providers import FakeFcm, fake_fcm
from tests.test_sms_push_providers import fcm_settings


@pytest.fixture
def fcm() -> Iterator[FakeFcm]:
    with fake_fcm(unregistered={"stale-device"}) as fake:
        yield fake


@pytest_asyncio.fixture
async def sends(store: Store) -> AsyncIterator[SendActivities]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield SendActivities(store, http)


async def _devices(store: Store, tenant: Tenant, fcm: FakeFcm, *tokens: str) -> None:
    async with store.begin() as conn:
        await workspaces.set_channel_settings(conn, tenant.id, ChannelSettings(push=fcm_settings(fcm)))
        registered = [{"token": t, "platform": "android"} for t in tokens]
        await push_tokens.set_push_tokens(store, conn, tenant.id, "ada", registered)


def _request(tenant: Tenant) -> SendRequest:
    step = PushSendStep.model_validate(
        {"id": "push", "type": "send", "channel": "push", "content": {"title": "Hi", "body": "Ships today"}}
    )
    ref = JourneyRef(
        journey_id=f"j-{uuid.uuid4().hex[:10]}",
        workspace_id=tenant.id,
        flow_id="f",
        version=1,
        profile_id="ada",
    )
    return SendRequest(journey=ref, step=step, visit=0, scope=TemplateScope(), now=utcnow())


async def _send(sends: SendActivities, request: SendRequest) -> StepResult:
    result: StepResult = await ActivityEnvironment().run(sends.send_message, request)
    return result


def _sent_to(fcm: FakeFcm) -> Counter[str]:
    return Counter(m["token"] for m in fcm.accepted)


async def _device_rows(store: Store, delivery_id: str) -> dict[str, Any]:
    async with store.connect() as conn:
        rows = await conn.execute(
            select(push_sends.c.token, push_sends.c.provider_message_id).where(
                push_sends.c.delivery_id == delivery_id
            )
        )
        return {str(token): name for token, name in rows}


async def test_a_retry_after_one_device_failed_sends_only_to_that_device(
    store: Store, tenant: Tenant, fcm: FakeFcm, sends: SendActivities
) -> None:
    await _devices(store, tenant, fcm, "device-1", "stale-device", "device-2")
    fcm.fail_tokens["device-2"] = [503]
    request = _request(tenant)
    with pytest.raises(ApplicationError, match="503"):
        await _send(sends, request)
    assert _sent_to(fcm) == {"device-1": 1}
    result = await _send(sends, request)
    assert result.branch == "sent"
    # Each device got the message exactly once; the unregistered one is forgotten.
    assert _sent_to(fcm) == {"device-1": 1, "device-2": 1}
    async with store.connect() as conn:
        assert [t["token"] for t in await push_tokens.push_tokens_of(conn, tenant.id, "ada")] == [
            "device-1",
            "device-2",
        ]
    # Every device's message id is kept; the ledger row names the first device's, and a report
    # naming any device's message finds the delivery.
    names = {m["token"]: m["name"] for m in fcm.accepted}
    assert result.delivery_id is not None
    assert await _device_rows(store, result.delivery_id) == names
    async with store.connect() as conn:
        row = await deliveries.get_delivery(conn, result.delivery_id)
        assert row is not None and row["status"] == "sent"
        assert row["provider_message_id"] == names["device-1"]
        for name in names.values():
            found = await deliveries.delivery_by_provider_id(conn, "push", name, tenant.id)
            assert found is not None and found["id"] == result.delivery_id
        assert await deliveries.delivery_by_provider_id(conn, "push", names["device-2"], "ws-other") is None
    # A third run (the activity's result lost, say) sends nothing more.
    assert (await _send(sends, request)).branch == "sent"
    assert _sent_to(fcm) == {"device-1": 1, "device-2": 1}


async def test_a_worker_dying_between_devices_sends_again_only_to_the_rest(
    store: Store, tenant: Tenant, fcm: FakeFcm, sends: SendActivities
) -> None:
    await _devices(store, tenant, fcm, "device-1", "device-2")
    held = fcm.hold_tokens["device-2"] = threading.Event()
    request = _request(tenant)
    attempt = asyncio.create_task(_send(sends, request))
    # The first device is sent, the second's request is in flight: then the worker dies.
    for _ in range(400):
        if "device-2" not in fcm.hold_tokens or attempt.done():
            break
        await asyncio.sleep(0.01)
    assert not attempt.done() and _sent_to(fcm) == {"device-1": 1}
    attempt.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await attempt
    held.set()
    # Its send is retried (Temporal's heartbeat timeout) by another worker.
    result = await _send(sends, request)
    assert result.branch == "sent"
    assert _sent_to(fcm) == {"device-1": 1, "device-2": 1}
    assert result.delivery_id is not None
    assert set(await _device_rows(store, result.delivery_id)) == {"device-1", "device-2"}


async def test_erasing_the_person_deletes_the_devices_their_pushes_reached(
    store: Store, tenant: Tenant, fcm: FakeFcm, sends: SendActivities
) -> None:
    await _devices(store, tenant, fcm, "device-1", "device-2")
    result = await _send(sends, _request(tenant))
    assert result.delivery_id is not None and len(await _device_rows(store, result.delivery_id)) == 2
    async with store.begin() as conn:
        assert await erase_profile(conn, tenant.id, "ada")
    assert await _device_rows(store, result.delivery_id) == {}
    async with store.connect() as conn:
        assert await deliveries.get_delivery(conn, result.delivery_id) is not None
