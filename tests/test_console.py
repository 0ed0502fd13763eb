"""The console (/console): its files, the /v1 endpoints it reads (GET /v1/flows' activity figures,
GET /v1/flows/{id}/graph), and the pages themselves in real Chromium driven by Playwright, on a
real API (uvicorn on 127.0.0.1) with a real worker on the time-skipping server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.console import FILES
from flowline.settings import Settings
from flowline.store import journeys
from flowline.store.database import Store, utcnow
from flowline.store.tables import profiles as profiles_table
from tests.conftest import Tenant, new_tenant
from tests.servers import free_port
from tests.test_journeys import publish

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()

# A welcome message, a wait for a click (two days at most: the journey shows at the wait), then
# a nudge or a thanks; the nudge goes on to the step listed next (an implicit edge).
WELCOME: dict[str, Any] = {
    "id": "welcome",
    "name": "Welcome",
    "trigger": {"type": "event", "event": "signed_up"},
    "settings": {"goal": {"event": "purchase", "within": "7d"}},
    "steps": [
        {"id": "hello", "type": "send", "channel": "in_app", "content": {"body": "hi"}},
        {
            "id": "wait_click",
            "type": "wait_for_event",
            "conditions": [{"event": "clicked"}],
            "timeout": "2d",
            "next": {"happened": "thanks", "timeout": "nudge"},
        },
        {"id": "nudge", "type": "send", "channel": "in_app", "content": {"body": "still there?"}},
        {"id": "thanks", "type": "exit"},
    ],
}


# ---- the files ------------------------------------------------------------------------------


async def test_console_serves_its_files_and_loads_nothing_from_elsewhere() -> None:
    app = create_app(Settings(sweep_seconds=0, temporal_ui_port=8299))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        moved = await client.get("/console")
        assert moved.status_code in (307, 308) and moved.headers["location"] == "/console/"
        index = await client.get("/console/")
        assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
        assert index.headers["content-security-policy"].startswith("default-src 'self';")
        config = await client.get("/console/config.json")
        assert config.json() == {"temporal_ui_port": 8299, "temporal_namespace": "default"}
        # Every file the page loads: the HTML's src/href and the modules' imports.
        pending = re.findall(r"""(?:src|href)="([^"#]+)\"""", index.text)
        seen: set[str] = set()
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            assert not re.match(r"[a-z]+:|//", name), f"{name} is not on this server"
            served = await client.get(f"/console/{name}")
            assert served.status_code == 200, name
            pending += re.findall(r"""from\s+"\./([^"]+)\"""", served.text)
    assert seen == {
        "style.css",
        "app.js",
        "api.js",
        "dom.js",
        "graph.js",
        "editor.js",
        "yaml.js",
        "flows.js",
        "people.js",
        "workspace.js",
        "shell.js",
    }
    # No file names an address elsewhere (the SVG namespace is a name, never fetched).
    for path in FILES.rglob("*"):
        if path.is_file():
            text = path.read_text().replace("http://www.w3.org/2000/svg", "")
            assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text), path


def test_console_is_not_in_the_openapi_document() -> None:
    paths = create_app(Settings(sweep_seconds=0)).openapi()["paths"]
    assert not any(p.startswith("/console") for p in paths)
    assert "/v1/flows/{flow_id}/graph" in paths


# ---- the /v1 endpoints it reads ---------------------------------------------------------------


async def test_flow_list_counts_recent_entries_and_conversion(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    await publish(api, WELCOME)
    no_goal = {**WELCOME, "id": "plain", "name": "Plain", "settings": {}}
    await publish(api, no_goal)
    assert (
        await api.put("/v1/flows/sketch", json={**WELCOME, "id": "sketch", "name": "Sketch"})
    ).status_code == 200
    workspace = tenant.id
    now = utcnow()
    # Journeys entered 1 hour, 3 days and 10 days ago; the 3-day one reached the goal.
    async with store.begin() as conn:
        for age, flow_id in [(1, "welcome"), (72, "welcome"), (240, "welcome"), (1, "plain")]:
            journey_id = f"{workspace}-{flow_id}-{age}"
            await journeys.claim_entry(
                store,
                conn,
                journey_id=journey_id,
                workspace_id=workspace,
                flow_id=flow_id,
                version=1,
                profile_id=f"p{age}",
                lock=f"entry:{age}",
                trigger_event_id=None,
                started_at=now - timedelta(hours=age),
            )
            if age == 72:
                await journeys.record_conversion(conn, journey_id, now, "evt-purchase")
    listed = {f["id"]: f for f in (await api.get("/v1/flows")).json()["flows"]}
    welcome, plain, sketch = listed["welcome"], listed["plain"], listed["sketch"]
    assert (welcome["entered_last_day"], welcome["entered_last_week"], welcome["entered"]) == (1, 2, 3)
    assert welcome["conversion_rate"] == pytest.approx(1 / 3)
    assert welcome["in_flight"] == 3 and welcome["current_version"] == 1 and welcome["status"] == "running"
    assert welcome["last_published_at"] is not None
    assert (plain["entered_last_day"], plain["conversion_rate"]) == (1, None)  # no goal: no rate
    assert sketch["status"] == "draft" and sketch["last_published_at"] is None
    assert (sketch["entered_last_week"], sketch["conversion_rate"]) == (0, None)


async def test_flow_graph_names_each_branch_and_the_implicit_edges(api: httpx.AsyncClient) -> None:
    flow = {
        "id": "graph",
        "name": "Graph",
        "trigger": {"type": "event", "event": "signed_up"},
        "steps": [
            {
                "id": "ab",
                "type": "split",
                "variants": [{"name": "a", "weight": 1, "next": "plan"}, {"name": "b", "weight": 1}],
                "control": {"weight": 1},
            },
            {
                "id": "plan",
                "type": "branch",
                "branches": [{"name": "pro", "when": {"tag": "pro", "op": "has"}, "next": "done"}],
            },
            {"id": "hello", "type": "send", "channel": "in_app", "content": {"body": "hi"}},
            {"id": "again", "type": "pause", "for": "1d", "next": "ab"},
            {"id": "done", "type": "exit"},
        ],
    }
    # Never published: the draft is drawn.
    assert (await api.put("/v1/flows/graph", json=flow)).status_code == 200
    draft = (await api.get("/v1/flows/graph/graph")).json()
    assert draft["version"] is None and draft["document"]["steps"][0]["id"] == "ab"
    edges = {(e["source"], e["target"]): (e["branches"], e["implicit"]) for e in draft["edges"]}
    assert edges == {
        ("ab", "plan"): (["a", "b"], False),  # b names nothing: the step listed next is plan too
        ("ab", None): (["control"], False),  # a control group without next ends the journey
        ("plan", "done"): (["pro"], False),
        ("plan", "hello"): (["else"], True),
        ("hello", "again"): (["sent", "skipped", "failed"], True),
        ("again", "ab"): (["next"], False),
    }
    # Published: the current version by default, any version by number; others are 404.
    await api.post("/v1/flows/graph/publish")
    assert (await api.get("/v1/flows/graph/graph")).json()["version"] == 1
    assert (await api.get("/v1/flows/graph/graph?version=1")).json()["edges"] == draft["edges"]
    missing = await api.get("/v1/flows/graph/graph?version=2")
    assert missing.status_code == 404 and "no version 2" in missing.json()["message"]
    assert (await api.get("/v1/flows/nothing/graph")).status_code == 404
    assert (await api.get("/v1/flows/graph/graph?version=0")).status_code == 422


async def test_a_person_is_found_by_email_with_tags_consent_and_segments(
    api: httpx.AsyncClient, store: Store, tenant: Tenant
) -> None:
    attributes = {"email": "Ada@Example.com", "plan": "pro"}
    assert (await api.put("/v1/profiles/ada", json={"attributes": attributes})).status_code == 200
    assert (await api.put("/v1/profiles/bob", json={"attributes": {"plan": "free"}})).status_code == 200
    pros = {"name": "Pros", "rule": {"attribute": "plan", "op": "is", "value": "pro"}}
    assert (await api.put("/v1/segments/pros", json=pros)).status_code == 200
    async with store.begin() as conn:  # what the tag and do_not_contact steps write
        await conn.execute(
            profiles_table.update()
            .where(profiles_table.c.workspace_id == tenant.id, profiles_table.c.id == "ada")
            .values(tags=["vip"], do_not_contact=[{"channel": "sms", "sender": None}])
        )
    ada = (await api.get("/v1/profiles/ada")).json()
    assert (ada["tags"], ada["do_not_contact"], ada["segments"]) == (
        ["vip"],
        [{"channel": "sms", "sender": None}],
        ["pros"],
    )
    assert (await api.get("/v1/profiles/bob")).json()["segments"] == []

    found = (await api.get("/v1/profiles", params={"email": " ada@example.COM"})).json()["profiles"]
    assert [p["id"] for p in found] == ["ada"] and found[0]["tags"] == ["vip"]
    assert (await api.get("/v1/profiles", params={"email": "eve@example.com"})).json() == {"profiles": []}
    for params in ({}, {"email": "a@b.c", "phone": "+1"}):
        refused = await api.get("/v1/profiles", params=params)
        assert refused.status_code == 422 and refused.json()["faults"][0]["path"] == "query.email"


# ---- the pages in Chromium --------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """One Chromium for the session: Debian's, never a downloaded one."""
    if not HAVE_CHROMIUM:
        pytest.skip("no Chromium at /usr/bin/chromium: browser tests skipped")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield launched
        await launched.close()


@contextlib.asynccontextmanager
async def served(
    store: Store, temporal: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[str]:
    """The app on a real HTTP server (uvicorn) on 127.0.0.1, starting journeys on ``task_queue``."""
    settings = Settings(
        database_url=str(store.url), task_queue=task_queue, data_dir=tmp_path, sweep_seconds=0
    )
    app = create_app(settings, store=store, temporal=temporal.client)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def sqlite_only(store: Store) -> None:
    # The pages read the same /v1 answers on both stores (the HTTP tests above run on both).
    if store.url.get_backend_name() != "sqlite":
        pytest.skip("browser tests run on SQLite; the /v1 answers they read are tested on both stores")


async def sign_in(page: Any, url: str, key: str) -> None:
    await page.goto(f"{url}/console/")
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def test_console_shows_a_flow_live_and_a_journey_on_it(
    browser: Any,
    sqlite_only: None,
    store: Store,
    temporal: WorkflowEnvironment,
    worker: None,
    task_queue: str,
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    async with (
        served(store, temporal, task_queue, tmp_path) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {tenant.key}"}) as client,
    ):
        await publish(client, WELCOME)
        page = await browser.new_page()
        try:
            # A wrong key is refused with a clear message, and nothing is shown.
            await sign_in(page, url, "not-a-key")
            await expect(page.get_by_role("alert")).to_have_text(re.compile("API key was not accepted"))
            await expect(page.locator("#flows")).to_have_count(0)

            await sign_in(page, url, tenant.key)
            row = page.locator("#flows tbody tr", has_text="welcome")
            await expect(row).to_contain_text("running")
            await page.get_by_label("Search flows").fill("nothing like it")
            await expect(row).to_have_count(0)
            await page.get_by_label("Search flows").fill("welc")
            await row.get_by_role("link", name="welcome").click()

            # The canvas: a node per step, the trigger in the header, live numbers.
            nodes = page.locator("svg.canvas g.node.step")
            await expect(nodes).to_have_count(len(WELCOME["steps"]))
            await expect(page.get_by_role("region", name="Trigger and settings")).to_contain_text("signed_up")
            wait_node = page.get_by_role("img", name=re.compile("^Step wait_click"))
            await expect(wait_node).to_contain_text("at step 0")
            await expect(page.locator("g.edge.implicit")).to_have_count(2)  # hello→wait, nudge→thanks

            sent = await client.post(
                "/v1/events", json={"id": "evt-1", "profile_id": "ada", "name": "signed_up"}
            )
            assert sent.status_code == 202, sent.text
            (journey_id,) = sent.json()["journeys"]
            # No reload: the page refreshes its numbers by itself.
            await expect(wait_node).to_contain_text("at step 1 · entered 1", timeout=20_000)
            await expect(page.locator("#in-flight")).to_have_text("in flight 1")
            await expect(page.get_by_role("img", name=re.compile("^Step hello"))).to_contain_text("sent 1")
            if screenshot := os.environ.get("FLOWLINE_CONSOLE_SCREENSHOT"):
                # docs/console.png: FLOWLINE_CONSOLE_SCREENSHOT=docs/console.png pytest -k flow_live
                await page.set_viewport_size({"width": 1280, "height": 800})
                await page.screenshot(path=screenshot, full_page=True)

            # The person, their journey, its path drawn on the canvas.
            await page.get_by_role("link", name="People").click()
            await page.get_by_label("Person id").fill("ada")
            await page.get_by_role("button", name="Find").click()
            await page.get_by_role("link", name=journey_id).click()
            await expect(page.locator("#path tbody tr")).to_have_count(2)
            await expect(page.locator("#path")).to_contain_text("hello")
            await expect(page.locator("g.node.step.visited")).to_have_count(2)
            await expect(page.locator("g.node.step.current")).to_have_attribute("data-step", "wait_click")
            await expect(page.locator("g.edge.taken")).to_have_count(1)
            await expect(wait_node).to_contain_text("here now")
            link = page.get_by_role("link", name="Open the workflow in the Temporal UI")
            assert (await link.get_attribute("href") or "").endswith(
                f"/namespaces/default/workflows/{journey_id}"
            )

            # Stop it, behind a confirmation.
            page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await page.get_by_role("button", name="Stop this journey").click()
            await expect(page.get_by_role("status")).to_have_text("The journey is stopping.")
            # The page follows the journey: it ends as stopped, without a reload.
            await expect(page.locator(".meta .state")).to_have_text("stopped", timeout=20_000)
            await expect(page.get_by_role("button", name="Stop this journey")).to_be_hidden()
        finally:
            await page.close()
    detail = await _journey_status(store, tenant, journey_id)
    assert detail == "stopped"


async def _journey_status(store: Store, tenant: Tenant, journey_id: str) -> str | None:
    for _ in range(200):  # the stop is a signal: the journey records its end when it runs
        async with store.connect() as conn:
            row = await journeys.get_journey(conn, tenant.id, journey_id)
        if row is not None and row["status"] != "running":
            return str(row["status"])
        await asyncio.sleep(0.05)
    return None


async def test_console_shows_a_key_only_its_workspace(
    browser: Any,
    sqlite_only: None,
    store: Store,
    temporal: WorkflowEnvironment,
    task_queue: str,
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    other = await new_tenant(store)
    async with (
        served(store, temporal, task_queue, tmp_path) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {tenant.key}"}) as client,
    ):
        await publish(client, WELCOME)
        page = await browser.new_page()
        try:
            await sign_in(page, url, other.key)
            await expect(page.locator("#flows")).to_contain_text("No flows in this workspace yet.")
            await page.goto(f"{url}/console/#/flows/welcome")
            await expect(page.get_by_role("alert")).to_contain_text("no flow 'welcome'")
            # Signing out forgets the key.
            await page.get_by_role("button", name="Sign out").click()
            await expect(page.get_by_label("API key")).to_be_visible()
            assert await page.evaluate("sessionStorage.length") == 0
        finally:
            await page.close()


async def test_console_edits_a_flow_as_yaml_and_publishes_it(
    browser: Any,
    sqlite_only: None,
    store: Store,
    temporal: WorkflowEnvironment,
    task_queue: str,
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    async with (
        served(store, temporal, task_queue, tmp_path) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {tenant.key}"}) as client,
    ):
        await publish(client, WELCOME)
        page = await browser.new_page()
        try:
            await sign_in(page, url, tenant.key)
            await page.get_by_role("link", name="welcome").click()
            await page.get_by_role("button", name="Edit as YAML").click()
            state = page.locator("#editor-state")
            await expect(state).to_have_text("Valid: 4 steps.")
            editor = page.get_by_label("Flow document (YAML)")
            text = await editor.input_value()
            assert "timeout: nudge" in text and 'within: "7d"' in text

            # A branch to a step that does not exist: the fault, its line, its node.
            await editor.fill(text.replace("timeout: nudge", "timeout: nowhere"))
            await expect(state).to_have_text("1 fault.")
            fault = page.locator("#faults li")
            await expect(fault).to_contain_text("$.steps[1].next.timeout")
            line = text.split("\n").index("      timeout: nudge") + 1
            await expect(fault.get_by_role("button")).to_have_text(f"line {line}")
            await expect(page.locator(".gutter .fault")).to_have_text(str(line))
            await expect(page.locator("g.node.step.faulty")).to_have_attribute("data-step", "wait_click")

            # Fixed, and changed: the canvas follows the text before anything is saved.
            fixed = text.replace("happened: thanks", "happened: nudge")
            await editor.fill(fixed)
            await expect(state).to_have_text("Valid: 4 steps.")
            await expect(page.locator("g.node.step.faulty")).to_have_count(0)
            await expect(
                page.locator('g.edge[data-source="wait_click"][data-target="thanks"]')
            ).to_have_count(0)
            merged = page.locator('g.edge[data-source="wait_click"][data-target="nudge"]')
            await expect(merged).to_contain_text("happened, timeout")

            await page.get_by_role("button", name="Publish…").click()
            dialog = page.get_by_role("dialog")
            await expect(dialog).to_contain_text("Publish version 2?")
            await expect(dialog).to_contain_text("journeys in flight keep their version")
            await dialog.get_by_role("button", name="Publish version 2").click()
            await expect(dialog).to_have_count(0)
            await expect(page.get_by_label("Version", exact=True)).to_have_value("2")
            await expect(page.locator("#in-flight")).to_be_visible()
        finally:
            await page.close()
        flow = (await client.get("/v1/flows/welcome")).json()
        assert flow["current_version"] == 2
        assert flow["draft"]["steps"][1]["next"] == {"happened": "nudge", "timeout": "nudge"}


async def test_the_api_pages_render_offline_in_chromium(
    browser: Any,
    sqlite_only: None,
    store: Store,
    temporal: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
) -> None:
    """/docs and /redoc draw the API with what the API serves (api/docs_pages.py); every request
    to another host is refused, as on a machine without the internet."""
    from playwright.async_api import expect

    async with served(store, temporal, task_queue, tmp_path) as url:
        context = await browser.new_context()
        elsewhere: list[str] = []

        async def offline(route: Any) -> None:
            if route.request.url.startswith(url):
                await route.continue_()
            else:
                elsewhere.append(route.request.url)
                await route.abort()

        await context.route("**/*", offline)
        page = await context.new_page()
        try:
            await page.goto(f"{url}/docs")
            await expect(
                page.locator(".swagger-ui .opblock-summary-path", has_text="/v1/flows/{flow_id}/graph")
            ).to_have_count(1)
            await page.goto(f"{url}/redoc")
            # ReDoc draws the whole document or, on a broken one, "Something went wrong".
            await expect(page.get_by_role("heading", level=1, name=re.compile("^Flowline"))).to_be_visible()
            await expect(page.get_by_role("menuitem", name="flows")).to_be_visible()
            await expect(page.get_by_text("Something went wrong")).to_have_count(0)
        finally:
            await context.close()
    assert elsewhere == []


async def test_console_finds_a_person_by_email_and_shows_segments_and_settings(
    browser: Any,
    sqlite_only: None,
    store: Store,
    temporal: WorkflowEnvironment,
    task_queue: str,
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    async with (
        served(store, temporal, task_queue, tmp_path) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {tenant.key}"}) as client,
    ):
        for person, plan in [("ada", "pro"), ("bob", "pro"), ("cy", "free")]:
            body = {"attributes": {"email": f"{person}@example.com", "plan": plan}}
            assert (await client.put(f"/v1/profiles/{person}", json=body)).status_code == 200
        pros = {"name": "Pros", "rule": {"attribute": "plan", "op": "is", "value": "pro"}}
        assert (await client.put("/v1/segments/pros", json=pros)).status_code == 200
        smtp = {"provider": "smtp", "host": "mail.example.com", "from_address": "hi@example.com"}
        channels = {"email": smtp | {"username": "u", "password": "hunter2-secret"}}
        assert (await client.put("/v1/workspace/channels", json=channels)).status_code == 200
        page = await browser.new_page()
        try:
            await sign_in(page, url, tenant.key)
            # Straight on after signing in: the flows page still loading must not draw over this one.
            await page.get_by_role("link", name="People").click()
            await page.get_by_label("Person id or email").fill("ADA@example.com")
            await page.get_by_role("button", name="Find").click()
            await expect(page.get_by_role("heading", name="Person ada")).to_be_visible()
            await expect(page.locator("#segments")).to_have_text("pros")

            await page.get_by_label("Person id or email").fill("nobody@example.com")
            await page.get_by_role("button", name="Find").click()
            await expect(page.get_by_role("alert")).to_have_text(
                "No person with the email nobody@example.com in this workspace."
            )

            await page.get_by_role("link", name="Segments").click()
            await expect(page.locator("#segments tbody tr", has_text="pros")).to_contain_text("2")
            await page.get_by_role("link", name="pros").click()
            await expect(page.locator("#member-count")).to_contain_text("2 members now")
            await expect(page.locator("#members li")).to_have_text(["ada", "bob"])

            await page.get_by_role("link", name="Settings").click()
            await expect(page.get_by_role("region", name="Channel email")).to_contain_text("mail.example.com")
            assert "hunter2" not in await page.content()
        finally:
            await page.close()


async def test_console_shows_a_splits_variants_on_its_node(
    browser: Any,
    sqlite_only: None,
    store: Store,
    temporal: WorkflowEnvironment,
    worker: None,
    task_queue: str,
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    ab = {
        "id": "ab",
        "name": "A/B",
        "trigger": {"type": "event", "event": "signed_up"},
        "settings": {"goal": {"event": "purchase", "within": "30d"}},
        "steps": [
            {
                "id": "ab",
                "type": "split",
                "variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
                "control": {"weight": 1, "next": "wait"},
            },
            {"id": "wait", "type": "pause", "for": "7d"},
        ],
    }
    async with (
        served(store, temporal, task_queue, tmp_path) as url,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {tenant.key}"}) as client,
    ):
        await publish(client, ab)
        people = [f"p{n}" for n in range(6)]
        events = [{"id": f"e-{p}", "profile_id": p, "name": "signed_up"} for p in people]
        assert (await client.post("/v1/events", json=events)).status_code == 202
        page = await browser.new_page()
        try:
            await sign_in(page, url, tenant.key)
            await page.get_by_role("link", name="ab").click()
            split = page.get_by_role("img", name=re.compile("^Step ab, split"))
            await expect(page.get_by_role("img", name=re.compile("^Step wait"))).to_contain_text(
                "at step 6", timeout=20_000
            )
            stats = (await client.get("/v1/flows/ab/stats")).json()["versions"][0]["steps"][0]["split"]
            for variant in stats["variants"]:  # each variant's line, as the API counts it
                await expect(split).to_contain_text(f"{variant['name']}: {variant['people']} ppl · 0 conv")
            assert sum(v["people"] for v in stats["variants"]) == len(people)
        finally:
            await page.close()
