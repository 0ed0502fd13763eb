"""The failover flow end to end: push, wait 4 hours for an open, else SMS; through the real send
activity, the fake FCM and Twilio servers, and delivery reports, on the time-skipping server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from flowline.channels import twilio
from flowline.journey import JourneyState
from flowline.store.database import Store
from tests.conftest import Tenant, finish
from tests.deliveries_for_tests import events_named
from tests.providers import FakeFcm, FakeTwilio, fake_fcm, fake_twilio
from tests.test_journeys import publish
from tests.test_profiles_api import in_pause

FAILOVER: dict[str, Any] = {
    "id": "failover",
    "name": "Push, else SMS",
    "trigger": {"type": "flow"},
    "steps": [
        {
            "id": "push",
            "type": "send",
            "channel": "push",
            "content": {"title": "Your order", "body": "It ships today", "data": {"order": 42}},
            "next": {"sent": "wait", "skipped": "sms", "failed": "sms"},
        },
        {
            "id": "wait",
            "type": "wait_for_event",
            "conditions": [
                {"event": "message_opened", "where": [{"property": "channel", "op": "is", "value": "push"}]}
            ],
            "timeout": "4h",
            "next": {"happened": "done", "timeout": "sms"},
        },
        {"id": "sms", "type": "send", "channel": "sms", "content": {"body": "Your order ships today"}},
        {"id": "done", "type": "exit"},
    ],
}


@pytest.fixture
def providers() -> Iterator[tuple[FakeFcm, FakeTwilio]]:
    with fake_fcm(unregistered={"stale-device"}) as fcm, fake_twilio() as sms:
        yield fcm, sms


async def setup(api: httpx.AsyncClient, fcm: FakeFcm, sms: FakeTwilio, *devices: str) -> None:
    channels = {
        "push": {
            "provider": "fcm",
            "base_url": fcm.url,
            "project_id": fcm.project_id,
            "access_token": fcm.access_token,
        },
        "sms": {
            "provider": "twilio",
            "base_url": sms.url,
            "account_sid": sms.account_sid,
            "auth_token": sms.auth_token,
            "from_number": "+15005550001",
            "status_callback_url": "http://flowline/v1/reports/twilio",
        },
    }
    assert (await api.put("/v1/workspace/channels", json=channels)).status_code == 200
    person = {"attributes": {"phone": "+15005550006"}}
    assert (await api.put("/v1/profiles/ada", json=person)).status_code == 200
    registered = [{"token": t, "platform": "android"} for t in devices or ("device-1",)]
    assert (await api.put("/v1/profiles/ada/push_tokens", json={"tokens": registered})).status_code == 200
    await publish(api, FAILOVER)


async def start(api: httpx.AsyncClient) -> str:
    started = await api.post("/v1/flows/failover/journeys", json={"profile_id": "ada"})
    assert started.status_code == 201, started.text
    journey_id: str = started.json()["journey_id"]
    return journey_id


def steps(state: JourneyState) -> list[tuple[str, str | None]]:
    return [(p.step, p.branch) for p in state.path]


async def test_an_opened_push_sends_no_sms(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, providers: tuple[FakeFcm, FakeTwilio]
) -> None:
    fcm, sms = providers
    await setup(api, fcm, sms)
    journey_id = await start(api)
    await in_pause(temporal, journey_id)
    [push] = fcm.accepted
    assert push["token"] == "device-1" and push["data"] == {"order": "42"}
    opened = await api.post(
        "/v1/reports/push", json={"provider_message_id": push["name"], "status": "opened"}
    )
    assert opened.status_code == 200 and opened.json()["recorded"] is True, opened.text
    state = await finish(temporal, journey_id)
    assert steps(state) == [("push", "sent"), ("wait", "happened"), ("done", "exit")]
    assert sms.accepted == []


async def test_no_open_within_4_hours_sends_the_sms_and_its_report_is_an_event(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    providers: tuple[FakeFcm, FakeTwilio],
    store: Store,
    tenant: Tenant,
) -> None:
    fcm, sms = providers
    await setup(api, fcm, sms)
    journey_id = await start(api)
    state = await finish(temporal, journey_id)
    assert steps(state)[:3] == [("push", "sent"), ("wait", "timeout"), ("sms", "sent")]
    [text] = sms.accepted
    assert (text["To"], text["Body"]) == ("+15005550006", "Your order ships today")

    # Twilio reports the delivery to the callback the send gave it.
    url = text["StatusCallback"]
    params = {"MessageSid": text["sid"], "AccountSid": sms.account_sid, "MessageStatus": "delivered"}
    signature = twilio.signature(sms.auth_token, url, list(params.items()))
    parts = urlsplit(url)
    answer = await api.post(
        f"{parts.path}?{parts.query}", data=params, headers={twilio.SIGNATURE_HEADER: signature}
    )
    assert answer.status_code == 200 and answer.json()["kind"] == "delivered", answer.text
    [event] = await events_named(store, tenant.id, "message_delivered")
    assert event["properties"]["channel"] == "sms" and event["properties"]["journey_id"] == journey_id
    assert event["properties"]["step_id"] == "sms"


async def tokens(api: httpx.AsyncClient) -> list[str]:
    return [t["token"] for t in (await api.get("/v1/profiles/ada")).json()["push_tokens"]]


async def test_an_unregistered_device_is_forgotten_and_fails_over_at_once(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, providers: tuple[FakeFcm, FakeTwilio]
) -> None:
    fcm, sms = providers
    await setup(api, fcm, sms, "stale-device")
    state = await finish(temporal, await start(api))
    assert steps(state)[:2] == [("push", "failed"), ("sms", "sent")]
    assert fcm.accepted == [] and len(sms.accepted) == 1
    assert await tokens(api) == []


async def test_the_other_devices_still_get_the_push(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, providers: tuple[FakeFcm, FakeTwilio]
) -> None:
    fcm, sms = providers
    await setup(api, fcm, sms, "stale-device", "device-1")
    journey_id = await start(api)
    await in_pause(temporal, journey_id)
    assert [m["token"] for m in fcm.accepted] == ["device-1"]
    assert await tokens(api) == ["device-1"]


async def test_a_device_failing_once_is_retried_alone_and_a_report_on_either_device_counts(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, providers: tuple[FakeFcm, FakeTwilio]
) -> None:
    fcm, sms = providers
    await setup(api, fcm, sms, "device-1", "device-2")
    fcm.fail_tokens["device-2"] = [503]  # after device-1 was sent: the activity is retried
    journey_id = await start(api)
    await in_pause(temporal, journey_id)
    assert fcm.fail_tokens["device-2"] == []
    assert Counter(m["token"] for m in fcm.accepted) == {"device-1": 1, "device-2": 1}
    # The second device's message id is kept too: its open is the delivery's open.
    second = next(m["name"] for m in fcm.accepted if m["token"] == "device-2")
    opened = await api.post("/v1/reports/push", json={"provider_message_id": second, "status": "opened"})
    assert opened.status_code == 200 and opened.json()["recorded"] is True, opened.text
    state = await finish(temporal, journey_id)
    assert steps(state) == [("push", "sent"), ("wait", "happened"), ("done", "exit")]
    assert sms.accepted == []
