"""The API commands of `flowline` (apply, pull, flows, status, publish, drain, stop, validate
--remote) over real HTTP: the real app served by uvicorn on 127.0.0.1, on SQLite and PostgreSQL,
on the time-skipping server; and the one line an unreachable server or a refused call gives."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
import yaml
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from api.app import create_app
from commands import get_app
from flowline.settings import Settings
from flowline.store.database import Store
from tests.conftest import Tenant
from tests.servers import free_port

CART = textwrap.dedent(
    """\
    # yaml-language-server: $schema=../docs/flow.schema.json
    name: Cart abandonment
    trigger: {type: event, event: cart_updated}
    steps:
      - id: wait_checkout
        type: wait_for_event
        conditions: [{event: checkout_completed}]
        timeout: 1h
        next: {happened: done, timeout: remind}
      - id: remind
        type: send
        channel: push
        content: {title: "Still thinking?", body: "Your cart is waiting"}
      - id: done
        type: exit
    """
)


@dataclass(frozen=True)
class Live:
    url: str
    key: str

    def run(self, *args: str) -> tuple[int, str, str]:
        """The command in a thread (the server runs on this event loop)."""
        return run_cli("--url", self.url, "--key", self.key, *args)


def run_cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(get_app(), list(args))
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


async def cli(live: Live, *args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(live.run, *args)


@pytest_asyncio.fixture
async def live(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> AsyncIterator[Live]:
    """The real app, served over HTTP by uvicorn on a free port of 127.0.0.1 in this event loop."""
    settings = Settings(database_url=str(store.url), data_dir=tmp_path, sweep_seconds=0)
    app = create_app(settings, store=store, temporal=temporal.client)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "uvicorn did not start"
        await asyncio.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{server.config.port}", tenant.key)
    finally:
        server.should_exit = True
        await serving


async def test_apply_plans_then_applies_and_a_second_run_changes_nothing(live: Live, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "cart-abandonment.yaml").write_text(CART)
    (flows / "cart-abandonment.test.yaml").write_text("profile: {id: ada}\n")  # a scenario: not applied

    code, out, _ = await cli(live, "apply", "--dry-run", str(flows))
    assert code == 0, out
    assert "+ created   cart-abandonment" in out and "Plan: 1 to create, 0 to change, 0 unchanged." in out
    code, out, _ = await cli(live, "flows")
    assert "cart-abandonment" not in out  # a dry run changes nothing

    code, out, _ = await cli(live, "apply", str(flows))
    assert code == 0, out
    assert "created cart-abandonment" in out
    code, out, _ = await cli(live, "apply", str(flows))
    assert code == 0 and "= unchanged cart-abandonment" in out and "Nothing to change." in out

    # Formatting, comments, key order and JSON instead of YAML are no change.
    document = yaml.safe_load(CART)
    as_json = tmp_path / "cart-abandonment.json"
    as_json.write_text(json.dumps(dict(reversed(list(document.items()))), indent=4))
    code, out, _ = await cli(live, "apply", str(as_json))
    assert code == 0 and "Nothing to change." in out

    code, out, _ = await cli(live, "flows")
    assert code == 0
    row = next(line for line in out.splitlines() if "cart-abandonment" in line)
    assert "draft" in row and "Cart abandonment" in row


async def test_a_changed_flow_shows_its_diff_and_publishes(live: Live, tmp_path: Path) -> None:
    path = tmp_path / "cart-abandonment.yaml"
    path.write_text(CART)
    code, out, _ = await cli(live, "apply", "--publish", str(path))
    assert code == 0, out
    assert "Plan: 1 to create, 0 to change, 0 unchanged, 1 to publish." in out
    assert "published cart-abandonment version 1" in out
    code, out, _ = await cli(live, "apply", "--publish", str(path))
    assert code == 0 and "Nothing to change." in out, out

    path.write_text(
        CART.replace("timeout: 1h", "timeout: 2h").replace("Still thinking?", "Forgot something?")
    )
    code, out, _ = await cli(live, "apply", "--dry-run", str(path))
    assert code == 0, out
    assert "~ changed   cart-abandonment" in out
    assert "--- cart-abandonment (server draft; current version 1)" in out and f"+++ {path}" in out
    assert "-  timeout: 1h" in out and "+  timeout: 2h" in out
    assert "-    title: Still thinking?" in out and "+    title: Forgot something?" in out
    assert "name: Cart abandonment" not in out.split("@@", 1)[1].split("\n", 1)[1].replace(" name:", "")

    code, out, _ = await cli(live, "apply", "--publish", str(path))
    assert code == 0 and "changed cart-abandonment" in out and "version 2" in out, out
    code, out, _ = await cli(live, "status", "cart-abandonment")
    assert code == 0, out
    assert "status running  version 2  in flight 0" in out
    assert "version 2: entered 0" in out and "version 1: entered 0" in out
    for step in ("wait_checkout", "remind", "done"):
        assert step in out

    # pull writes what apply would see as unchanged.
    pulled = tmp_path / "pulled"
    code, out, _ = await cli(live, "pull", "--dir", str(pulled))
    assert code == 0 and (pulled / "cart-abandonment.yaml").exists(), out
    assert yaml.safe_load((pulled / "cart-abandonment.yaml").read_text())["steps"][0]["timeout"] == "2h"
    code, out, _ = await cli(live, "apply", str(pulled))
    assert code == 0 and "Nothing to change." in out
    code, _, err = await cli(live, "pull", "nope", "--dir", str(pulled))
    assert code == 1 and err.strip() == "error: GET /v1/flows/nope: 404 no flow 'nope'"


async def test_the_lifecycle_commands(live: Live, tmp_path: Path) -> None:
    path = tmp_path / "cart-abandonment.yaml"
    path.write_text(CART)
    assert (await cli(live, "apply", str(path)))[0] == 0
    assert (await cli(live, "publish", "cart-abandonment"))[1].strip() == "cart-abandonment running version 1"
    assert (await cli(live, "drain", "cart-abandonment"))[1].strip() == "cart-abandonment draining"
    code, _, err = await cli(live, "drain", "cart-abandonment")
    assert code == 1 and err.startswith("error: POST /v1/flows/cart-abandonment/drain: 409 ")
    assert len(err.strip().splitlines()) == 1
    code, out, _ = await cli(live, "stop", "cart-abandonment")
    assert code == 0 and out.strip() == "cart-abandonment stopped (0 journeys stopped)"
    code, out, _ = await cli(live, "flows")
    assert "stopped" in next(line for line in out.splitlines() if "cart-abandonment" in line)
    code, out, _ = await cli(live, "publish", "cart-abandonment")
    assert code == 0 and out.strip() == "cart-abandonment running version 2"


async def test_apply_refuses_invalid_files_and_applies_nothing(live: Live, tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(CART)
    (tmp_path / "bad.yaml").write_text(CART.replace("timeout: 1h", "timeout: soon"))
    code, out, err = await cli(live, "apply", str(tmp_path))
    assert code == 1
    assert out.startswith(f"{tmp_path / 'bad.yaml'}:8:14: $.steps[0].timeout: ")
    assert "nothing applied" in err
    assert "good" not in (await cli(live, "flows"))[1]
    # Two files of one flow id.
    (tmp_path / "bad.yaml").write_text("id: good\n" + CART)
    code, _, err = await cli(live, "apply", str(tmp_path))
    assert code == 1 and "are both the flow 'good'" in err


async def test_apply_saves_nothing_the_server_would_refuse(live: Live, tmp_path: Path) -> None:
    """A custom step naming no element is valid offline; the server refuses it on saving, so
    apply checks every change with the server before it saves any."""
    (tmp_path / "a-good.yaml").write_text(CART)
    custom = "  - id: remind\n    type: custom\n    element: nobody.here\n    params: {}\n"
    text = CART.replace(CART[CART.index("  - id: remind") : CART.index("  - id: done")], custom)
    (tmp_path / "b-custom.yaml").write_text(text)
    assert (await cli(live, "validate", str(tmp_path)))[0] == 0
    code, out, err = await cli(live, "apply", str(tmp_path))
    assert code == 1, out
    assert f"{tmp_path / 'b-custom.yaml'}:12:14: $.steps[1].element: " in out
    assert "nothing applied: the server refuses" in err
    assert "a-good" not in (await cli(live, "flows"))[1]


async def test_validate_remote_checks_what_the_flow_names(live: Live, tmp_path: Path) -> None:
    path = tmp_path / "vip.yaml"
    path.write_text(
        CART.replace(
            "trigger: {type: event, event: cart_updated}", "trigger:\n  type: segment_entry\n  segment: vips"
        )
    )
    code, _, _ = await cli(live, "validate", str(path))
    assert code == 0  # offline, a segment's id is all it can check
    code, out, _ = await cli(live, "validate", "--remote", str(path))
    assert code == 1
    assert out.startswith(f"{path}:5:12: $.trigger.segment: ")
    async with httpx.AsyncClient(base_url=live.url, headers={"Authorization": f"Bearer {live.key}"}) as http:
        answer = await http.put("/v1/segments/vips", json={"name": "VIPs", "rule": {"tag": "vip"}})
        assert answer.status_code == 200, answer.text
    code, _, err = await cli(live, "validate", "--remote", str(path))
    assert code == 0, err


async def test_validate_with_references_over_the_api(api: httpx.AsyncClient) -> None:
    document = yaml.safe_load(CART.replace("event: cart_updated}", "event: cart_updated}\nsettings: {}"))
    document["trigger"] = {"type": "segment_entry", "segment": "nobody"}
    document["steps"][1] = {
        "id": "remind",
        "type": "export",
        "destination": "crm",
        "as": "profile",
        "fields": {"Plan": "{{ profile.plan }}"},
    }
    plain = await api.post("/v1/flows/f/validate", json=document)
    assert plain.status_code == 200, plain.text
    checked = await api.post("/v1/flows/f/validate", params={"references": "true"}, json=document)
    assert checked.status_code == 422
    assert [f["path"] for f in checked.json()["faults"]] == ["$.trigger.segment", "$.steps[1].destination"]
    # Publishing refuses the same, with the same paths (one check: services/flow_lifecycle.py).
    assert (await api.put("/v1/flows/f", json=document)).status_code == 200
    refused = await api.post("/v1/flows/f/publish")
    assert refused.status_code == 422
    assert refused.json()["faults"] == checked.json()["faults"]
    parameters = (await api.get("/openapi.json")).json()["paths"]["/v1/flows/{flow_id}/validate"]["post"]
    assert "references" in {p["name"] for p in parameters["parameters"]}


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run_cli("--url", url, "--key", "k", "flows")
    assert code == 1 and out == ""
    assert err.startswith(f"error: cannot reach Flowline at {url}: ")
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "cart.yaml").write_text(CART)
    code, _, err = run_cli("--url", url, "--key", "k", "apply", str(tmp_path / "cart.yaml"))
    assert code == 1 and err.startswith(f"error: cannot reach Flowline at {url}: ")


def test_the_url_and_key_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FLOWLINE_URL", url)
    monkeypatch.setenv("FLOWLINE_KEY", "k")
    code, _, err = run_cli("status", "x")
    assert code == 1 and err.startswith(f"error: cannot reach Flowline at {url}")
    # No key anywhere: said before any call.
    monkeypatch.delenv("FLOWLINE_KEY")
    monkeypatch.setenv("FLOWLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr("commands.client.get_settings", Settings)  # read afresh, from this environment
    code, _, err = run_cli("flows")
    assert code == 1 and err.startswith("error: no API key: pass --key, set FLOWLINE_KEY")
    (tmp_path / "dev-api-key").write_text("from-the-file\n")
    code, _, err = run_cli("flows")
    assert code == 1 and "cannot reach Flowline" in err


async def test_a_wrong_key_is_one_line(live: Live) -> None:
    code, _, err = await asyncio.to_thread(run_cli, "--url", live.url, "--key", "wrong", "flows")
    assert code == 1 and err.startswith("error: GET /v1/flows: 401 ") and "--key" in err
