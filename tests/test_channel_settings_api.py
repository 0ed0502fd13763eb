"""PUT/GET /v1/workspace/channels: each channel's provider, secrets never shown."""

from __future__ import annotations

from typing import Any

import httpx

from flowline.store import workspaces
from flowline.store.database import Store
from tests.conftest import Tenant

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
    assert sorted(f["path"] for f in missing.json()["faults"]) == ["$.push.access_token", "$.push.project_id"]
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
