"""The HTTP API: authentication, bad input, isolation between workspaces."""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from flowline.settings import Settings
from flowline.store.database import Store
from flowline.store.events import JOURNEY_EVENTS
from flowline.store.tables import events, journeys
from tests.conftest import Tenant, finish, new_tenant
from tests.flows import send_then_exit_flow, welcome_flow
from tests.servers import unreachable_temporal


async def test_missing_and_unknown_keys_get_401(api: httpx.AsyncClient) -> None:
    for headers in (
        {"Authorization": ""},
        {"Authorization": "Bearer fl_nope"},
        {"Authorization": "Basic abc"},
    ):
        response = await api.get("/v1/flows", headers=headers)
        assert response.status_code == 401
        assert "message" in response.json()


async def test_health_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "temporal": "ok"}


async def test_openapi_publishes_the_flow_schema(api: httpx.AsyncClient) -> None:
    schema = (await api.get("/openapi.json")).json()
    assert "FlowDocument" in schema["components"]["schemas"]
    assert "/v1/events" in schema["paths"]


async def test_flow_as_yaml_then_json_round_trip(api: httpx.AsyncClient) -> None:
    doc = welcome_flow("http://127.0.0.1:1")
    put = await api.put(
        "/v1/flows/welcome", content=yaml.safe_dump(doc), headers={"Content-Type": "application/yaml"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["status"] == "draft"
    got = (await api.get("/v1/flows/welcome")).json()
    assert got["draft"]["steps"][0] == {"id": "wait", "type": "pause", "for": "2d"}
    assert (await api.put("/v1/flows/welcome", json=got["draft"])).status_code == 200
    assert [f["id"] for f in (await api.get("/v1/flows")).json()["flows"]] == ["welcome"]


async def test_invalid_flow_gets_422_with_every_fault_and_nothing_is_written(api: httpx.AsyncClient) -> None:
    doc = welcome_flow("http://127.0.0.1:1")
    doc["steps"][0]["for"] = "soon"
    doc["steps"][1]["next"] = "missing"
    response = await api.put("/v1/flows/welcome", json=doc)
    assert response.status_code == 422
    paths = {f["path"] for f in response.json()["faults"]}
    assert paths == {"$.steps[0].for"}  # schema faults come first; graph rules run on a valid schema
    doc["steps"][0]["for"] = "1d"
    response = await api.put("/v1/flows/welcome", json=doc)
    assert response.status_code == 422
    assert response.json()["faults"] == [
        {"path": "$.steps[1].next", "message": "no step has the id 'missing'"}
    ]
    assert (await api.get("/v1/flows/welcome")).status_code == 404


async def test_document_id_must_match_the_url(api: httpx.AsyncClient) -> None:
    response = await api.put("/v1/flows/other", json=welcome_flow("http://127.0.0.1:1"))
    assert response.status_code == 422
    assert response.json()["faults"][0]["path"] == "$.id"


async def test_validate_does_not_save(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/flows/welcome/validate", json=welcome_flow("http://127.0.0.1:1"))
    assert response.status_code == 200 and response.json()["valid"] is True
    assert (await api.get("/v1/flows/welcome")).status_code == 404


async def test_publish_unknown_flow_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.post("/v1/flows/nope/publish")).status_code == 404


async def test_event_batch_keeps_valid_events_and_reports_each_invalid_one(api: httpx.AsyncClient) -> None:
    batch = [
        {"id": "e1", "profile_id": "p1", "name": "viewed"},
        {"id": "e2", "name": "viewed"},
        {"id": "e3", "profile_id": "p1", "name": "viewed", "timestamp": "yesterday"},
        "not an event",
        {"id": "e4", "profile_id": "p2", "name": "viewed", "properties": {"x": 1}, "extra": True},
        {"id": "e5", "profile_id": "p2", "name": "viewed", "timestamp": "2026-01-01T10:00:00"},
    ]
    response = await api.post("/v1/events", json={"events": batch})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    rejected = {r["index"]: r for r in body["rejected"]}
    assert set(rejected) == {1, 2, 3, 4}
    assert rejected[1]["faults"] == [{"path": "$.events[1].profile_id", "message": "Field required"}]
    assert rejected[2]["faults"][0]["path"] == "$.events[2].timestamp"
    assert rejected[4]["faults"][0]["path"] == "$.events[4].extra"
    again = (await api.post("/v1/events", json=batch[0])).json()
    assert again["accepted"] == 0 and again["duplicates"] == 1
    # Events name people we had not seen: they now exist.
    assert (await api.get("/v1/profiles/p2")).status_code == 200


async def test_all_invalid_events_get_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/events", json=[{"id": "x"}])
    assert response.status_code == 422
    assert response.json()["rejected"][0]["index"] == 0


async def test_too_many_events_in_one_call(api: httpx.AsyncClient) -> None:
    batch = [{"id": f"e{i}", "profile_id": "p", "name": "n"} for i in range(1001)]
    response = await api.post("/v1/events", json=batch)
    assert response.status_code == 413
    assert (await api.get("/v1/profiles/p")).status_code == 404, "nothing of a refused batch is written"


async def test_profile_merge_upsert(api: httpx.AsyncClient) -> None:
    await api.put("/v1/profiles/ada", json={"attributes": {"first_name": "Ada", "plan": "free"}})
    response = await api.put("/v1/profiles/ada", json={"attributes": {"plan": "pro", "first_name": None}})
    assert response.status_code == 200
    assert response.json()["attributes"] == {"plan": "pro"}
    bad = await api.put("/v1/profiles/ada", json={"attributes": [1]})
    assert bad.status_code == 422 and bad.json()["faults"][0]["path"] == "$.attributes"


async def test_workspaces_do_not_see_each_other(api: httpx.AsyncClient, store: Store) -> None:
    await api.put("/v1/profiles/secret", json={"attributes": {"email": "a@example.test"}})
    await api.put("/v1/flows/welcome", json=welcome_flow("http://127.0.0.1:1"))
    other = await new_tenant(store)
    headers = {"Authorization": f"Bearer {other.key}"}
    assert (await api.get("/v1/profiles/secret", headers=headers)).status_code == 404
    assert (await api.get("/v1/flows/welcome", headers=headers)).status_code == 404
    assert (await api.get("/v1/flows", headers=headers)).json() == {"flows": []}


async def test_unknown_journey_is_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/journeys/j-nope")
    assert response.status_code == 404 and response.json() == {"message": "no journey 'j-nope'"}


async def test_events_stay_unrouted_when_journeys_cannot_start_and_a_resend_routes_them(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, temporal: WorkflowEnvironment, worker: None
) -> None:
    await api.put("/v1/flows/short", json=send_then_exit_flow("signed_up"))
    assert (await api.post("/v1/flows/short/publish")).status_code == 200
    # Point the app at a Temporal server that is not there: every start fails.
    services = api._transport.app.state.services  # type: ignore[attr-defined]
    working = services.launcher.client
    services.launcher.client = await unreachable_temporal()
    try:
        batch = [
            {"id": "e1", "profile_id": "ada", "name": "signed_up", "properties": {"plan": "pro"}},
            {"id": "e2", "profile_id": "bob", "name": "page_viewed"},
        ]
        response = await api.post("/v1/events", json=batch)
    finally:
        services.launcher.client = working
    assert response.status_code == 503
    assert "send them again" in response.json()["message"]
    # Stored, and the journey claimed, but the event that starts it not routed; bob's event
    # concerns no flow and no journey: it was stored routed at once.
    async with store.connect() as conn:
        stored = await conn.execute(
            select(events.c.id, events.c.routed_at)
            .where(events.c.workspace_id == tenant.id, events.c.name.not_in(JOURNEY_EVENTS))
            .order_by(events.c.id)
        )
        assert [(r.id, r.routed_at is None) for r in stored] == [("e1", True), ("e2", False)]
        [claimed] = (
            await conn.execute(select(journeys.c.id).where(journeys.c.workspace_id == tenant.id))
        ).scalars()

    # The same batch again: the same journey starts (no second one), and the events are routed.
    again = await api.post("/v1/events", json=batch)
    assert again.status_code == 202, again.text
    assert again.json()["duplicates"] == 2 and again.json()["journeys"] == [claimed]
    assert (await finish(temporal, claimed)).status == "completed"
    async with store.connect() as conn:
        # The engine's flow_entered / flow_exited are the sweeper's (tests/test_event_triggers.py).
        routed = await conn.execute(
            select(events.c.routed_at).where(
                events.c.workspace_id == tenant.id, events.c.name.not_in(JOURNEY_EVENTS)
            )
        )
        assert all(r.routed_at is not None for r in routed)
        count = await conn.scalar(
            select(func.count()).select_from(journeys).where(journeys.c.workspace_id == tenant.id)
        )
    assert count == 1


async def test_a_busy_store_answers_503_not_500(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    """Every connection taken (a pool timeout): the client is told to come back, with Retry-After."""
    tiny = Store(str(store.url), pool_size=1, max_overflow=0, pool_timeout=0.2)
    settings = Settings(database_url=str(store.url), data_dir=tmp_path, sweep_seconds=0)
    app = create_app(settings, store=tiny, temporal=temporal.client)
    try:
        async with app.router.lifespan_context(app), tiny.connect():  # holds the only connection
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://flowline") as client:
                response = await client.get(
                    "/v1/profiles/ada", headers={"Authorization": f"Bearer {tenant.key}"}
                )
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert "busy" in response.json()["message"]
    finally:
        await tiny.dispose()
