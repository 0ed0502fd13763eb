"""FCM with a service account: the adapter mints its OAuth 2 tokens from the key file Firebase
hands out, against a token endpoint on a real local HTTP server that checks the JWT's signature
with the public key of a key pair made here, and sends through the fake FCM server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.sends import SendActivities
from flowline.channels.config import ChannelSettings, FcmPushSettings
from flowline.channels.fcm import FcmPush
from flowline.channels.providers import DeliveryFailed, OutgoingMessage
from flowline.channels.service_account import AccessTokens
from flowline.flow.steps import PushSendStep
from flowline.journey import JourneyRef, SendRequest, TemplateScope
from flowline.store import push_tokens, workspaces
from flowline.store.database import Store, utcnow
from flowline.store.tables import workspaces as workspaces_table
from tests.conftest import Tenant
from tests.providers import (
    FakeFcm,
    FakeTokenEndpoint,
    fake_fcm,
    fake_token_endpoint,
    key_pair,
    pem,
    service_account_json,
)
from tests.servers import closed_port_url

PUSH = OutgoingMessage(channel="push", idempotency_key="d-1", to="device-1", title="Hi", text="Reward")


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Google:
    fcm: FakeFcm
    tokens: FakeTokenEndpoint
    clock: Clock
    cache: AccessTokens

    def settings(self, **extra: Any) -> FcmPushSettings:
        account = service_account_json(f"{self.tokens.url}/token")
        return FcmPushSettings.model_validate(
            {"provider": "fcm", "base_url": self.fcm.url, "service_account": account, **extra}
        )

    def bearers(self) -> list[str]:
        return [h["authorization"].removeprefix("Bearer ") for _, h, _ in self.fcm.requests]


@contextmanager
def google(**options: Any) -> Iterator[Google]:
    clock = Clock()
    with (
        fake_token_endpoint(public_key=key_pair().public_key(), now=clock, **options) as tokens,
        fake_fcm(token_valid=tokens.valid) as fcm,
    ):
        yield Google(fcm=fcm, tokens=tokens, clock=clock, cache=AccessTokens(clock=clock))


@pytest_asyncio.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def test_sends_carry_a_minted_token_reused_while_it_lives(http: httpx.AsyncClient) -> None:
    with google() as g:
        push = FcmPush(g.settings(), http, g.cache)
        receipt = await push.send(PUSH)
        # One assertion, form-encoded with the JWT bearer grant; its token went to FCM, in the
        # service account's project (the settings name none).
        assert len(g.tokens.requests) == 1 and len(g.tokens.issued) == 1
        form = parse_qs(g.tokens.requests[0][2].decode())
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        assert g.tokens.claims[0]["iat"] == int(g.clock.now)
        (token,) = g.tokens.issued
        assert g.bearers() == [token]
        assert g.fcm.requests[0][0] == "/v1/projects/flowline-test/messages:send"
        assert receipt.provider_message_id == g.fcm.accepted[0]["name"]
        # Other sends, other providers built over the same cache (as the worker builds one per
        # send): the same token, no new assertion.
        for n in range(3):
            await FcmPush(g.settings(), http, g.cache).send(replace(PUSH, to=f"device-{n}"))
        assert len(g.tokens.requests) == 1 and g.bearers() == [token] * 4 and len(g.fcm.accepted) == 4


async def test_a_token_is_minted_again_shortly_before_it_expires(http: httpx.AsyncClient) -> None:
    with google(expires_in=100) as g:  # replaced at half its life (the margin is at most 300 s)
        push = FcmPush(g.settings(), http, g.cache)
        await push.send(PUSH)
        (first,) = g.tokens.issued
        g.clock.now += 49
        await push.send(PUSH)
        assert len(g.tokens.requests) == 1 and g.bearers() == [first, first]
        g.clock.now += 2  # 51 s: 49 s before the token expires
        await push.send(PUSH)
        assert len(g.tokens.requests) == 2
        second = g.bearers()[-1]
        assert second != first and g.tokens.valid(first)  # replaced before FCM would refuse it
        assert g.tokens.claims[1]["iat"] == int(g.clock.now)
        g.clock.now += 49
        await push.send(PUSH)
        assert len(g.tokens.requests) == 2 and g.bearers()[-1] == second
        assert len(g.fcm.accepted) == 4 and all(code.startswith("/v1/") for code, _, _ in g.fcm.requests)


async def test_a_401_from_fcm_mints_one_fresh_token_and_sends_again(http: httpx.AsyncClient) -> None:
    with google(expires_in=3600) as g:
        push = FcmPush(g.settings(), http, g.cache)
        await push.send(PUSH)
        (first,) = g.tokens.issued
        g.tokens.revoked.add(first)  # revoked at Google while cached here
        receipt = await push.send(PUSH)
        assert len(g.tokens.requests) == 2
        second = g.bearers()[-1]
        assert g.bearers() == [first, first, second] and receipt.provider_message_id is not None
        assert len(g.fcm.accepted) == 2
        # The fresh token is cached: the next send takes it at once.
        await push.send(PUSH)
        assert g.bearers()[-1] == second and len(g.tokens.requests) == 2

        # FCM refusing every token: one refresh, then a permanent failure (no loop).
        g.fcm.token_valid = lambda _token: False
        with pytest.raises(DeliveryFailed) as refused:
            await push.send(PUSH)
        assert refused.value.permanent and "401" in str(refused.value)
        assert len(g.tokens.requests) == 3 and len(g.fcm.requests) == 6


async def test_concurrent_sends_share_one_minting(http: httpx.AsyncClient) -> None:
    with google() as g:
        g.tokens.delay = 0.2  # the token endpoint is slow: every send waits for the same answer
        sends = [FcmPush(g.settings(), http, g.cache).send(replace(PUSH, to=f"d{n}")) for n in range(8)]
        await asyncio.gather(*sends)
        assert len(g.tokens.requests) == 1 and g.cache.minted == 1
        assert len(set(g.bearers())) == 1 and len(g.fcm.accepted) == 8


async def test_token_endpoint_failures(http: httpx.AsyncClient) -> None:
    with google() as g:
        # A key Google does not know for this account: the signature is refused, permanently,
        # and nothing reaches FCM.
        wrong = service_account_json(f"{g.tokens.url}/token", key_pair("other"))
        settings = FcmPushSettings(base_url=g.fcm.url, service_account=wrong)  # type: ignore[arg-type]
        with pytest.raises(DeliveryFailed) as invalid:
            await FcmPush(settings, http, g.cache).send(PUSH)
        assert invalid.value.permanent and "invalid_grant" in str(invalid.value)
        assert "PRIVATE KEY" not in str(invalid.value) and "eyJ" not in str(invalid.value)
        for status, permanent in [(503, False), (429, False), (500, False), (400, True)]:
            g.tokens.fail_next.append(status)
            with pytest.raises(DeliveryFailed) as failed:
                await FcmPush(g.settings(), http, g.cache).send(PUSH)
            assert failed.value.permanent is permanent, status
        assert g.fcm.requests == []
        # Once it answers again, the send goes.
        await FcmPush(g.settings(), http, g.cache).send(PUSH)
        assert len(g.fcm.accepted) == 1
    unreachable = service_account_json(f"{closed_port_url()}/token")
    settings = FcmPushSettings(base_url=closed_port_url(), service_account=unreachable)  # type: ignore[arg-type]
    with pytest.raises(DeliveryFailed) as down:
        await FcmPush(settings, http, AccessTokens()).send(PUSH)
    assert not down.value.permanent


async def test_project_id_in_the_settings_wins_and_access_token_still_works(http: httpx.AsyncClient) -> None:
    clock = Clock()
    with (
        fake_token_endpoint(public_key=key_pair().public_key(), now=clock) as tokens,
        fake_fcm(project_id="other-project", token_valid=tokens.valid) as fcm,
    ):
        account = service_account_json(f"{tokens.url}/token")
        settings = FcmPushSettings.model_validate(
            {"base_url": fcm.url, "project_id": "other-project", "service_account": account}
        )
        await FcmPush(settings, http, AccessTokens(clock)).send(PUSH)
        assert fcm.requests[0][0] == "/v1/projects/other-project/messages:send" and len(fcm.accepted) == 1
        # A fixed access token: sent as it is, nothing minted.
        fixed = FcmPushSettings.model_validate(
            {"base_url": fcm.url, "project_id": "other-project", "access_token": fcm.access_token}
        )
        await FcmPush(fixed, http, AccessTokens(clock)).send(PUSH)
        assert fcm.requests[-1][1]["authorization"] == f"Bearer {fcm.access_token}"
        assert len(tokens.requests) == 1 and len(fcm.accepted) == 2


async def test_the_send_activity_mints_from_the_stored_service_account(store: Store, tenant: Tenant) -> None:
    """The worker's path: settings stored through the store, the provider built per send by the
    registry, the process-wide token cache on the wall clock."""
    with (
        fake_token_endpoint(public_key=key_pair().public_key(), expires_in=3600) as tokens,
        fake_fcm(token_valid=tokens.valid) as fcm,
    ):
        account = service_account_json(f"{tokens.url}/token")
        settings = FcmPushSettings.model_validate({"base_url": fcm.url, "service_account": account})
        async with store.begin() as conn:
            await workspaces.set_channel_settings(conn, tenant.id, ChannelSettings(push=settings))
            devices = [{"token": "device-1", "platform": "android"}, {"token": "device-2", "platform": "ios"}]
            await push_tokens.set_push_tokens(store, conn, tenant.id, "ada", devices)
        # Stored sealed, whole (flowline/secret_box.py): neither the key nor the account in clear.
        async with store.connect() as conn:
            raw = await conn.scalar(
                select(workspaces_table.c.channels).where(workspaces_table.c.id == tenant.id)
            )
        assert "PRIVATE KEY" not in json.dumps(raw) and account["client_email"] not in json.dumps(raw)
        assert raw["push"]["service_account"]["$sealed"] == "aes-256-gcm"
        async with httpx.AsyncClient(timeout=5) as http:
            sends = SendActivities(store, http)
            for n in range(2):
                result = await ActivityEnvironment().run(sends.send_message, push_request(tenant, f"j-{n}"))
                assert result.branch == "sent"
        (token,) = tokens.issued
        assert [m["token"] for m in fcm.accepted] == ["device-1", "device-2"] * 2
        assert {h["authorization"] for _, h, _ in fcm.requests} == {f"Bearer {token}"}


def push_request(tenant: Tenant, journey_id: str) -> SendRequest:
    step = PushSendStep.model_validate(
        {"id": "push", "type": "send", "channel": "push", "content": {"title": "Hi", "body": "Ships today"}}
    )
    ref = JourneyRef(
        journey_id=f"{journey_id}-{tenant.id}",
        workspace_id=tenant.id,
        flow_id="f",
        version=1,
        profile_id="ada",
    )
    return SendRequest(journey=ref, step=step, visit=0, scope=TemplateScope(), now=utcnow())


def test_the_private_key_is_checked_and_never_shown() -> None:
    account = service_account_json("https://oauth2.googleapis.com/token")
    settings = FcmPushSettings.model_validate({"service_account": account})
    assert settings.project_id is None and settings.project == "flowline-test"
    assert "PRIVATE KEY" not in repr(settings) and "PRIVATE KEY" not in str(settings)
    for bad, reason in [
        ("not a key", "PEM"),
        (pem(ec.generate_private_key(ec.SECP256R1())), "RSA"),
    ]:
        with pytest.raises(ValidationError) as error:
            FcmPushSettings.model_validate({"service_account": {**account, "private_key": bad}})
        (fault,) = error.value.errors()
        assert fault["loc"] == ("service_account", "private_key") and reason in fault["msg"]
