"""Channel and destination credentials at rest (docs/secrets.md): sealed in the database on both
stores, opened for sends and exports, rotated with the payload keys, never returned, never logged."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from commands import get_app
from flowline.channels import webhook
from flowline.secret_box import PLAIN, SecretBox, SecretKeyError, is_sealed
from flowline.settings import get_settings
from flowline.store import destinations as destination_store
from flowline.store import elements as element_store
from flowline.store import workspaces
from flowline.store.database import Store, utcnow
from flowline.store.stored_secrets import CLEAR, reseal_secrets
from flowline.store.tables import destinations, element_versions
from flowline.store.tables import workspaces as workspaces_table
from tests.conftest import Tenant, finish
from tests.databases import sqlite_database
from tests.payload_keys import NEW_KEY, OLD_KEY, TEST_PAYLOAD_KEYS
from tests.providers import FakeTwilio, fake_twilio
from tests.servers import HttpSink
from tests.test_custom_elements import register_element
from tests.test_destinations_api import private_outbound_client
from tests.test_journeys import publish
from tests.test_message_sent import sms_flow, start

ROTATED = f"k2:{NEW_KEY},test-1:{OLD_KEY}"  # the new key first, the old one still there

SECRETS = {
    "smtp": "smtp-pa55word-at-rest",
    "twilio": "twilio-t0ken-at-rest",
    "fcm": "fcm-acce55-token-at-rest",
    "clevertap": "clevertap-pa55code-at-rest",
    "webhook": "webhook-5igning-secret-at-rest",
    "element": "Bearer e1ement-token-at-rest",
}


def element_body() -> dict[str, Any]:
    body = register_element("https://webinars.example.com/register")
    body["request"]["headers"]["Authorization"] = SECRETS["element"]
    return body


def channel_body(twilio: FakeTwilio | None = None) -> dict[str, Any]:
    return {
        "email": {
            "provider": "smtp",
            "host": "127.0.0.1",
            "port": 2525,
            "username": "mailer",
            "password": SECRETS["smtp"],
            "security": "none",
            "from_address": "hello@example.com",
        },
        "sms": {
            "provider": "twilio",
            "base_url": twilio.url if twilio else "http://127.0.0.1:9999",
            "account_sid": twilio.account_sid if twilio else "AC123",
            "auth_token": twilio.auth_token if twilio else SECRETS["twilio"],
            "from_number": "+15005550001",
        },
        "push": {"provider": "fcm", "project_id": "my-app", "access_token": SECRETS["fcm"]},
    }


CLEVERTAP = {"type": "clevertap", "account_id": "W-1", "passcode": SECRETS["clevertap"], "events": ["x"]}


def webhook_body(url: str = "https://hooks.example.com/in") -> dict[str, Any]:
    return {"type": "webhook", "url": url, "signing_secret": SECRETS["webhook"]}


async def raw_rows(store: Store, workspace_id: str) -> tuple[Any, dict[str, Any]]:
    """The workspace's ``channels`` column and each destination's ``settings``, as stored."""
    async with store.connect() as conn:
        channels = await conn.scalar(
            select(workspaces_table.c.channels).where(workspaces_table.c.id == workspace_id)
        )
        rows = await conn.execute(
            select(destinations.c.id, destinations.c.settings).where(
                destinations.c.workspace_id == workspace_id
            )
        )
        return channels, {row.id: row.settings for row in rows}


async def raw_elements(store: Store, workspace_id: str) -> dict[tuple[str, int], Any]:
    """Each element version's ``definition``, as stored."""
    columns = (element_versions.c.element_id, element_versions.c.version, element_versions.c.definition)
    async with store.connect() as conn:
        rows = await conn.execute(select(*columns).where(element_versions.c.workspace_id == workspace_id))
        return {(row.element_id, row.version): row.definition for row in rows}


def assert_no_secret_in(text: str) -> None:
    for secret in SECRETS.values():
        assert secret not in text


# ------------------------------------------------------------------ the box itself


def test_sealed_values_open_under_any_key_and_name_the_missing_one() -> None:
    old = SecretBox.from_setting(TEST_PAYLOAD_KEYS)
    rotated = SecretBox.from_setting(ROTATED)
    sealed = old.seal("s3cret")
    assert is_sealed(sealed) and sealed["key"] == "test-1" and "s3cret" not in json.dumps(sealed)
    assert old.seal("s3cret") != sealed, "a fresh nonce each time"
    assert rotated.open(sealed) == "s3cret" and rotated.seal("s3cret")["key"] == "k2"
    assert rotated.stale(sealed) and not rotated.stale(rotated.seal("s3cret"))
    with pytest.raises(SecretKeyError, match=r"key 'k2', which FLOWLINE_PAYLOAD_KEYS does not hold"):
        old.open(rotated.seal("s3cret"))
    # Relabelled to another key, or altered: refused, never a wrong secret.
    with pytest.raises(SecretKeyError, match="does not open"):
        rotated.open({**sealed, "key": "k2"})
    data = bytearray(base64.b64decode(sealed["data"]))
    data[-1] ^= 1
    with pytest.raises(SecretKeyError, match="does not open"):
        old.open({**sealed, "data": base64.b64encode(bytes(data)).decode()})


def test_values_in_clear_read_as_they_are_and_any_json_value_round_trips() -> None:
    box = SecretBox.from_setting(TEST_PAYLOAD_KEYS)
    lookalikes: list[Any] = [
        "plain",
        "",
        '{"$sealed": "aes-256-gcm", "key": "test-1", "data": "AAAA"}',
        {"$sealed": "aes-256-gcm", "key": "test-1"},  # not all three members: not sealed
        "ü∞ ✓",
        {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"},
    ]
    for value in lookalikes:
        assert box.open(value) == value, value
        assert box.open(box.seal(value)) == value, value
        assert PLAIN.seal(value) == value and PLAIN.open(value) == value
    assert box.seal(None) is None and not box.stale(None)


def test_a_sealed_secret_is_no_temporal_payload_under_the_same_key() -> None:
    """The secrets' key is derived from the payload key: the raw payload key (which the codec
    endpoint uses) does not open a sealed secret."""
    sealed = SecretBox.from_setting(TEST_PAYLOAD_KEYS).seal("s3cret")
    data = base64.b64decode(sealed["data"])
    for aad in (b"test-1", b"flowline-secret:test-1"):
        with pytest.raises(InvalidTag):
            AESGCM(base64.b64decode(OLD_KEY)).decrypt(data[:12], data[12:], aad)


# ------------------------------------------------------------------ stored sealed, never returned


async def test_the_database_holds_no_secret_in_clear_and_the_api_returns_none(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    answers = [await api.put("/v1/workspace/channels", json=channel_body())]
    answers.append(await api.put("/v1/destinations/ct", json=CLEVERTAP))
    answers.append(await api.put("/v1/destinations/hook", json=webhook_body()))
    answers.append(await api.put("/v1/elements/register", json=element_body()))
    assert [a.status_code for a in answers] == [200, 200, 200, 200], [a.text for a in answers]
    # Sent back masked: the stored secrets are kept, and stay sealed.
    shown = (await api.get("/v1/workspace/channels")).json()
    shown["sms"]["from_number"] = "+15005550009"
    answers.append(await api.put("/v1/workspace/channels", json=shown))
    assert answers[-1].status_code == 200
    answers += [
        await api.get("/v1/workspace/channels"),
        await api.get("/v1/destinations"),
        await api.get("/v1/destinations/ct"),
        await api.get("/v1/destinations/hook"),
        await api.get("/v1/elements/register"),
        await api.get("/v1/elements"),
        # Refused bodies do not echo the secrets they carried.
        await api.put("/v1/workspace/channels", json={**channel_body(), "push": {"access_token": "x"}}),
        await api.put("/v1/destinations/ct", json={**CLEVERTAP, "region": "mars"}),
        await api.put("/v1/destinations/hook", json={**webhook_body(), "url": "not a url"}),
    ]
    assert [a.status_code for a in answers[-3:]] == [422, 422, 422]
    for answer in answers:
        assert_no_secret_in(answer.text)

    channels, settings = await raw_rows(store, tenant.id)
    element = (await raw_elements(store, tenant.id))[("register", 1)]
    assert_no_secret_in(json.dumps([channels, settings, element]))
    assert element["request"]["headers"]["X-Person"] == "{{ profile.id }}", "only credentials are sealed"
    stored_secrets = [
        element["request"]["headers"]["Authorization"],
        channels["email"]["password"],
        channels["sms"]["auth_token"],
        channels["push"]["access_token"],
        settings["ct"]["passcode"],
        settings["hook"]["signing_secret"],
    ]
    assert all(is_sealed(s) and s["key"] == "test-1" for s in stored_secrets), stored_secrets
    # What is not a secret is stored as it is (queries and humans can read it).
    assert channels["sms"]["from_number"] == "+15005550009" and settings["ct"]["account_id"] == "W-1"

    async with store.connect() as conn:
        opened = await workspaces.channel_settings(conn, tenant.id)
        ct = await destination_store.get_destination(conn, tenant.id, "ct")
        register = await element_store.get_element(conn, tenant.id, "register")
    assert register is not None and register.definition.request.headers["Authorization"] == SECRETS["element"]
    assert opened.email is not None and opened.email.password == SECRETS["smtp"]
    assert opened.sms is not None and opened.sms.auth_token == SECRETS["twilio"]
    assert ct is not None and getattr(ct.settings, "passcode", None) == SECRETS["clevertap"]
    # Nor does a repr (a log line, a traceback's message) show them.
    assert_no_secret_in(repr(opened) + repr(ct))


# ------------------------------------------------------------------ used sealed, never logged


@pytest.fixture
def twilio_server() -> Iterator[FakeTwilio]:
    with fake_twilio(auth_token=SECRETS["twilio"]) as fake:
        yield fake


async def test_sends_and_exports_use_the_sealed_credentials_and_log_none(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    store: Store,
    tenant: Tenant,
    tmp_path: Path,
    twilio_server: FakeTwilio,
    sink: HttpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    assert (await api.put("/v1/workspace/channels", json=channel_body(twilio_server))).status_code == 200
    channels, _ = await raw_rows(store, tenant.id)
    assert is_sealed(channels["sms"]["auth_token"])
    # An SMS through the worker: Twilio answers 401 unless the basic auth carries the token.
    person = {"attributes": {"phone": "+15005550006", "name": "Ada"}}
    assert (await api.put("/v1/profiles/ada", json=person)).status_code == 200
    await publish(api, sms_flow())
    state = await finish(temporal, await start(api, "texts"))
    assert (state.path[0].step, state.path[0].branch) == ("text", "sent")
    assert [m["Body"] for m in twilio_server.accepted] == ["Hi Ada"]

    # A webhook destination signs with its sealed secret (the API's test batch).
    async with private_outbound_client(store, temporal, tenant, tmp_path) as private:
        put = await private.put("/v1/destinations/hook", json=webhook_body(f"{sink.url}/receive"))
        assert put.status_code == 200
        assert (await private.post("/v1/destinations/hook/test")).json()["ok"] is True
    [received] = sink.on("/receive")
    signature = {k.lower(): v for k, v in received.headers.items()}["flowline-signature"]
    assert webhook.verify(SECRETS["webhook"], received.body, signature)
    _, settings = await raw_rows(store, tenant.id)
    assert is_sealed(settings["hook"]["signing_secret"])

    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "the run logged something (else this proves nothing)"
    assert_no_secret_in(logged)


# ------------------------------------------------------------------ rotation


@pytest_asyncio.fixture
async def rotated(store: Store) -> AsyncIterator[Store]:
    """Another process's store on the same database, with the new key first. The rows it
    re-seals are sealed back under the tests' key afterwards (the session's database is shared)."""
    other = Store(str(store.url), secret_keys=ROTATED)
    try:
        yield other
    finally:
        await other.dispose()
        back = Store(str(store.url), secret_keys=f"{TEST_PAYLOAD_KEYS},k2:{NEW_KEY}")
        try:
            await reseal_secrets(back)
        finally:
            await back.dispose()


async def test_a_rotated_key_reads_old_rows_and_reencryption_moves_them_to_it(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, rotated: Store
) -> None:
    assert (await api.put("/v1/workspace/channels", json=channel_body())).status_code == 200
    assert (await api.put("/v1/destinations/hook", json=webhook_body())).status_code == 200
    assert (await api.put("/v1/elements/register", json=element_body())).status_code == 200
    # A secret stored in clear before encryption existed (a row from an older version).
    legacy = {"type": "clevertap", "account_id": "W-9", "passcode": SECRETS["clevertap"], "region": "eu1"}
    async with store.begin() as conn:
        await conn.execute(
            destinations.insert().values(
                workspace_id=tenant.id,
                id="legacy",
                type="clevertap",
                settings=legacy,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
    async with store.connect() as conn:
        old_way = await destination_store.get_destination(conn, tenant.id, "legacy")
    assert old_way is not None and getattr(old_way.settings, "passcode", None) == SECRETS["clevertap"]

    # The new key first: every old row still reads, and new writes use the new key.
    async with rotated.connect() as conn:
        before = await workspaces.channel_settings(conn, tenant.id)
        hook = await destination_store.get_destination(conn, tenant.id, "hook")
    assert before.email is not None and before.email.password == SECRETS["smtp"]
    assert hook is not None and getattr(hook.settings, "signing_secret", None) == SECRETS["webhook"]

    checked = await reseal_secrets(rotated, check=True)
    assert checked.key_id == "k2" and checked.found["test-1"] >= 5 and checked.found[CLEAR] >= 1
    assert checked.stale >= 6 and checked.resealed_secrets == 0

    report = await reseal_secrets(rotated)
    assert report.resealed_secrets == report.stale >= 6
    channels, settings = await raw_rows(store, tenant.id)
    element = (await raw_elements(store, tenant.id))[("register", 1)]
    sealed = [
        channels[c][f] for c, f in (("email", "password"), ("sms", "auth_token"), ("push", "access_token"))
    ]
    sealed += [settings["hook"]["signing_secret"], settings["legacy"]["passcode"]]
    sealed.append(element["request"]["headers"]["Authorization"])
    assert all(is_sealed(s) and s["key"] == "k2" for s in sealed), sealed
    assert_no_secret_in(json.dumps([channels, settings, element]))
    assert settings["legacy"]["account_id"] == "W-9", "the rest of the row is untouched"

    # Nothing is left under the old key: a store without it reads everything ...
    new_only = Store(str(store.url), secret_keys=f"k2:{NEW_KEY}")
    try:
        async with new_only.connect() as conn:
            after = await workspaces.channel_settings(conn, tenant.id)
            legacy_now = await destination_store.get_destination(conn, tenant.id, "legacy")
            register = await element_store.get_element(conn, tenant.id, "register")
        assert (
            register is not None
            and register.definition.request.headers["Authorization"] == SECRETS["element"]
        )
        assert after == before
        assert (
            legacy_now is not None and getattr(legacy_now.settings, "passcode", None) == SECRETS["clevertap"]
        )
        again = await reseal_secrets(new_only)
        assert (again.stale, again.resealed_secrets) == (0, 0), "a second run has nothing to do"
    finally:
        await new_only.dispose()
    # ... and one with only the old key names the key it lacks.
    with pytest.raises(SecretKeyError, match="'k2'"):
        async with store.connect() as conn:
            await workspaces.channel_settings(conn, tenant.id)


# ------------------------------------------------------------------ the command


def test_the_command_seals_rows_in_clear_and_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`flowline reencrypt-secrets` on a database of its own: with no key at all (no setting, no
    .data/payload-key) it refuses and makes none up; --check exits 1 while a secret is in clear,
    the run seals it under the key `flowline run` made, and --check then passes."""
    workspace_id = "ws-command"
    plain = {"email": {"provider": "smtp", "host": "h", "password": SECRETS["smtp"], "from_address": "a@b.c"}}

    async def seed(url: str) -> None:
        seeding = Store(url)  # no keys: stored in clear, as before encryption
        try:
            async with seeding.begin() as conn:
                await workspaces.create_workspace(conn, workspace_id, workspace_id)
                update = workspaces_table.update().where(workspaces_table.c.id == workspace_id)
                await conn.execute(update.values(channels=plain))
        finally:
            await seeding.dispose()

    async def stored(url: str) -> Any:
        reading = Store(url)
        try:
            async with reading.connect() as conn:
                query = select(workspaces_table.c.channels).where(workspaces_table.c.id == workspace_id)
                return await conn.scalar(query)
        finally:
            await reading.dispose()

    data = tmp_path / "data"
    data.mkdir()
    runner = CliRunner()
    with sqlite_database(tmp_path) as url:
        asyncio.run(seed(url))
        monkeypatch.setenv("FLOWLINE_DATABASE_URL", url)
        monkeypatch.setenv("FLOWLINE_DATA_DIR", str(data))
        monkeypatch.delenv("FLOWLINE_PAYLOAD_KEYS", raising=False)
        get_settings.cache_clear()
        try:
            refused = runner.invoke(get_app(), ["reencrypt-secrets"])
            assert refused.exit_code == 2 and "no payload key" in refused.output, refused.output
            assert not (data / "payload-key").exists(), "no key is made up that the stack does not have"

            (data / "payload-key").write_text(f"dev-1:{OLD_KEY}\n")  # what `flowline run` made
            check = runner.invoke(get_app(), ["reencrypt-secrets", "--check"])
            assert check.exit_code == 1 and "1 in clear" in check.output, check.output
            done = runner.invoke(get_app(), ["reencrypt-secrets"])
            assert done.exit_code == 0, done.output
            assert "sealed again under key dev-1: 1 secrets in 1 rows" in done.output, done.output
            checked = runner.invoke(get_app(), ["reencrypt-secrets", "--check"])
            assert checked.exit_code == 0 and "1 under key dev-1" in checked.output, checked.output
        finally:
            get_settings.cache_clear()
        channels = asyncio.run(stored(url))
    assert is_sealed(channels["email"]["password"]) and channels["email"]["password"]["key"] == "dev-1"
    assert SECRETS["smtp"] not in json.dumps(channels)
