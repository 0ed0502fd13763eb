"""PUT/GET/DELETE /v1/destinations and POST /v1/destinations/{id}/test, on both databases through
the real app: secrets masked and kept, faults with paths, workspaces apart, a webhook destination
checked against a real receiver on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from flowline.channels import webhook
from flowline.destinations.settings import CleverTapDestination
from flowline.settings import Settings
from flowline.store import destinations
from flowline.store.database import Store
from services import destinations as use_cases
from tests.conftest import Tenant, app_client, new_tenant
from tests.fake_clevertap import fake_clevertap
from tests.servers import HttpSink

CLEVERTAP: dict[str, Any] = {
    "type": "clevertap",
    "account_id": "TEST-123-456",
    "passcode": "clevertap-secret",
    "region": "in1",
    "identity": "email",
    "referral_events": ["app_install", "subscription_started"],
}
WEBHOOK: dict[str, Any] = {
    "type": "webhook",
    "url": "https://hooks.example.com/flowline",
    "signing_secret": "webhook-secret",
    "batch_size": 250,
}


@contextlib.asynccontextmanager
async def private_outbound_client(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with FLOWLINE_ALLOW_PRIVATE_OUTBOUND: the test receivers are on 127.0.0.1."""
    settings = Settings(
        database_url=str(store.url),
        data_dir=tmp_path,
        sweep_seconds=0,
        allow_private_outbound=True,
        webhook_timeout_seconds=5,
    )
    app = create_app(settings, store=store, temporal=temporal.client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {tenant.key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://flowline", headers=headers) as c:
            yield c


async def test_create_read_list_delete(api: httpx.AsyncClient, store: Store, tenant: Tenant) -> None:
    assert (await api.get("/v1/destinations")).json() == {"destinations": []}
    put = await api.put("/v1/destinations/ct", json=CLEVERTAP)
    assert put.status_code == 200, put.text
    shown = put.json()
    assert shown["id"] == "ct" and shown["type"] == "clevertap"
    assert (shown["account_id"], shown["passcode"], shown["region"], shown["identity"]) == (
        "TEST-123-456",
        "***",
        "in1",
        "email",
    )
    assert shown["referral_events"] == ["app_install", "subscription_started"] and shown["base_url"] is None
    assert (await api.get("/v1/destinations/ct")).json() == shown

    hook = await api.put("/v1/destinations/hook", json={**WEBHOOK, "batch_size": 1})
    assert hook.status_code == 200, hook.text
    assert hook.json()["signing_secret"] == "***" and hook.json()["batch_size"] == 1
    listed = (await api.get("/v1/destinations")).json()["destinations"]
    assert [d["id"] for d in listed] == ["ct", "hook"]
    assert "clevertap-secret" not in json.dumps(listed) and "webhook-secret" not in json.dumps(listed)

    # Defaults: eu1, identity id, batches of 100.
    minimal = await api.put(
        "/v1/destinations/ct2", json={"type": "clevertap", "account_id": "A", "passcode": "p"}
    )
    assert (minimal.json()["region"], minimal.json()["identity"], minimal.json()["referral_events"]) == (
        "eu1",
        "id",
        [],
    )
    plain = await api.put(
        "/v1/destinations/h2", json={"type": "webhook", "url": "https://x.example", "signing_secret": "s"}
    )
    assert plain.json()["batch_size"] == 100

    async with store.connect() as conn:
        stored = await destinations.get_destination(conn, tenant.id, "ct")
    assert stored is not None and isinstance(stored.settings, CleverTapDestination)
    assert stored.settings.passcode == "clevertap-secret"

    assert (await api.delete("/v1/destinations/ct")).status_code == 204
    assert (await api.get("/v1/destinations/ct")).status_code == 404
    again = await api.delete("/v1/destinations/ct")
    assert again.status_code == 404 and again.json() == {"message": "no destination 'ct'"}
    assert [d["id"] for d in (await api.get("/v1/destinations")).json()["destinations"]] == [
        "ct2",
        "h2",
        "hook",
    ]


async def test_the_mask_sent_back_keeps_the_stored_secret(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    assert (await api.put("/v1/destinations/ct", json=CLEVERTAP)).status_code == 200
    edited = (await api.get("/v1/destinations/ct")).json()
    for shown_only in ("id", "created_at", "updated_at"):
        del edited[shown_only]
    edited["region"] = "us1"
    put = await api.put("/v1/destinations/ct", json=edited)
    assert put.status_code == 200, put.text
    assert put.json()["region"] == "us1" and put.json()["passcode"] == "***"
    async with store.connect() as conn:
        stored = await destinations.get_destination(conn, tenant.id, "ct")
    assert stored is not None and isinstance(stored.settings, CleverTapDestination)
    assert (stored.settings.region, stored.settings.passcode) == ("us1", "clevertap-secret")

    # A new secret replaces it.
    assert (
        await api.put("/v1/destinations/ct", json={**CLEVERTAP, "passcode": "new-one"})
    ).status_code == 200
    async with store.connect() as conn:
        stored = await destinations.get_destination(conn, tenant.id, "ct")
    assert stored is not None and isinstance(stored.settings, CleverTapDestination)
    assert stored.settings.passcode == "new-one"

    # Nothing stored to keep: a new destination, or one of another type.
    for destination_id, body, path in (
        ("fresh", {**WEBHOOK, "signing_secret": "***"}, "$.signing_secret"),
        ("ct", {**WEBHOOK, "signing_secret": "***"}, "$.signing_secret"),
    ):
        refused = await api.put(f"/v1/destinations/{destination_id}", json=body)
        assert refused.status_code == 422, refused.text
        assert [f["path"] for f in refused.json()["faults"]] == [path]
    assert (await api.get("/v1/destinations/fresh")).status_code == 404
    assert (await api.get("/v1/destinations/ct")).json()["type"] == "clevertap"


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        # An unknown or missing tag is a fault of the object, as an unknown step type is.
        ({**CLEVERTAP, "type": "segment"}, ["$"]),
        ({k: v for k, v in CLEVERTAP.items() if k != "type"}, ["$"]),
        ({**CLEVERTAP, "region": "eu2"}, ["$.region"]),
        ({**WEBHOOK, "batch_size": 0}, ["$.batch_size"]),
        ({**WEBHOOK, "batch_size": 1001}, ["$.batch_size"]),
        ({**WEBHOOK, "url": "ftp://example.com"}, ["$.url"]),
        ({**WEBHOOK, "extra": 1}, ["$.extra"]),
        ({**CLEVERTAP, "referral_events": ["ok", ""]}, ["$.referral_events[1]"]),
        ({**CLEVERTAP, "account_id": "x" * 101}, ["$.account_id"]),
        ({"type": "webhook", "url": "https://x.example"}, ["$.signing_secret"]),
        ([WEBHOOK], ["$"]),
    ],
)
async def test_faults_have_paths_and_nothing_is_written(
    api: httpx.AsyncClient, body: Any, paths: list[str]
) -> None:
    refused = await api.put("/v1/destinations/bad", json=body)
    assert refused.status_code == 422, refused.text
    assert [f["path"] for f in refused.json()["faults"]] == paths
    assert (await api.get("/v1/destinations/bad")).status_code == 404


async def test_unknown_destinations_and_ids(api: httpx.AsyncClient) -> None:
    for method, path in (
        ("GET", "/v1/destinations/nope"),
        ("DELETE", "/v1/destinations/nope"),
        ("POST", "/v1/destinations/nope/test"),
    ):
        answer = await api.request(method, path)
        assert answer.status_code == 404, (method, answer.text)
    bad_id = await api.put("/v1/destinations/-dash", json=WEBHOOK)
    assert bad_id.status_code == 422


async def test_workspaces_see_only_their_own(
    api: httpx.AsyncClient, store: Store, temporal: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    assert (await api.put("/v1/destinations/shared-name", json=CLEVERTAP)).status_code == 200
    other = await new_tenant(store)
    async with app_client(store, temporal, task_queue, other, tmp_path) as theirs:
        assert (await theirs.get("/v1/destinations")).json() == {"destinations": []}
        assert (await theirs.get("/v1/destinations/shared-name")).status_code == 404
        assert (await theirs.delete("/v1/destinations/shared-name")).status_code == 404
        # The same id in their workspace is theirs; a mask has nothing of ours to keep.
        masked = await theirs.put("/v1/destinations/shared-name", json={**CLEVERTAP, "passcode": "***"})
        assert masked.status_code == 422
        assert (await theirs.put("/v1/destinations/shared-name", json=WEBHOOK)).status_code == 200
    assert (await api.get("/v1/destinations/shared-name")).json()["type"] == "clevertap"


async def test_a_webhook_destination_receives_a_signed_test_batch(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path, sink: HttpSink
) -> None:
    async with private_outbound_client(store, temporal, tenant, tmp_path) as api:
        body = {**WEBHOOK, "url": f"{sink.url}/receive"}
        assert (await api.put("/v1/destinations/hook", json=body)).status_code == 200
        answer = await api.post("/v1/destinations/hook/test")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ok": True, "status": 200, "message": "answered 200"}
        [received] = sink.on("/receive")
        assert received.method == "POST" and received.json() == {"records": [], "test": True}
        headers = {name.lower(): value for name, value in received.headers.items()}
        assert webhook.verify("webhook-secret", received.body, headers["flowline-signature"])
        assert not webhook.verify("other-secret", received.body, headers["flowline-signature"])

        # A receiver that refuses the batch: not ok, with its status and what it said.
        sink.status = 401
        refused = (await api.post("/v1/destinations/hook/test")).json()
        assert (refused["ok"], refused["status"]) == (False, 401)
        assert refused["message"].startswith("answered 401")


async def test_an_unreachable_webhook_destination_is_not_ok_with_the_reason(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with private_outbound_client(store, temporal, tenant, tmp_path) as api:
        body = {**WEBHOOK, "url": f"http://127.0.0.1:{port}/gone"}
        assert (await api.put("/v1/destinations/gone", json=body)).status_code == 200
        answer = await api.post("/v1/destinations/gone/test")
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert (found["ok"], found["status"]) == (False, None)
        assert f"127.0.0.1:{port}/gone failed" in found["message"] and "ConnectError" in found["message"]


async def test_the_outbound_guard_refuses_private_addresses(api: httpx.AsyncClient, sink: HttpSink) -> None:
    # The app's default settings: the same SSRF guard as webhook steps.
    assert (
        await api.put("/v1/destinations/hook", json={**WEBHOOK, "url": f"{sink.url}/x"})
    ).status_code == 200
    found = (await api.post("/v1/destinations/hook/test")).json()
    assert (found["ok"], found["status"]) == (False, None)
    assert "non-public address" in found["message"]
    assert sink.received == []


async def test_a_clevertap_destination_checks_its_credentials_against_clevertap(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    with fake_clevertap(account_id="TEST-123-456", passcode="clevertap-secret") as fake:
        async with private_outbound_client(store, temporal, tenant, tmp_path) as api:
            body = {**CLEVERTAP, "base_url": fake.url}
            assert (await api.put("/v1/destinations/ct", json=body)).status_code == 200
            answer = await api.post("/v1/destinations/ct/test")
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"ok": True, "status": 200, "message": "credentials accepted"}
            [(path, headers, sent)] = fake.requests
            assert (path, json.loads(sent)) == ("/1/upload", {"d": []})
            assert headers["x-clevertap-account-id"] == "TEST-123-456"
            assert fake.accepted == []

            # A wrong passcode: not ok, CleverTap's status, and the passcode in no answer.
            wrong = {**body, "passcode": "wrong-passcode"}
            assert (await api.put("/v1/destinations/ct", json=wrong)).status_code == 200
            refused = await api.post("/v1/destinations/ct/test")
            assert (refused.json()["ok"], refused.json()["status"]) == (False, 401)
            assert "wrong-passcode" not in refused.text


async def test_a_clevertap_destination_on_a_private_address_is_refused_by_the_guard(
    api: httpx.AsyncClient,
) -> None:
    with fake_clevertap() as fake:
        assert (
            await api.put("/v1/destinations/ct", json={**CLEVERTAP, "base_url": fake.url})
        ).status_code == 200
        found = (await api.post("/v1/destinations/ct/test")).json()
        assert (found["ok"], found["status"]) == (False, None)
        assert fake.requests == []


async def test_no_running_flow_uses_a_destination_before_export_steps_exist(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    assert (await api.put("/v1/destinations/hook", json=WEBHOOK)).status_code == 200
    async with store.connect() as conn:
        assert await use_cases.flows_using(conn, tenant.id, "hook") == []
