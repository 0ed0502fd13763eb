"""`flowline keys create|list|revoke` against the real API over HTTP (uvicorn on 127.0.0.1, on
SQLite and PostgreSQL), and `flowline create-key` on the database with a name and a scope."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from flowline.settings import get_settings
from flowline.store import api_keys
from flowline.store.database import Store
from tests.test_cli_flows import Live, cli, live, run_cli

__all__ = ["live"]  # the fixture, served by uvicorn


async def test_keys_create_list_and_revoke(live: Live) -> None:
    code, out, err = await cli(live, "keys", "create", "ci deploys", "--scope", "write")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("fl_") and "\n" not in secret, "the secret alone on stdout (scriptable)"
    assert "created key" in err and "'ci deploys'" in err and "scope write" in err
    async with httpx.AsyncClient(base_url=live.url) as http:
        used = await http.get("/v1/workspace", headers={"Authorization": f"Bearer {secret}"})
        assert used.status_code == 200

        code, out, _ = await cli(live, "keys", "list")
        assert code == 0, out
        row = next(line for line in out.splitlines() if "ci deploys" in line)
        key_id = row.split()[0]
        assert "write" in row and secret not in out
        # Created and last used (today, UTC) are shown; not revoked.
        assert row.count(datetime.now(UTC).date().isoformat()) == 2 and row.rstrip().endswith(" -"), row

        code, out, _ = await cli(live, "keys", "revoke", key_id)
        assert code == 0 and f"revoked key {key_id} 'ci deploys'" in out
        refused = await http.get("/v1/workspace", headers={"Authorization": f"Bearer {secret}"})
        assert refused.status_code == 401
    code, out, _ = await cli(live, "keys", "list")
    row = next(line for line in out.splitlines() if "ci deploys" in line)
    assert row.count(datetime.now(UTC).date().isoformat()) == 3, "the revocation's time is shown"


async def test_keys_errors_are_one_line(live: Live) -> None:
    code, _, err = await cli(live, "keys", "create", "x", "--scope", "root")
    assert code == 2 and "root" in err  # Typer refuses the scope before any call
    code, _, err = await cli(live, "keys", "revoke", "0123456789abcdef")
    assert code == 1 and err.strip() == "error: DELETE /v1/keys/0123456789abcdef: 404 no API key " + (
        "'0123456789abcdef' in this workspace"
    )
    code, out, err = await cli(live, "keys", "create", "reader", "--scope", "read")
    reader = Live(live.url, out.strip())
    code, _, err = await cli(reader, "keys", "list")
    assert code == 1
    assert err.strip() == (
        "error: GET /v1/keys: 403 this API key's scope is 'read': managing API keys needs a key "
        "with scope 'admin'"
    )


@pytest.fixture
def settings_of(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FLOWLINE_DATABASE_URL", store.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_create_key_makes_a_named_scoped_key_in_the_database(store: Store, settings_of: None) -> None:
    workspace = "ws-create-key"
    code, out, err = await asyncio.to_thread(
        run_cli, "create-key", "--workspace", workspace, "--name", "ops", "--scope", "read"
    )
    assert code == 0, err
    secret = out.strip()
    async with store.connect() as conn:
        found = await api_keys.active_key(conn, secret)
    assert found is not None
    assert (found.workspace_id, found.name, found.scope) == (workspace, "ops", "read")
    # Without options: an admin key, as before scopes existed.
    code, out, _ = await asyncio.to_thread(run_cli, "create-key", "--workspace", workspace)
    async with store.connect() as conn:
        found = await api_keys.active_key(conn, out.strip())
    assert code == 0 and found is not None and found.scope == "admin"
