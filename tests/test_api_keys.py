"""API keys an operator manages (docs/keys.md): scopes enforced on every /v1 route, /v1/keys for
admin keys only, the last use recorded at most once a minute, a revoked key refused at once by a
second API app on the same database, migration 0025 (the keys before it become admin keys), and
the codec endpoint's key."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from alembic import command
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from flowline.settings import Settings
from flowline.store import api_keys
from flowline.store.database import Store
from flowline.store.migrate import alembic_config, upgrade
from launch.payload_codec import EncryptionCodec, parse_keys
from services.api_keys import KeyCheck
from tests.conftest import Tenant, new_tenant
from tests.databases import postgres_database, postgres_unavailable, sqlite_database
from tests.payload_keys import TEST_PAYLOAD_KEYS as KEYS


@contextlib.asynccontextmanager
async def api_app(
    store: Store, temporal: WorkflowEnvironment, tmp_path: Path, **settings: object
) -> AsyncIterator[httpx.AsyncClient]:
    """An API app of its own (its own Store: its own pool, as another process would have), no
    key set: each call passes its own."""
    own = Store(str(store.url))
    app = create_app(
        Settings(database_url=str(store.url), data_dir=tmp_path, sweep_seconds=0, **settings),  # type: ignore[arg-type]
        store=own,
        temporal=temporal.client,
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://flowline") as client:
                yield client
    finally:
        await own.dispose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_key(api: httpx.AsyncClient, admin: str, name: str, scope: str) -> dict[str, str]:
    created = await api.post("/v1/keys", json={"name": name, "scope": scope}, headers=bearer(admin))
    assert created.status_code == 201, created.text
    body: dict[str, str] = created.json()
    return body


async def test_a_revoked_key_is_refused_at_once_by_another_api_app(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    async with (
        api_app(store, temporal, tmp_path) as first,
        api_app(store, temporal, tmp_path) as second,
    ):
        key = await make_key(first, tenant.key, "ci", "write")
        # Both apps have just accepted the key (the old per-process cache would keep it for 30 s).
        for app in (first, second, second):
            assert (await app.get("/v1/workspace", headers=bearer(key["key"]))).status_code == 200

        revoked = await first.delete(f"/v1/keys/{key['id']}", headers=bearer(tenant.key))
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked_at"] is not None

        for app in (second, first):
            refused = await app.get("/v1/workspace", headers=bearer(key["key"]))
            assert refused.status_code == 401
            assert refused.json() == {"message": "unknown or revoked API key"}
        # The admin key that revoked it goes on working in both.
        for app in (first, second):
            assert (await app.get("/v1/workspace", headers=bearer(tenant.key))).status_code == 200


async def test_scopes_are_enforced(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    async with api_app(store, temporal, tmp_path) as api:
        read = (await make_key(api, tenant.key, "dashboard", "read"))["key"]
        write = (await make_key(api, tenant.key, "backend", "write"))["key"]
        event = {"events": [{"id": "e1", "profile_id": "ada", "name": "signed_up"}]}

        # read: GET only.
        assert (await api.get("/v1/workspace", headers=bearer(read))).status_code == 200
        assert (await api.get("/v1/flows", headers=bearer(read))).status_code == 200
        for method, path, body in (
            ("PUT", "/v1/workspace", {"timezone": "Europe/Paris"}),
            ("POST", "/v1/events", event),
            ("PUT", "/v1/profiles/ada", {"attributes": {"plan": "pro"}}),
            ("DELETE", "/v1/profiles/ada", None),
        ):
            refused = await api.request(method, path, json=body, headers=bearer(read))
            assert refused.status_code == 403, (method, path, refused.text)
            assert refused.json() == {
                "message": f"this API key's scope is 'read': it may only read (GET); {method} "
                "needs a key with scope 'write' or 'admin'"
            }
        assert (await api.get("/v1/profiles/ada", headers=bearer(read))).status_code == 404, "nothing written"

        # write: everything of its workspace but keys.
        assert (
            await api.put("/v1/workspace", json={"timezone": "Europe/Paris"}, headers=bearer(write))
        ).status_code == 200
        assert (
            await api.put("/v1/profiles/ada", json={"attributes": {}}, headers=bearer(write))
        ).status_code == 200
        for method, path, body in (
            ("GET", "/v1/keys", None),
            ("POST", "/v1/keys", {"name": "mine", "scope": "admin"}),
            ("DELETE", "/v1/keys/0123456789abcdef", None),
        ):
            refused = await api.request(method, path, json=body, headers=bearer(write))
            assert refused.status_code == 403, (method, path, refused.text)
            assert "managing API keys needs a key with scope 'admin'" in refused.json()["message"]
        for key in (read,):
            assert (await api.get("/v1/keys", headers=bearer(key))).status_code == 403

        # admin: keys too.
        listed = await api.get("/v1/keys", headers=bearer(tenant.key))
        assert listed.status_code == 200
        assert {k["scope"] for k in listed.json()["keys"]} == {"admin", "read", "write"}

        # No key, or a wrong one: 401.
        assert (await api.get("/v1/keys")).status_code == 401
        assert (await api.get("/v1/keys", headers=bearer(tenant.key + "x"))).status_code == 401


async def test_create_list_and_revoke(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, other_tenant: Tenant, tmp_path: Path
) -> None:
    async with api_app(store, temporal, tmp_path) as api:
        admin = bearer(tenant.key)
        created = await make_key(api, tenant.key, "ci deploys", "write")
        assert created["key"].startswith("fl_") and created["name"] == "ci deploys"
        assert created["last_used_at"] is None and created["revoked_at"] is None

        listed = (await api.get("/v1/keys", headers=admin)).json()["keys"]
        assert [k["id"] for k in listed][-1] == created["id"]
        assert all("key" not in k for k in listed), "a secret is shown once, never listed"
        assert created["key"] not in json.dumps(listed)

        # Faults: 422 with their paths, never a 500.
        bad = await api.post("/v1/keys", json={"name": "", "scope": "root", "x": 1}, headers=admin)
        assert bad.status_code == 422
        assert {f["path"] for f in bad.json()["faults"]} == {"$.name", "$.scope", "$.x"}
        assert (await api.delete("/v1/keys/not-an-id", headers=admin)).status_code == 422

        # Another workspace's key is not found; an unknown id neither.
        theirs = await make_key(api, other_tenant.key, "theirs", "read")
        assert (await api.delete(f"/v1/keys/{theirs['id']}", headers=admin)).status_code == 404
        assert (await api.delete("/v1/keys/0123456789abcdef", headers=admin)).status_code == 404
        assert theirs["id"] not in {
            k["id"] for k in (await api.get("/v1/keys", headers=admin)).json()["keys"]
        }

        first = (await api.delete(f"/v1/keys/{created['id']}", headers=admin)).json()
        again = await api.delete(f"/v1/keys/{created['id']}", headers=admin)
        assert again.status_code == 200 and again.json() == first, "revoking twice changes nothing"
        shown = {k["id"]: k for k in (await api.get("/v1/keys", headers=admin)).json()["keys"]}
        assert shown[created["id"]]["revoked_at"] == first["revoked_at"]

        # The last admin key stays (409); with a second one, the first may go.
        [own] = [k for k in shown.values() if k["scope"] == "admin"]
        last = await api.delete(f"/v1/keys/{own['id']}", headers=admin)
        assert last.status_code == 409 and "last admin key" in last.json()["message"]
        spare = await make_key(api, tenant.key, "spare", "admin")
        assert (await api.delete(f"/v1/keys/{own['id']}", headers=bearer(spare["key"]))).status_code == 200
        assert (await api.get("/v1/keys", headers=admin)).status_code == 401


@pytest_asyncio.fixture
async def other_tenant(store: Store) -> Tenant:
    return await new_tenant(store)


async def test_the_list_shows_the_last_use_written_at_most_once_a_minute(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    async with api_app(store, temporal, tmp_path) as api:
        key = await make_key(api, tenant.key, "reader", "read")

        async def last_use() -> str | None:
            found = (await api.get("/v1/keys", headers=bearer(tenant.key))).json()["keys"]
            value: str | None = next(k for k in found if k["id"] == key["id"])["last_used_at"]
            return value

        assert await last_use() is None
        before = datetime.now(UTC)
        assert (await api.get("/v1/workspace", headers=bearer(key["key"]))).status_code == 200
        first = await last_use()
        assert first is not None
        assert before - timedelta(seconds=1) <= datetime.fromisoformat(first) <= datetime.now(UTC)
        for _ in range(5):
            await api.get("/v1/workspace", headers=bearer(key["key"]))
        assert await last_use() == first, "not written again within the minute"


async def test_the_use_is_written_once_a_minute_per_key(store: Store, tenant: Tenant) -> None:
    """KeyCheck on its own clock: one write per key per minute, however many requests."""
    now = [1000.0]
    check = KeyCheck(store, clock=lambda: now[0])
    found = await check.key(tenant.key)
    assert found is not None and found.workspace_id == tenant.id and found.scope == "admin"

    async def stored() -> datetime | None:
        async with store.connect() as conn:
            record = await api_keys.get_key(conn, tenant.id, found.id)
        assert record is not None
        return record.last_used_at

    written = await stored()
    assert written is not None
    async with store.begin() as conn:  # as if written two minutes ago
        await conn.execute(
            api_keys.api_keys.update()
            .where(api_keys.api_keys.c.id == found.id)
            .values(last_used_at=written - timedelta(minutes=2))
        )
    await check.key(tenant.key)
    assert await stored() == written - timedelta(minutes=2), "this process wrote less than a minute ago"
    now[0] += 61
    await check.key(tenant.key)
    assert await stored() is not None and await stored() > written
    assert await check.key(tenant.key + "x") is None


# ------------------------------------------------------------------ migration 0025


@pytest.fixture(params=["sqlite", "postgres"])
def database_at_0024(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        with sqlite_database(tmp_path, "0024") as url:
            yield url
        return
    reason = postgres_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with postgres_database("0024") as url:
        yield url


def test_0025_makes_the_keys_before_it_admin_keys(database_at_0024: str) -> None:
    url = database_at_0024
    engine = sa.create_engine(url.replace("sqlite+aiosqlite", "sqlite"))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO workspaces (id, name, webhook_secret, created_at) "
                    "VALUES ('w', 'w', 's', '2026-01-01')"
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, workspace_id, key_hash, label, created_at) "
                    "VALUES ('k1', 'w', :hash, 'dev', '2026-01-01')"
                ),
                {"hash": api_keys.hash_key("fl_old")},
            )
        upgrade(url)
        with engine.begin() as conn:
            row = conn.execute(sa.text("SELECT name, scope, last_used_at, revoked_at FROM api_keys")).one()
            assert tuple(row) == ("dev", "admin", None, None)
        engine.dispose()  # SQLite: the downgrade copies the table this engine's pool may hold
        command.downgrade(alembic_config(url), "0024")
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT label FROM api_keys")).scalar_one() == "dev"
    finally:
        engine.dispose()


# ------------------------------------------------------------------ the codec endpoint


async def test_the_codec_endpoint_asks_for_an_admin_key(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    origin = "http://127.0.0.1:8233"
    plain = Payload(
        metadata={"encoding": b"json/plain"}, data=json.dumps({"email": "ada@example.com"}).encode()
    )
    [encoded] = await EncryptionCodec(parse_keys(KEYS)).encode([plain])
    body = {"payloads": [MessageToDict(encoded)]}
    async with api_app(store, temporal, tmp_path, codec_endpoint=True, payload_keys=KEYS) as api:
        read = (await make_key(api, tenant.key, "reader", "read"))["key"]
        for headers, status in (
            ({}, 401),
            (bearer("fl_nobody"), 401),
            ({"Authorization": "Basic abc"}, 401),
            (bearer(read), 403),
        ):
            refused = await api.post("/codec/decode", json=body, headers={"Origin": origin, **headers})
            assert refused.status_code == status, refused.text
            assert refused.headers["access-control-allow-origin"] == origin, "the UI can show why"
            assert "ada@example.com" not in refused.text
        # The preflight carries no credentials (browsers never send them on it).
        preflight = await api.options(
            "/codec/decode", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        assert (
            preflight.status_code == 200
            and "Authorization" in preflight.headers["access-control-allow-headers"]
        )

        decoded = await api.post("/codec/decode", json=body, headers={"Origin": origin, **bearer(tenant.key)})
        assert decoded.status_code == 200, decoded.text
        [payload] = decoded.json()["payloads"]
        assert json.loads(base64.b64decode(payload["data"])) == {"email": "ada@example.com"}


async def test_a_deployments_ui_origin_may_call_the_codec(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    ui = "https://temporal.example.com"
    async with api_app(store, temporal, tmp_path, codec_endpoint=True, codec_ui_origins=f"{ui}/, x") as api:
        decoded = await api.post(
            "/codec/decode", json={"payloads": []}, headers={"Origin": ui, **bearer(tenant.key)}
        )
        assert decoded.status_code == 200 and decoded.headers["access-control-allow-origin"] == ui
        refused = await api.post("/codec/decode", json={"payloads": []}, headers={"Origin": ui})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ui
        other = await api.post(
            "/codec/decode",
            json={"payloads": []},
            headers={"Origin": "https://evil.example", **bearer(tenant.key)},
        )
        assert "access-control-allow-origin" not in other.headers


async def test_the_codec_endpoint_is_open_only_when_chosen() -> None:
    """``codec_open`` (what `flowline run` sets on a loopback API) needs no key, and no database."""
    app = create_app(Settings(sweep_seconds=0, codec_endpoint=True, codec_open=True, payload_keys=KEYS))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flowline") as api:
        answer = await api.post("/codec/decode", json={"payloads": []})
        assert answer.status_code == 200 and answer.json() == {"payloads": []}


def test_run_opens_the_codec_only_on_a_loopback_api() -> None:
    from commands.stack import _loopback

    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("localhost") and _loopback("127.0.0.2")
    assert not _loopback("0.0.0.0") and not _loopback("::") and not _loopback("10.0.0.5")
    assert not _loopback("flowline.example.com")


def test_the_keys_routes_are_documented() -> None:
    document = create_app(Settings(sweep_seconds=0)).openapi()
    paths: dict[str, Any] = document["paths"]
    create, listing = paths["/v1/keys"]["post"], paths["/v1/keys"]["get"]
    revoke = paths["/v1/keys/{key_id}"]["delete"]
    assert {"201", "401", "403", "422", "503"} <= set(create["responses"])
    assert {"200", "401", "403"} <= set(listing["responses"])
    assert {"200", "401", "403", "404", "409", "422"} <= set(revoke["responses"])
    created = create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert created.endswith("/KeyCreated") and create["tags"] == ["keys"]
    schemas: dict[str, Any] = document["components"]["schemas"]
    assert set(schemas["KeyIn"]["properties"]["scope"]["enum"]) == {"read", "write", "admin"}
    assert "key" not in schemas["KeyShown"]["properties"], "a listed key never shows its secret"
    # Every authenticated route declares the 403 of a key whose scope does not allow it.
    assert "403" in paths["/v1/events"]["post"]["responses"]
