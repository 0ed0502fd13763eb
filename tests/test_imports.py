"""`flowline import profiles|events FILE` against a real API process (uvicorn, on SQLite and on
PostgreSQL, Temporal's time-skipping server behind it): mapping and typing, matching by email,
the blank policy, dry runs, the rejected file, and an import killed mid-way and resumed without
writing anything twice."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from commands.importing import ImportFailed, ImportOptions, ImportReport, run_import
from commands.imports import register
from flowline.store.database import Store
from flowline.store.tables import events, profiles
from tests.conftest import Tenant, new_tenant
from tests.processes import ROOT
from tests.servers import closed_port_url, free_port
from tests.test_two_apis import api_process, ready

# Starts an API process of its own.
pytestmark = pytest.mark.temporal


@pytest.fixture(scope="module")
def api_url(
    store: Store, temporal: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real API process on the test's store, its Temporal the module's time-skipping server."""
    data = tmp_path_factory.mktemp("api")
    env = dict(os.environ)
    env.update(
        FLOWLINE_DATABASE_URL=store.url.render_as_string(hide_password=False),
        FLOWLINE_TEMPORAL_ADDRESS=temporal.client.service_client.config.target_host,
        FLOWLINE_TASK_QUEUE="tq-imports",
        FLOWLINE_DATA_DIR=str(data),
        FLOWLINE_SWEEP_SECONDS="0",
    )
    with api_process(env, free_port(), data / "api.log") as url:
        asyncio.run(ready(url))
        yield url


@pytest_asyncio.fixture
async def tenant(store: Store) -> Tenant:
    return await new_tenant(store)


def write_csv(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


async def imported(api_url: str, tenant: Tenant, file: Path, **options: Any) -> ImportReport:
    kind = options.pop("kind", "profiles")
    return await run_import(ImportOptions(kind=kind, file=file, url=api_url, key=tenant.key, **options))


async def stored(store: Store, tenant: Tenant) -> dict[str, dict[str, Any]]:
    async with store.connect() as conn:
        query = select(profiles.c.id, profiles.c.attributes).where(profiles.c.workspace_id == tenant.id)
        return {r.id: r.attributes for r in await conn.execute(query)}


async def declare(store: Store, tenant: Tenant, **types: str) -> None:
    from flowline.store.attribute_types import declare as declare_type

    async with store.begin() as conn:
        for name, kind in types.items():
            await declare_type(store, conn, tenant.id, name, kind)


def rejected_rows(file: Path) -> list[dict[str, str]]:
    with file.with_name(file.name + ".rejected.csv").open() as handle:
        return list(csv.DictReader(handle))


async def test_mapping_typing_and_the_rejected_file(
    api_url: str, store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    await declare(store, tenant, age="number", vip="boolean", since="date", plan="text")
    file = write_csv(
        tmp_path / "people.csv",
        [
            ["id", "Mail", "age", "vip", "since", "plan", "notes"],
            ["ada", "ada@example.com", "36", "yes", "2026-01-02", "pro", ""],
            ["bob", "bob@example.com", "old", "no", "", "free", ""],  # row 3: age not a number
            ["cy", "cy at example", "20", "", "", "", ""],  # row 4: a bad email (the server says)
            ["dee", "", "", "", "", "", "call her"],  # row 5: an unknown column with a value
            ["", "eve@example.com", "1", "", "", "", ""],  # row 6: no id
        ],
    )
    report = await imported(api_url, tenant, file, mapping={"Mail": "email"})
    assert (report.read, report.created, report.rejected) == (5, 1, 4)
    assert await stored(store, tenant) == {
        "ada": {"email": "ada@example.com", "age": 36, "vip": True, "since": "2026-01-02", "plan": "pro"}
    }
    why = {r["row"]: (r["column"], r["reason"]) for r in rejected_rows(file)}
    assert set(why) == {"3", "4", "5", "6"}
    assert why["3"][0] == "age" and "not a number" in why["3"][1]
    assert why["4"][0] == "Mail" and "not an email address" in why["4"][1]
    assert why["5"][0] == "notes" and "unknown column" in why["5"][1]
    assert why["6"][0] == "id"
    # The rejected file keeps each row's cells, so it can be fixed and imported again.
    assert rejected_rows(file)[0]["Mail"] == "bob@example.com"
    assert not file.with_name("people.csv.checkpoint").exists()


async def test_match_email_blank_policy_and_jsonl(
    api_url: str, store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    await declare(store, tenant, age="number")
    first = write_csv(
        tmp_path / "a.csv", [["id", "email", "city", "age"], ["ada", "ada@example.com", "Paris", "36"]]
    )
    # city is neither declared nor standard: mapped, it is taken as it is.
    city = {"city": "city"}
    assert (await imported(api_url, tenant, first, mapping=city)).created == 1
    again = write_csv(
        tmp_path / "b.csv",
        [["email", "city", "age"], ["ADA@example.com", "", "37"], ["new@example.com", "Rome", ""]],
    )
    report = await imported(api_url, tenant, again, match="email", mapping=city)
    assert (report.updated, report.created) == (1, 1)
    people = await stored(store, tenant)
    # Found whatever the case; the blank city kept.
    assert people["ada"] == {"email": "ADA@example.com", "city": "Paris", "age": 37}
    cleared = await imported(api_url, tenant, again, match="email", blank="clear", mapping=city)
    assert (cleared.updated, cleared.unchanged) == (1, 1)
    assert (await stored(store, tenant))["ada"] == {"email": "ADA@example.com", "age": 37}
    lines = tmp_path / "c.jsonl"
    lines.write_text(json.dumps({"uid": "bob", "age": 5, "tags_note": "x"}) + "\n" + "not json\n")
    report = await imported(api_url, tenant, lines, mapping={"tags_note": "note", "uid": "id"})
    assert (report.created, report.rejected) == (1, 1)
    assert (await stored(store, tenant))["bob"] == {"age": 5, "note": "x"}
    assert rejected_rows(lines)[0]["row"] == "2"


async def test_dry_run_checks_every_row_and_writes_nothing(
    api_url: str, store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    file = write_csv(tmp_path / "p.csv", [["id", "email"], ["ada", "ada@example.com"], ["bob", "nope"]])
    report = await imported(api_url, tenant, file, dry_run=True)
    assert (report.read, report.created, report.rejected, report.dry_run) == (2, 1, 1, True)
    assert await stored(store, tenant) == {}
    assert not file.with_name("p.csv.checkpoint").exists()


async def test_events_import(api_url: str, store: Store, tenant: Tenant, tmp_path: Path) -> None:
    file = write_csv(
        tmp_path / "events.csv",
        [
            ["user", "name", "timestamp", "total"],
            ["ada", "order_completed", "2026-01-02T10:00:00Z", "12.5"],
            ["bob", "order_completed", "", "3"],
            ["cy", "", "", "1"],  # no name
        ],
    )
    report = await imported(api_url, tenant, file, kind="events", mapping={"user": "profile_id"})
    assert (report.read, report.created, report.rejected) == (3, 2, 1)
    assert rejected_rows(file)[0]["column"] == "name"
    # Ids derive from the file and the row: the same file again stores nothing twice.
    again = await imported(api_url, tenant, file, kind="events", mapping={"user": "profile_id"})
    assert (again.created, again.unchanged) == (0, 2)
    async with store.connect() as conn:
        query = select(events.c.properties).where(
            events.c.workspace_id == tenant.id, events.c.name == "order_completed"
        )
        assert sorted(r.properties["total"] for r in await conn.execute(query)) == ["12.5", "3"]


async def test_the_command_line_and_its_errors(
    api_url: str, store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    import typer

    app = typer.Typer()
    register(app)
    file = write_csv(tmp_path / "p.csv", [["id", "plan"], ["ada", "pro"]])
    runner = CliRunner()
    args = ["import", "profiles", str(file), "--map", "plan=plan", "--no-triggers", "--url", api_url]
    result = await asyncio.to_thread(runner.invoke, app, [*args, "--key", tenant.key])
    assert result.exit_code == 0, result.output
    assert "created" in result.output and "rejected" in result.output
    assert await stored(store, tenant) == {"ada": {"plan": "pro"}}
    # No profile_changed event with --no-triggers.
    async with store.connect() as conn:
        assert not await conn.scalar(select(func.count()).where(events.c.workspace_id == tenant.id))
    unreachable = closed_port_url()
    result = await asyncio.to_thread(
        runner.invoke, app, ["import", "profiles", str(file), "--url", unreachable, "--key", "k"]
    )
    assert result.exit_code == 2
    assert f"cannot reach Flowline at {unreachable}" in result.output
    assert "Traceback" not in result.output
    refused = await asyncio.to_thread(
        runner.invoke, app, ["import", "profiles", str(file), "--url", api_url, "--key", "wrong"]
    )
    assert refused.exit_code == 2 and "refused the API key" in refused.output
    with pytest.raises(ImportFailed, match="batch-size"):
        await imported(api_url, tenant, file, batch_size=1001)


async def test_an_import_killed_mid_way_resumes_and_writes_nothing_twice(
    api_url: str, store: Store, tenant: Tenant, tmp_path: Path
) -> None:
    rows = 20_000
    await declare(store, tenant, n="number")
    file = write_csv(
        tmp_path / "big.csv",
        [["id", "email", "n"], *([f"p{i}", f"p{i}@example.com", str(i)] for i in range(rows))],
    )
    checkpoint = file.with_name("big.csv.checkpoint")
    command = [sys.executable, "-c", "from commands.imports import main; main()", "import", "profiles"]
    command += [str(file), "--batch-size", "100", "--quiet"]
    command += ["--url", api_url, "--key", tenant.key]
    process = subprocess.Popen(  # noqa: ASYNC220 (polled below without blocking)
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while not (checkpoint.exists() and json.loads(checkpoint.read_text())["row"] >= 2_000):
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGKILL)  # no chance to tidy up
    finally:
        process.wait()
    written = len(await stored(store, tenant))
    assert 0 < written < rows
    acknowledged = json.loads(checkpoint.read_text())["row"]

    resumed = await asyncio.to_thread(
        subprocess.run, command, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed after row {acknowledged}" in resumed.stdout
    people = await stored(store, tenant)
    assert len(people) == rows and people["p19999"] == {"email": "p19999@example.com", "n": 19999}
    assert not file.with_name("big.csv.rejected.csv").exists()
    # Rows of a batch stored but not acknowledged before the kill were sent again: unchanged, and
    # no second profile_changed event (one per person, as if the import had never stopped).
    async with store.connect() as conn:
        query = select(func.count()).where(
            events.c.workspace_id == tenant.id, events.c.name == "profile_changed"
        )
        assert await conn.scalar(query) == rows
    assert not checkpoint.exists()


def test_the_connection_comes_from_the_flowline_commands_global_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    import click
    import typer

    from commands.imports import connection

    monkeypatch.delenv("FLOWLINE_URL", raising=False)
    monkeypatch.delenv("FLOWLINE_KEY", raising=False)
    # As commands/client.py's Connection holds them: the key read lazily.
    given = SimpleNamespace(url="http://api.example:9000", key=None, default_key=lambda: "from-file")
    ctx = typer.Context(click.Command("import"), obj=given)
    assert connection(ctx, None, None) == ("http://api.example:9000", "from-file")
    assert connection(ctx, "http://other", "k2") == ("http://other", "k2")
    monkeypatch.setenv("FLOWLINE_KEY", "from-env")
    assert connection(typer.Context(click.Command("import")), "http://x", None) == ("http://x", "from-env")
