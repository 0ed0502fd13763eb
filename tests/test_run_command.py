"""`make run` as a user sees it: the whole stack comes up, a journey runs, Ctrl-C stops it, and a
second start keeps the data. Runs `python cli.py run` on free ports with its own data directory."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.client import Client

from tests.servers import free_port, http_sink

# Starts its own Temporal server and processes (tests/conftest.py cannot see it): not in `make quick`.
pytestmark = pytest.mark.temporal
ROOT = Path(__file__).resolve().parent.parent
SMTP_PASSWORD = "run-smtp-pa55word"


@contextmanager
def flowline_run(env: dict[str, str], api: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "cli.py", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            try:
                if httpx.get(f"{api}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the stack did not become ready in 90 s"
            time.sleep(0.5)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def test_run_brings_up_the_stack_runs_a_journey_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    api_port, temporal_port, ui_port = free_port(), free_port(), free_port()
    env = dict(os.environ)
    env.update(
        FLOWLINE_DATA_DIR=str(tmp_path),
        FLOWLINE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'flowline.db'}",
        FLOWLINE_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        FLOWLINE_TEMPORAL_UI_PORT=str(ui_port),
        FLOWLINE_API_PORT=str(api_port),
        FLOWLINE_TASK_QUEUE="run-command-test",
    )
    api = f"http://127.0.0.1:{api_port}"
    flow = {
        "id": "hello",
        "name": "Hello",
        "trigger": {"type": "event", "event": "signed_up"},
        "steps": [
            {"id": "wait", "type": "pause", "for": "1s"},
            {
                "id": "hi",
                "type": "send",
                "channel": "in_app",
                "content": {"body": "Hi {{ profile.first_name }}"},
            },
            {"id": "hook", "type": "webhook", "url": "", "data": {}},
        ],
    }
    with http_sink() as sink, flowline_run(env, api) as process:
        key = (tmp_path / "dev-api-key").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        flow["steps"][2]["url"] = f"{sink.url}/hook"  # type: ignore[index]
        with httpx.Client(base_url=api, headers=headers, timeout=10) as client:
            assert client.put("/v1/flows/hello", json=flow).status_code == 200
            assert client.post("/v1/flows/hello/publish").status_code == 200
            client.put("/v1/profiles/ada", json={"attributes": {"first_name": "Ada"}})
            [journey] = client.post(
                "/v1/events", json={"id": "e1", "profile_id": "ada", "name": "signed_up"}
            ).json()["journeys"]
            deadline = time.monotonic() + 30
            while client.get(f"/v1/journeys/{journey}").json()["status"] != "completed":
                assert time.monotonic() < deadline, "the journey did not complete"
                time.sleep(0.3)
            assert [m["body"] for m in client.get("/v1/profiles/ada/inbox").json()["messages"]] == ["Hi Ada"]
            # Channel credentials are sealed under the key `flowline run` made (docs/secrets.md).
            smtp = {
                "provider": "smtp",
                "host": "127.0.0.1",
                "password": SMTP_PASSWORD,
                "from_address": "a@b.c",
            }
            assert client.put("/v1/workspace/channels", json={"email": smtp}).status_code == 200
        assert len(sink.on("/hook")) == 1
        ui = httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=5)
        assert ui.status_code == 200, "the Temporal UI answers"
        # The journey's input is encrypted in Temporal, and the UI's codec endpoint decrypts it.
        started = asyncio.run(_journey_input(env["FLOWLINE_TEMPORAL_ADDRESS"], journey))
        assert base64.b64decode(started["metadata"]["encoding"]) == b"binary/encrypted"
        origin = f"http://127.0.0.1:{ui_port}"
        decoded = httpx.post(f"{api}/codec/decode", json={"payloads": [started]}, headers={"Origin": origin})
        assert decoded.headers["access-control-allow-origin"] == origin
        [plain] = decoded.json()["payloads"]
        assert json.loads(base64.b64decode(plain["data"]))["profile_id"] == "ada"
    payload_key = (tmp_path / "payload-key").read_text()
    assert (tmp_path / "payload-key").stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(tmp_path / "flowline.db") as db:
        [(stored,)] = db.execute("SELECT channels FROM workspaces WHERE channels IS NOT NULL").fetchall()
    assert SMTP_PASSWORD not in stored
    assert json.loads(stored)["email"]["password"]["key"] == payload_key.partition(":")[0]
    assert process.returncode == 0
    assert not _listening(api_port) and not _listening(temporal_port), "Ctrl-C stopped every process"

    with flowline_run(env, api):
        assert (tmp_path / "dev-api-key").read_text().strip() == key, "the same key works after a restart"
        assert (tmp_path / "payload-key").read_text() == payload_key, "and the same payload key"
        with httpx.Client(base_url=api, headers=headers, timeout=10) as client:
            assert client.get(f"/v1/journeys/{journey}").json()["status"] == "completed"
            assert client.get("/v1/flows/hello").json()["current_version"] == 1
            assert client.get("/v1/workspace/channels").json()["email"]["password"] == "***"
    # And the command finds it sealed under the newest key, with no setting either.
    check = subprocess.run(
        [sys.executable, "cli.py", "reencrypt-secrets", "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0 and "1 under key dev-" in check.stdout, check.stdout + check.stderr


async def _journey_input(address: str, journey_id: str) -> dict[str, Any]:
    """The journey's first payload as Temporal stores it (proto JSON, as the UI gets it)."""
    client = await Client.connect(address)
    history = await client.get_workflow_handle(journey_id).fetch_history()
    [payload] = history.events[0].workflow_execution_started_event_attributes.input.payloads
    found: dict[str, Any] = MessageToDict(payload)
    return found


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
