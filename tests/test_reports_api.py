"""Delivery reports: Twilio's signed StatusCallback and the generic report route become channel
events and ledger times; a push token FCM no longer knows is forgotten."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from flowline.channels import twilio
from flowline.channels.config import ChannelSettings, FcmPushSettings, TwilioSmsSettings
from flowline.channels.fcm import FcmPush, TokenUnregistered
from flowline.channels.providers import OutgoingMessage
from flowline.store import deliveries, push_tokens, workspaces
from flowline.store.database import Store
from tests.conftest import Tenant, new_tenant
from tests.deliveries_for_tests import delivery_row, events_named, open_delivery
from tests.providers import FakeTwilio, fake_fcm, fake_twilio

CALLBACK = "http://flowline/v1/reports/twilio"


@pytest.fixture
def twilio_server() -> Iterator[FakeTwilio]:
    with fake_twilio() as fake:
        yield fake


async def configure_sms(
    store: Store, tenant: Tenant, fake: FakeTwilio, *, callback: str | None = CALLBACK
) -> TwilioSmsSettings:
    sms = TwilioSmsSettings.model_validate(
        {
            "base_url": fake.url,
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "from_number": "+15005550001",
            "status_callback_url": callback,
        }
    )
    async with store.begin() as conn:
        await workspaces.set_channel_settings(conn, tenant.id, ChannelSettings(sms=sms))
    return sms


async def send_sms(
    store: Store, tenant: Tenant, sms: TwilioSmsSettings, *, record_sid: bool = True
) -> tuple[str, str]:
    """What the send activity does: a ledger row, the provider call keyed by it, the sid recorded."""
    delivery_id = await open_delivery(store, tenant.id, "ada", "sms", address="+15005550006")
    message = OutgoingMessage(channel="sms", idempotency_key=delivery_id, to="+15005550006", text="hi")
    async with httpx.AsyncClient() as http:
        receipt = await twilio.TwilioSms(sms, http).send(message)
    assert receipt.provider_message_id is not None
    if record_sid:
        async with store.begin() as conn:
            await deliveries.note_provider_message_id(conn, delivery_id, receipt.provider_message_id)
    return delivery_id, receipt.provider_message_id


async def post_callback(
    api: httpx.AsyncClient, url: str, params: dict[str, str], token: str, *, signature: str | None = None
) -> httpx.Response:
    """Twilio's StatusCallback: a form POST to ``url`` signed with the account's auth token."""
    items = list(params.items())
    header = signature if signature is not None else twilio.signature(token, url, items)
    parts = urlsplit(url)
    return await api.post(
        f"{parts.path}?{parts.query}" if parts.query else parts.path,
        data=params,
        headers={twilio.SIGNATURE_HEADER: header, "Authorization": ""},
    )


def status(sid: str, account: str, value: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": account,
        "MessageStatus": value,
        "To": "+15005550006",
        **extra,
    }


async def test_twilio_reports_become_events_once(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, twilio_server: FakeTwilio
) -> None:
    sms = await configure_sms(store, tenant, twilio_server)
    delivery_id, sid = await send_sms(store, tenant, sms)
    url = twilio_server.accepted[0]["StatusCallback"]
    account, token = twilio_server.account_sid, twilio_server.auth_token

    queued = await post_callback(api, url, status(sid, account, "sent"), token)
    assert queued.status_code == 200 and queued.json() == {
        "delivery_id": delivery_id,
        "kind": None,
        "recorded": False,
    }
    delivered = await post_callback(api, url, status(sid, account, "delivered"), token)
    assert delivered.status_code == 200, delivered.text
    assert delivered.json() == {"delivery_id": delivery_id, "kind": "delivered", "recorded": True}
    again = await post_callback(api, url, status(sid, account, "delivered"), token)
    assert again.json()["recorded"] is False

    row = await delivery_row(store, delivery_id)
    assert row["delivered_at"] is not None
    [event] = await events_named(store, tenant.id, "message_delivered")
    assert event["id"] == f"{delivery_id}:delivered" and event["profile_id"] == "ada"
    assert event["properties"] == {
        "delivery_id": delivery_id,
        "channel": "sms",
        "flow_id": "onboarding",
        "version": 3,
        "step_id": "send",
        "journey_id": row["journey_id"],
    }


async def test_twilio_failure_carries_the_error_code(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, twilio_server: FakeTwilio
) -> None:
    sms = await configure_sms(store, tenant, twilio_server)
    _, sid = await send_sms(store, tenant, sms)
    url = twilio_server.accepted[0]["StatusCallback"]
    failed = await post_callback(
        api,
        url,
        status(sid, twilio_server.account_sid, "undelivered", ErrorCode="30003"),
        twilio_server.auth_token,
    )
    assert failed.json()["kind"] == "failed"
    [event] = await events_named(store, tenant.id, "message_failed")
    assert event["properties"]["reason"] == "Twilio error 30003"


async def test_twilio_report_before_the_sid_is_recorded(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, twilio_server: FakeTwilio
) -> None:
    """Twilio may report before the send recorded the sid: the callback URL names the delivery."""
    sms = await configure_sms(store, tenant, twilio_server)
    delivery_id, sid = await send_sms(store, tenant, sms, record_sid=False)
    url = twilio_server.accepted[0]["StatusCallback"]
    answer = await post_callback(
        api, url, status(sid, twilio_server.account_sid, "delivered"), twilio_server.auth_token
    )
    assert answer.json()["recorded"] is True
    assert (await delivery_row(store, delivery_id))["provider_message_id"] == sid


async def test_twilio_report_found_by_sid_alone(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, twilio_server: FakeTwilio
) -> None:
    """A callback URL without the delivery id (set on Twilio's side): the sid finds the row."""
    sms = await configure_sms(store, tenant, twilio_server)
    delivery_id, sid = await send_sms(store, tenant, sms)
    answer = await post_callback(
        api, CALLBACK, status(sid, twilio_server.account_sid, "delivered"), twilio_server.auth_token
    )
    assert answer.status_code == 200 and answer.json()["delivery_id"] == delivery_id


async def test_twilio_report_signature_is_checked(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, twilio_server: FakeTwilio
) -> None:
    sms = await configure_sms(store, tenant, twilio_server)
    delivery_id, sid = await send_sms(store, tenant, sms)
    url = twilio_server.accepted[0]["StatusCallback"]
    account, token = twilio_server.account_sid, twilio_server.auth_token
    params = status(sid, account, "delivered")

    assert (await post_callback(api, url, params, "another-token")).status_code == 403
    assert (await post_callback(api, url, params, token, signature="")).status_code == 401
    # Signed for other parameters (a changed status) or another URL (another delivery).
    forged = twilio.signature(token, url, list(status(sid, account, "failed").items()))
    assert (await post_callback(api, url, params, token, signature=forged)).status_code == 403
    other = twilio.status_callback(CALLBACK, "someone-else")
    assert (
        await post_callback(
            api, url, params, token, signature=twilio.signature(token, other, list(params.items()))
        )
    ).status_code == 403
    # An AccountSid that is not the workspace's.
    assert (await post_callback(api, url, status(sid, "AC-other", "delivered"), token)).status_code == 403
    # Another workspace cannot report on this one's messages with its own Twilio account.
    intruder = await new_tenant(store)
    async with store.begin() as conn:
        await workspaces.set_channel_settings(
            conn,
            intruder.id,
            ChannelSettings(sms=sms.model_copy(update={"account_sid": "AC-x", "auth_token": "x"})),
        )
    assert (await post_callback(api, url, status(sid, "AC-x", "delivered"), "x")).status_code == 403
    assert (await delivery_row(store, delivery_id))["delivered_at"] is None
    assert await events_named(store, tenant.id, "message_delivered") == []


async def test_twilio_report_faults(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, twilio_server: FakeTwilio
) -> None:
    await configure_sms(store, tenant, twilio_server)
    missing = await api.post(
        "/v1/reports/twilio", data={"MessageStatus": "delivered"}, headers={twilio.SIGNATURE_HEADER: "x"}
    )
    assert missing.status_code == 422
    assert [f["path"] for f in missing.json()["faults"]] == ["$.MessageSid", "$.AccountSid"]
    unknown = await post_callback(
        api, CALLBACK, status("SM-unknown", twilio_server.account_sid, "delivered"), "t"
    )
    assert unknown.status_code == 404


async def test_generic_report_by_provider_id_or_delivery_id(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    delivery_id = await open_delivery(store, tenant.id, "ada", "push", address="token-1")
    async with store.begin() as conn:
        await deliveries.note_provider_message_id(conn, delivery_id, "projects/p/messages/1")
    body = {
        "provider_message_id": "projects/p/messages/1",
        "status": "delivered",
        "at": "2026-11-20T10:00:00Z",
    }
    answer = await api.post("/v1/reports/push", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"delivery_id": delivery_id, "kind": "delivered", "recorded": True}
    opened = await api.post("/v1/reports/push", json={"delivery_id": delivery_id, "status": "opened"})
    assert opened.json()["recorded"] is True
    row = await delivery_row(store, delivery_id)
    assert row["delivered_at"].isoformat().startswith("2026-11-20T10:00:00") and row["opened_at"] is not None
    [event] = await events_named(store, tenant.id, "message_delivered")
    assert event["timestamp"].isoformat().startswith("2026-11-20T10:00:00")
    assert len(await events_named(store, tenant.id, "message_opened")) == 1
    bounced = await api.post(
        "/v1/reports/push", json={"delivery_id": delivery_id, "status": "bounced", "reason": "hard"}
    )
    assert bounced.json()["kind"] == "bounced"
    [event] = await events_named(store, tenant.id, "message_bounced")
    assert event["properties"]["reason"] == "hard"


async def test_generic_report_faults_and_other_workspaces(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    other = await new_tenant(store)
    theirs = await open_delivery(store, other.id, "bob", "push")
    assert (
        await api.post("/v1/reports/push", json={"delivery_id": theirs, "status": "opened"})
    ).status_code == 404
    mine = await open_delivery(store, tenant.id, "ada", "push")
    # The channel must be the delivery's.
    assert (
        await api.post("/v1/reports/sms", json={"delivery_id": mine, "status": "opened"})
    ).status_code == 404
    bad = await api.post("/v1/reports/fax", json={"delivery_id": mine, "status": "clicked", "extra": 1})
    assert bad.status_code == 422
    assert {f["path"] for f in bad.json()["faults"]} == {"path.channel", "$.status", "$.extra"}
    both = await api.post(
        "/v1/reports/push", json={"delivery_id": mine, "provider_message_id": "x", "status": "opened"}
    )
    assert both.status_code == 422 and both.json()["faults"][0]["path"] == "$"
    unauthenticated = await api.post(
        "/v1/reports/push", json={"delivery_id": mine, "status": "opened"}, headers={"Authorization": ""}
    )
    assert unauthenticated.status_code == 401
    assert (await delivery_row(store, mine))["opened_at"] is None


async def test_report_on_an_erased_person_raises_no_event(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    delivery_id = await open_delivery(store, tenant.id, "ada", "push")
    assert (await api.delete("/v1/profiles/ada")).status_code == 204
    answer = await api.post("/v1/reports/push", json={"delivery_id": delivery_id, "status": "delivered"})
    assert answer.status_code == 200 and answer.json()["recorded"] is False
    assert await events_named(store, tenant.id, "message_delivered") == []
    assert (await api.get("/v1/profiles/ada")).status_code == 404


async def test_unregistered_push_token_is_forgotten(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    tokens = {"tokens": [{"token": "gone", "platform": "ios"}, {"token": "alive", "platform": "android"}]}
    assert (await api.put("/v1/profiles/ada/push_tokens", json=tokens)).status_code == 200
    with fake_fcm(unregistered={"gone"}) as fake:
        settings = FcmPushSettings.model_validate(
            {"base_url": fake.url, "project_id": fake.project_id, "access_token": fake.access_token}
        )
        async with httpx.AsyncClient() as http:
            with pytest.raises(TokenUnregistered) as gone:
                await FcmPush(settings, http).send(
                    OutgoingMessage(channel="push", idempotency_key="d", to="gone")
                )
    # What the send activity does with it.
    async with store.begin() as conn:
        assert await push_tokens.remove_push_token(conn, tenant.id, gone.value.token, "ada") == 1
    profile = (await api.get("/v1/profiles/ada")).json()
    assert [t["token"] for t in profile["push_tokens"]] == ["alive"]
