"""Personal data in Temporal histories is encrypted (docs/architecture.md#payload-codec): the
AES-256-GCM payload codec, a journey whose history holds no trace of the person, and its replay."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from api.app import create_app
from flowline.journey import JourneyState
from flowline.settings import Settings
from flowline.store.database import Store
from launch.payload_codec import (
    ENCODING,
    EncryptionCodec,
    PayloadKeyError,
    data_converter,
    parse_keys,
)
from tests.conftest import Tenant
from tests.payload_keys import NEW_KEY, OLD_KEY
from tests.test_journeys import publish
from worker import WORKFLOWS, running_worker

KEYS = f"k1:{OLD_KEY}"
EMAIL = "ada.lovelace@example.org"
PLAN = "platinum-7f3e"  # an event property value, findable in a history only if stored plainly


def _payload(value: Any) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


async def test_round_trip_encrypts_and_restores_the_payload() -> None:
    codec = EncryptionCodec(parse_keys(KEYS))
    original = [_payload({"email": EMAIL}), _payload([1, 2])]
    encoded = await codec.encode(original)
    assert [p.metadata["encoding"] for p in encoded] == [ENCODING, ENCODING]
    assert [p.metadata["encryption-key-id"] for p in encoded] == [b"k1", b"k1"]
    assert EMAIL.encode() not in b"".join(p.SerializeToString() for p in encoded)
    assert encoded[0].data != (await codec.encode(original[:1]))[0].data, "a fresh nonce each time"
    assert await codec.decode(encoded) == original


async def test_plain_payloads_pass_through_decode() -> None:
    codec = EncryptionCodec(parse_keys(KEYS))
    plain = [_payload({"recorded": "before the codec"})]
    assert await codec.decode(plain) == plain


async def test_a_wrong_or_missing_key_fails_with_a_clear_error() -> None:
    encoded = await EncryptionCodec(parse_keys(KEYS)).encode([_payload("secret")])
    wrong = EncryptionCodec(parse_keys(f"k1:{NEW_KEY}"))  # same id, other key
    with pytest.raises(PayloadKeyError, match="does not decrypt"):
        await wrong.decode(encoded)
    missing = EncryptionCodec(parse_keys(f"k2:{NEW_KEY}"))
    with pytest.raises(PayloadKeyError, match=r"key 'k1'.*FLOWLINE_PAYLOAD_KEYS does not hold"):
        await missing.decode(encoded)
    tampered = Payload()
    tampered.CopyFrom(encoded[0])
    tampered.metadata["encryption-key-id"] = b"k2"  # relabelled: the id is authenticated
    both = EncryptionCodec(parse_keys(f"k1:{OLD_KEY},k2:{NEW_KEY}"))
    with pytest.raises(PayloadKeyError, match="does not decrypt"):
        await both.decode([tampered])


async def test_rotation_new_key_first_still_decodes_the_old_key() -> None:
    old = await EncryptionCodec(parse_keys(KEYS)).encode([_payload("before rotation")])
    rotated = EncryptionCodec(parse_keys(f"k2:{NEW_KEY},{KEYS}"))
    assert await rotated.decode(old) == [_payload("before rotation")]
    [new] = await rotated.encode([_payload("after rotation")])
    assert new.metadata["encryption-key-id"] == b"k2"
    assert await rotated.decode([new]) == [_payload("after rotation")]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("k1", "expected '<key id>:<base64 key>'"),
        ("k1:not base64!", "not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "5 bytes, AES-256 needs 32"),
        (f"k1:{OLD_KEY},k1:{NEW_KEY}", "given twice"),
    ],
)
def test_bad_key_settings_are_refused(setting: str, message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message):
        parse_keys(setting)


async def test_failure_messages_are_encrypted_and_restored() -> None:
    converter = data_converter(KEYS)
    failure = Failure()
    await converter.encode_failure(ApplicationError(f"mail to {EMAIL} refused"), failure)
    assert EMAIL.encode() not in failure.SerializeToString()
    assert failure.message == "Encoded failure"
    decoded = await converter.decode_failure(failure)
    assert str(decoded) == f"mail to {EMAIL} refused"


def test_no_keys_means_no_codec() -> None:
    assert data_converter("").payload_codec is None
    assert isinstance(data_converter(KEYS).payload_codec, EncryptionCodec)


def _flow() -> dict[str, Any]:
    """Profile data and an event property go into variables, a pause and a message."""
    return {
        "id": "private",
        "name": "Private",
        "trigger": {"type": "event", "event": "signed_up"},
        "steps": [
            {"id": "keep", "type": "update_variable", "set": {"mail": "profile.email", "plan": "event.plan"}},
            {"id": "wait", "type": "pause", "for": "1d"},
            {
                "id": "hi",
                "type": "send",
                "channel": "in_app",
                "content": {"body": "{{ vars.mail }} on {{ event.plan }}"},
            },
            {"id": "bye", "type": "exit"},
        ],
    }


@contextlib.asynccontextmanager
async def _stack(
    temporal: WorkflowEnvironment, store: Store, tenant: Tenant, task_queue: str, tmp_path: Path, keys: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Client]]:
    """The app and a worker on ``temporal`` whose client encrypts with ``keys`` ("" = plain)."""
    client = await Client.connect(
        temporal.client.service_client.config.target_host,
        namespace=temporal.client.namespace,
        data_converter=data_converter(keys),
    )
    settings = Settings(
        database_url=str(store.url),
        task_queue=task_queue,
        data_dir=tmp_path,
        sweep_seconds=0,
        payload_keys=keys,  # type: ignore[arg-type]  # pydantic turns it into a SecretStr
        codec_endpoint=True,
    )
    app = create_app(settings, store=store, temporal=client)
    async with (
        app.router.lifespan_context(app),
        running_worker(client, store, task_queue, allow_private_outbound=True),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://flowline",
            headers={"Authorization": f"Bearer {tenant.key}"},
        ) as api,
    ):
        yield api, client


async def _journey_history(
    temporal: WorkflowEnvironment, store: Store, tenant: Tenant, task_queue: str, tmp_path: Path, keys: str
) -> WorkflowHistory:
    """A journey run to its end; its history as fetched with the stack's client."""
    async with _stack(temporal, store, tenant, task_queue, tmp_path, keys) as (api, client):
        await publish(api, _flow())
        await api.put("/v1/profiles/ada", json={"attributes": {"email": EMAIL}})
        response = await api.post(
            "/v1/events",
            json={
                "id": f"e-{keys[:2]}",
                "profile_id": "ada",
                "name": "signed_up",
                "properties": {"plan": PLAN},
            },
        )
        [journey_id] = response.json()["journeys"]
        handle = client.get_workflow_handle(journey_id, result_type=JourneyState)
        async with temporal.time_skipping_unlocked():  # type: ignore[attr-defined]
            await handle.result()
        inbox = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
        assert [m["body"] for m in inbox] == [f"{EMAIL} on {PLAN}"]
        detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
        assert detail["status"] == "completed"
        return await handle.fetch_history()


async def test_journey_history_holds_no_personal_data_and_replays(
    temporal: WorkflowEnvironment, store: Store, tenant: Tenant, task_queue: str, tmp_path: Path
) -> None:
    history = await _journey_history(temporal, store, tenant, task_queue, tmp_path, KEYS)
    text = _readable(history)
    assert EMAIL not in text and PLAN not in text
    assert ENCODING.decode() in text, "payloads are marked encrypted"
    replayed = await Replayer(workflows=WORKFLOWS, data_converter=data_converter(KEYS)).replay_workflow(
        history, raise_on_replay_failure=True
    )
    assert replayed.replay_failure is None
    # Without the key the history cannot be read (the replayer reports the codec's error, its
    # message encrypted like every failure's; the worker's log has it in the clear).
    with pytest.raises(RuntimeError, match='r#type: "PayloadKeyError"'):
        await Replayer(workflows=WORKFLOWS, data_converter=data_converter(f"k1:{NEW_KEY}")).replay_workflow(
            history, raise_on_replay_failure=True
        )


async def test_without_keys_the_same_journey_stores_the_data_plainly(
    temporal: WorkflowEnvironment, store: Store, tenant: Tenant, task_queue: str, tmp_path: Path
) -> None:
    """The control for the test above: its email and plan do reach the history unencrypted."""
    history = await _journey_history(temporal, store, tenant, task_queue, tmp_path, "")
    text = _readable(history)
    assert EMAIL in text and PLAN in text


def _readable(history: WorkflowHistory) -> str:
    """A history's JSON with every base64 payload field (data, metadata values) decoded next to it,
    as anyone with the history (not the key) could read it."""
    text = history.to_json()
    return text + "".join(
        base64.b64decode(s).decode(errors="replace") for s in _base64_fields(json.loads(text))
    )


def _base64_fields(node: Any) -> list[str]:
    """Every payload's data and metadata values in a history's JSON."""
    if isinstance(node, dict):
        found = []
        if isinstance(node.get("metadata"), dict):
            found = [v for v in node["metadata"].values() if isinstance(v, str)]
            found += [node["data"]] if isinstance(node.get("data"), str) else []
        return found + [s for v in node.values() for s in _base64_fields(v)]
    if isinstance(node, list):
        return [s for v in node for s in _base64_fields(v)]
    return []


UI_ORIGIN = "http://127.0.0.1:8233"  # Settings' default temporal_ui_port


def _codec_api(**settings: Any) -> httpx.AsyncClient:
    """The app's routes only (no lifespan: the open codec endpoint, as `flowline run` serves it on a
    loopback API, needs no database or Temporal; tests/test_api_keys.py checks its key)."""
    app = create_app(Settings(sweep_seconds=0, **settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flowline")


async def test_codec_endpoint_decodes_what_the_codec_encoded_for_the_ui() -> None:
    encoded = await EncryptionCodec(parse_keys(KEYS)).encode([_payload({"email": EMAIL})])
    plain = _payload("not encrypted")
    body = {"payloads": [MessageToDict(p) for p in [*encoded, plain]]}
    async with _codec_api(payload_keys=KEYS, codec_endpoint=True, codec_open=True) as api:
        response = await api.post(
            "/codec/decode", json=body, headers={"Origin": UI_ORIGIN, "X-Namespace": "default"}
        )
        assert response.status_code == 200, response.text
        assert response.headers["access-control-allow-origin"] == UI_ORIGIN
        decoded = response.json()["payloads"]
        assert base64.b64decode(decoded[0]["metadata"]["encoding"]) == b"json/plain"
        assert json.loads(base64.b64decode(decoded[0]["data"])) == {"email": EMAIL}
        assert json.loads(base64.b64decode(decoded[1]["data"])) == "not encrypted"

        for origin in (UI_ORIGIN, "http://localhost:8233"):
            preflight = await api.options(
                "/codec/decode",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type,x-namespace",
                },
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == origin
            assert "POST" in preflight.headers["access-control-allow-methods"]
            assert "X-Namespace" in preflight.headers["access-control-allow-headers"]
        # Another site's page may not have a visitor's browser decrypt through it.
        foreign = await api.options("/codec/decode", headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
        answered = await api.post("/codec/decode", json=body, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in answered.headers

        bad = await api.post("/codec/decode", json={"payloads": "nope"}, headers={"Origin": UI_ORIGIN})
        assert bad.status_code == 400 and bad.headers["access-control-allow-origin"] == UI_ORIGIN
    async with _codec_api(payload_keys=f"k9:{NEW_KEY}", codec_endpoint=True, codec_open=True) as api:
        unknown = await api.post("/codec/decode", json=body, headers={"Origin": UI_ORIGIN})
        assert unknown.status_code == 400 and "does not hold" in unknown.json()["message"]
        assert unknown.headers["access-control-allow-origin"] == UI_ORIGIN, "the UI can show why"


async def test_codec_endpoint_is_absent_unless_enabled() -> None:
    async with _codec_api(payload_keys=KEYS) as api:
        assert (await api.post("/codec/decode", json={"payloads": []})).status_code == 404
        assert (await api.options("/codec/decode", headers={"Origin": UI_ORIGIN})).status_code in (404, 405)


def test_run_makes_the_payload_key_once_and_keeps_it(tmp_path: Path) -> None:
    from commands.stack import payload_keys

    settings = Settings(data_dir=tmp_path)
    made = payload_keys(settings)
    key_file = tmp_path / "payload-key"
    assert key_file.read_text().strip() == made
    assert key_file.stat().st_mode & 0o777 == 0o600, "readable by its owner only"
    assert isinstance(data_converter(made).payload_codec, EncryptionCodec), "a usable key setting"
    assert payload_keys(settings) == made, "a restart reads the same key"
    configured = Settings(data_dir=tmp_path, payload_keys=KEYS)  # type: ignore[arg-type]
    assert payload_keys(configured) == KEYS, "FLOWLINE_PAYLOAD_KEYS wins over the file"
    key_file.write_text("\n")  # emptied: journeys encrypted before could not be read, so refuse
    with pytest.raises(PayloadKeyError, match="holds no key"):
        payload_keys(settings)
