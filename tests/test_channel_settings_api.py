"""PUT/GET /v1/workspace/channels: each channel's provider, secrets never shown."""

from __future__ import annotations

from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from flowline.store import workspaces
from flowline.store.database import Store
from tests.conftest import Tenant
from tests.providers import key_pair, pem, service_account_json

SETTINGS: dict[str, Any] = {
    "email": {
        "provider": "smtp",
        "host": "127.0.0.1",
        "port": 2525,
        "username": "mailer",
        "password": "smtp-secret",
        "security": "none",
        "from_address": "hello@example.com",
    },
    "sms": {
        "provider": "twilio",
        "base_url": "http://127.0.0.1:9999",
        "account_sid": "AC123",
        "auth_token": "twilio-secret",
        "from_number": "+15005550001",
        "senders": {"support": "+15005550002"},
        "status_callback_url": "https://flowline.example/v1/reports/twilio",
    },
    "push": {"provider": "fcm", "project_id": "my-app", "access_token": "fcm-secret"},
}


async def test_settings_round_trip_with_secrets_masked(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    empty = await api.get("/v1/workspace/channels")
    assert empty.status_code == 200 and empty.json() == {"email": None, "sms": None, "push": None}

    put = await api.put("/v1/workspace/channels", json=SETTINGS)
    assert put.status_code == 200, put.text
    shown = (await api.get("/v1/workspace/channels")).json()
    assert shown == put.json()
    assert (shown["email"]["password"], shown["sms"]["auth_token"], shown["push"]["access_token"]) == (
        "***",
    ) * 3
    assert (
        shown["sms"]["account_sid"] == "AC123" and shown["push"]["base_url"] == "https://fcm.googleapis.com/"
    )
    assert "secret" not in str(shown)

    async with store.connect() as conn:
        stored = await workspaces.channel_settings(conn, tenant.id)
    assert stored.sms is not None and stored.sms.auth_token == "twilio-secret"
    assert stored.email is not None and stored.email.password == "smtp-secret"


async def test_the_mask_sent_back_keeps_the_stored_secret(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    assert (await api.put("/v1/workspace/channels", json=SETTINGS)).status_code == 200
    edited = (await api.get("/v1/workspace/channels")).json()
    edited["sms"]["from_number"] = "+15005550009"
    del edited["email"]
    assert (await api.put("/v1/workspace/channels", json=edited)).status_code == 200
    async with store.connect() as conn:
        stored = await workspaces.channel_settings(conn, tenant.id)
    assert stored.email is None
    assert stored.sms is not None and (stored.sms.from_number, stored.sms.auth_token) == (
        "+15005550009",
        "twilio-secret",
    )
    assert stored.push is not None and stored.push.access_token == "fcm-secret"
    # No stored secret to keep: the email channel is gone now.
    masked_new = {**edited, "email": {**SETTINGS["email"], "password": "***"}}
    refused = await api.put("/v1/workspace/channels", json=masked_new)
    assert refused.status_code == 422
    assert [f["path"] for f in refused.json()["faults"]] == ["$.email.password"]


async def test_invalid_settings_name_each_fault_and_change_nothing(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    assert (await api.put("/v1/workspace/channels", json=SETTINGS)).status_code == 200
    bad = {
        "email": {**SETTINGS["email"], "port": 70000},
        "sms": {**SETTINGS["sms"], "account_sid": "", "base_url": "not a url"},
        "push": {"provider": "apns", "project_id": "x"},
        "fax": {},
    }
    answer = await api.put("/v1/workspace/channels", json=bad)
    assert answer.status_code == 422, answer.text
    paths = sorted(f["path"] for f in answer.json()["faults"])
    assert paths == ["$.email.port", "$.fax", "$.push", "$.sms.account_sid", "$.sms.base_url"]
    missing = await api.put("/v1/workspace/channels", json={"push": {"provider": "fcm"}})
    assert [f["path"] for f in missing.json()["faults"]] == ["$.push.service_account"]
    for body in (b"[1]", b"{nope"):
        raw = await api.put(
            "/v1/workspace/channels", content=body, headers={"Content-Type": "application/json"}
        )
        assert raw.status_code == 422 and raw.json()["faults"][0]["path"] == "$"
    async with store.connect() as conn:
        stored = await workspaces.channel_settings(conn, tenant.id)
    assert stored.sms is not None and stored.sms.account_sid == "AC123"


async def test_channels_are_per_workspace_and_documented(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/workspace/channels", headers={"Authorization": ""})).status_code == 401
    schema = (await api.get("/openapi.json")).json()
    assert "ChannelSettings" in schema["components"]["schemas"]
    body = schema["paths"]["/v1/workspace/channels"]["put"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChannelSettings"}


def with_service_account(**account: Any) -> dict[str, Any]:
    push = {
        "provider": "fcm",
        "service_account": {**service_account_json("https://oauth2.googleapis.com/token"), **account},
    }
    return {**SETTINGS, "push": push}


async def test_a_service_account_round_trips_with_its_private_key_masked(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    document = with_service_account()
    key = document["push"]["service_account"]["private_key"]
    put = await api.put("/v1/workspace/channels", json=document)
    assert put.status_code == 200, put.text
    shown = (await api.get("/v1/workspace/channels")).json()
    assert shown == put.json()
    account = shown["push"]["service_account"]
    assert account["private_key"] == "***" and "PRIVATE KEY" not in str(shown)
    assert {k: v for k, v in account.items() if k != "private_key"} == {
        k: v for k, v in document["push"]["service_account"].items() if k != "private_key"
    }
    assert shown["push"]["access_token"] is None and shown["push"]["project_id"] is None
    async with store.connect() as conn:
        stored = await workspaces.channel_settings(conn, tenant.id)
    assert stored.push is not None and stored.push.service_account is not None
    assert stored.push.service_account.private_key == key and stored.push.project == "flowline-test"

    # Sent back as read (the mask included): the key is kept.
    shown["push"]["project_id"] = "other-project"
    assert (await api.put("/v1/workspace/channels", json=shown)).status_code == 200
    async with store.connect() as conn:
        stored = await workspaces.channel_settings(conn, tenant.id)
    assert stored.push is not None and stored.push.service_account is not None
    assert (stored.push.project_id, stored.push.service_account.private_key) == ("other-project", key)
    # The mask keeps the key of the same account only: another account needs its own key.
    other = {**shown, "push": {**shown["push"]}}
    other["push"]["service_account"] = {**account, "client_email": "x@other.iam.gserviceaccount.com"}
    refused = await api.put("/v1/workspace/channels", json=other)
    assert refused.status_code == 422
    assert [f["path"] for f in refused.json()["faults"]] == ["$.push.service_account.private_key"]
    # Back to a fixed access token: the masked key goes with the account.
    fixed = {**shown, "push": {"provider": "fcm", "project_id": "p", "access_token": "fcm-secret"}}
    assert (await api.put("/v1/workspace/channels", json=fixed)).status_code == 200
    async with store.connect() as conn:
        stored = await workspaces.channel_settings(conn, tenant.id)
    assert stored.push is not None and stored.push.service_account is None


async def test_bad_service_account_settings_are_422_with_paths(api: httpx.AsyncClient) -> None:
    async def faults(document: dict[str, Any]) -> list[str]:
        answer = await api.put("/v1/workspace/channels", json=document)
        assert answer.status_code == 422, answer.text
        assert "PRIVATE KEY" not in answer.text  # the key is never echoed
        return sorted(f["path"] for f in answer.json()["faults"])

    ec_key = pem(ec.generate_private_key(ec.SECP256R1()))
    assert await faults(with_service_account(private_key=ec_key)) == ["$.push.service_account.private_key"]
    assert await faults(with_service_account(private_key=pem(key_pair())[:-80])) == [
        "$.push.service_account.private_key"
    ]
    assert await faults(with_service_account(type="authorized_user", client_email=None)) == [
        "$.push.service_account.client_email",
        "$.push.service_account.type",
    ]
    both = with_service_account()
    both["push"]["access_token"] = "t"
    assert await faults(both) == ["$.push.service_account"]
    no_project = {"push": {"provider": "fcm", "access_token": "t"}}
    assert await faults(no_project) == ["$.push"]
    not_an_object = {"push": {"provider": "fcm", "service_account": "{}"}}
    assert await faults(not_an_object) == ["$.push.service_account"]
