"""The Twilio SMS and FCM push adapters against fake providers on real local HTTP servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio

from flowline.channels.config import ChannelSettings, FcmPushSettings, TwilioSmsSettings
from flowline.channels.fcm import FcmPush, TokenUnregistered
from flowline.channels.providers import DeliveryFailed, OutgoingMessage
from flowline.channels.registry import provider_for
from flowline.channels.twilio import TwilioSms
from tests.providers import FakeFcm, FakeTwilio, fake_fcm, fake_twilio
from tests.servers import Reply, closed_port_url, http_sink

SMS = OutgoingMessage(channel="sms", idempotency_key="d-1", to="+15005550006", text="Your code is 42")
PUSH = OutgoingMessage(
    channel="push",
    idempotency_key="d-2",
    to="device-token-1",
    title="Hello",
    text="You have a reward",
    data={"reward": "gold", "points": 10, "meta": {"a": [1, 2]}, "flag": True},
)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2) as client:
        yield client


def twilio_settings(fake: FakeTwilio, **extra: object) -> TwilioSmsSettings:
    return TwilioSmsSettings.model_validate(
        {
            "provider": "twilio",
            "base_url": fake.url,
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "from_number": "+15005550001",
            "senders": {"support": "+15005550002"},
            **extra,
        }
    )


def fcm_settings(fake: FakeFcm, **extra: object) -> FcmPushSettings:
    return FcmPushSettings.model_validate(
        {
            "provider": "fcm",
            "base_url": fake.url,
            "project_id": fake.project_id,
            "access_token": fake.access_token,
            **extra,
        }
    )


async def test_twilio_sends_the_form_with_basic_auth_and_idempotency_token(http: httpx.AsyncClient) -> None:
    with fake_twilio() as fake:
        callback = "https://flowline.example/v1/reports/twilio?ws=1"
        provider = TwilioSms(twilio_settings(fake, status_callback_url=callback), http)
        receipt = await provider.send(SMS)
        assert len(fake.accepted) == 1
        sent = fake.accepted[0]
        assert receipt.provider_message_id == sent["sid"]
        assert (sent["To"], sent["From"], sent["Body"]) == ("+15005550006", "+15005550001", "Your code is 42")
        assert sent["idempotency_token"] == "d-1"
        # The callback keeps its own query and names the delivery.
        query = parse_qs(urlsplit(sent["StatusCallback"]).query)
        assert query == {"ws": ["1"], "delivery_id": ["d-1"]}
        # A named sender; a retry with the same key is the same message at Twilio.
        again = await provider.send(replace(SMS, sender="support"))
        assert again.provider_message_id == receipt.provider_message_id
        other = await provider.send(replace(SMS, idempotency_key="d-3", sender="support"))
        assert fake.accepted[-1]["From"] == "+15005550002"
        assert (
            "StatusCallback" in fake.accepted[-1] and other.provider_message_id != receipt.provider_message_id
        )


async def test_twilio_without_callback_and_unknown_sender(http: httpx.AsyncClient) -> None:
    with fake_twilio() as fake:
        provider = TwilioSms(twilio_settings(fake), http)
        await provider.send(SMS)
        assert "StatusCallback" not in fake.accepted[0]
        with pytest.raises(DeliveryFailed) as failed:
            await provider.send(replace(SMS, sender="nobody"))
        assert failed.value.permanent


async def test_twilio_errors_permanent_or_retryable(http: httpx.AsyncClient) -> None:
    with fake_twilio(invalid_numbers={"+1000"}) as fake:
        provider = TwilioSms(twilio_settings(fake), http)
        with pytest.raises(DeliveryFailed) as invalid:
            await provider.send(replace(SMS, to="+1000"))
        assert invalid.value.permanent and "21211" in str(invalid.value)
        for status, permanent in [(429, False), (500, False), (503, False), (400, True)]:
            fake.fail_next.append(status)
            with pytest.raises(DeliveryFailed) as failed:
                await provider.send(SMS)
            assert failed.value.permanent is permanent, status
        wrong = TwilioSms(twilio_settings(fake, auth_token="wrong"), http)
        with pytest.raises(DeliveryFailed) as unauthorized:
            await wrong.send(SMS)
        assert unauthorized.value.permanent and "20003" in str(unauthorized.value)
        assert fake.accepted == []
    unreachable = TwilioSmsSettings(
        base_url=closed_port_url(),
        account_sid="AC1",
        auth_token="t",
        from_number="+1",  # type: ignore[arg-type]
    )
    with pytest.raises(DeliveryFailed) as refused:
        await TwilioSms(unreachable, http).send(SMS)
    assert not refused.value.permanent


async def test_twilio_timeout_is_retryable() -> None:
    with http_sink() as sink:
        sink.replies["/2010-04-01/Accounts/AC1/Messages.json"] = Reply(
            status=201, body={"sid": "x"}, delay=1.0
        )
        settings = TwilioSmsSettings(
            base_url=sink.url,
            account_sid="AC1",
            auth_token="t",
            from_number="+1",  # type: ignore[arg-type]
        )
        async with httpx.AsyncClient(timeout=0.2) as http:
            with pytest.raises(DeliveryFailed) as slow:
                await TwilioSms(settings, http).send(SMS)
        assert not slow.value.permanent


async def test_fcm_sends_v1_message_with_string_data(http: httpx.AsyncClient) -> None:
    with fake_fcm() as fake:
        receipt = await FcmPush(fcm_settings(fake), http).send(PUSH)
        assert len(fake.accepted) == 1
        message = fake.accepted[0]
        assert receipt.provider_message_id == message["name"]
        assert message["token"] == "device-token-1"
        assert message["notification"] == {"title": "Hello", "body": "You have a reward"}
        assert message["data"] == {"reward": "gold", "points": "10", "meta": '{"a":[1,2]}', "flag": "true"}


async def test_fcm_errors(http: httpx.AsyncClient) -> None:
    with fake_fcm(unregistered={"gone"}) as fake:
        provider = FcmPush(fcm_settings(fake), http)
        with pytest.raises(TokenUnregistered) as gone:
            await provider.send(replace(PUSH, to="gone"))
        assert gone.value.permanent and gone.value.token == "gone" and "UNREGISTERED" in str(gone.value)
        for status, permanent in [(400, True), (429, False), (500, False), (503, False)]:
            fake.fail_next.append(status)
            with pytest.raises(DeliveryFailed) as failed:
                await provider.send(PUSH)
            assert failed.value.permanent is permanent and not isinstance(failed.value, TokenUnregistered)
        with pytest.raises(DeliveryFailed) as unauthorized:
            await FcmPush(fcm_settings(fake, access_token="stale"), http).send(PUSH)
        assert unauthorized.value.permanent
        assert fake.accepted == []


async def test_registry_picks_the_configured_providers(http: httpx.AsyncClient) -> None:
    with fake_twilio() as twilio, fake_fcm() as fcm:
        settings = ChannelSettings(sms=twilio_settings(twilio), push=fcm_settings(fcm))
        sms = provider_for("sms", settings, http)
        push = provider_for("push", settings, http)
        assert isinstance(sms, TwilioSms) and isinstance(push, FcmPush)
        await sms.send(SMS)
        await push.send(PUSH)
        assert len(twilio.accepted) == len(fcm.accepted) == 1
        assert provider_for("sms", ChannelSettings(), http) is None
        assert provider_for("push", ChannelSettings(), http) is None
