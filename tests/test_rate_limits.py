"""Load without harm (docs/api.md#rate-limits): per-key rate limits answer 429 with Retry-After,
and one key flooding the API, a thousand idle connections and a client that never finishes its
request do not keep the API from answering health checks and other keys."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.rate_limits import RateLimits
from flowline.settings import Settings
from flowline.store.database import Store
from tests.conftest import Tenant, new_tenant
from tests.processes import api_process, ready
from tests.servers import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_gives_its_burst_then_one_request_per_interval() -> None:
    clock = Clock()
    limits = RateLimits(per_second=2, burst=3, clock=clock)
    assert [limits.take("a") for _ in range(3)] == [None, None, None]
    assert limits.take("a") == pytest.approx(0.5)
    assert limits.take("b") is None  # another key has its own bucket
    clock.now += 0.5
    assert limits.take("a") is None
    assert limits.take("a") == pytest.approx(0.5)
    clock.now += 60  # refilled to the burst, not beyond
    assert [limits.take("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_made_up_keys_cannot_grow_the_table_without_bound() -> None:
    limits = RateLimits(per_second=1, burst=1, max_keys=100, clock=Clock())
    for n in range(1000):
        limits.take(f"key-{n}")
    assert len(limits._buckets) == 100
    assert limits.take("key-999") is not None  # the most recent ones are kept


async def test_past_its_burst_a_key_gets_429_with_retry_after_and_others_go_on(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=str(store.url),
        data_dir=tmp_path,
        sweep_seconds=0,
        rate_limit_per_second=0.5,
        rate_limit_burst=3,
    )
    other = await new_tenant(store)
    app = create_app(settings, store=store, temporal=temporal.client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://flowline") as client:

            async def get(key: str) -> httpx.Response:
                return await client.get("/v1/workspace", headers={"Authorization": f"Bearer {key}"})

            assert [(await get(tenant.key)).status_code for _ in range(3)] == [200, 200, 200]
            refused = await get(tenant.key)
            assert refused.status_code == 429
            assert refused.headers["Retry-After"] == "2"  # 1 / 0.5 s, in whole seconds
            assert "too many requests with this API key" in refused.json()["message"]
            assert (await get(other.key)).status_code == 200
            # A made-up key is limited too, before it is looked up: 401 three times, then 429.
            assert [(await get("fl_made_up")).status_code for _ in range(4)] == [401, 401, 401, 429]
            assert (await client.get("/healthz")).status_code == 200
    spec = create_app(Settings(sweep_seconds=0)).openapi()
    answers = spec["paths"]["/v1/workspace"]["get"]["responses"]
    assert "Retry-After" in answers["429"]["headers"]


async def test_a_flood_idle_connections_and_a_slow_client_starve_nobody(
    database_urls: dict[str, str | None], temporal: WorkflowEnvironment, tmp_path: Path
) -> None:
    """A real API process (uvicorn, as `make run` starts it) with a limit of 20 requests a second.
    Held open meanwhile: 1,000 idle connections and one request whose headers never end. One key
    sends 600 requests, 100 at a time; every 100 ms another key and the health check ask too."""
    url = database_urls["sqlite"]
    assert url is not None
    store = Store(url)
    try:
        flooder, patient = await new_tenant(store), await new_tenant(store)
    finally:
        await store.dispose()
    env = dict(os.environ)
    env.update(
        FLOWLINE_DATABASE_URL=url,
        FLOWLINE_TEMPORAL_ADDRESS=temporal.client.service_client.config.target_host,
        FLOWLINE_DATA_DIR=str(tmp_path),
        FLOWLINE_SWEEP_SECONDS="0",
        FLOWLINE_RATE_LIMIT_PER_SECOND="20",
        FLOWLINE_RATE_LIMIT_BURST="20",
    )
    port = free_port()
    with api_process(env, port, tmp_path / "api.log") as base:
        await ready(base)
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(1000)]
        _, slow = idle[0]
        slow.write(b"GET /v1/workspace HTTP/1.1\r\nHost: flowline\r\nAuthorization: Bearer ")
        await slow.drain()
        try:
            flood_limits = httpx.Limits(max_connections=100)
            headers = {"Authorization": f"Bearer {flooder.key}"}
            async with (
                httpx.AsyncClient(base_url=base, headers=headers, limits=flood_limits, timeout=60) as flood,
                httpx.AsyncClient(base_url=base, timeout=60) as others,
            ):
                flooding = asyncio.gather(*(flood.get("/v1/workspace") for _ in range(600)))
                waits: list[float] = []
                while not flooding.done():
                    began = time.monotonic()
                    mine = await others.get(
                        "/v1/workspace", headers={"Authorization": f"Bearer {patient.key}"}
                    )
                    health = await others.get("/healthz")
                    waits.append(time.monotonic() - began)
                    assert (mine.status_code, health.status_code) == (200, 200), mine.text
                    await asyncio.sleep(0.1)
                answers = await flooding
        finally:
            for _, writer in idle:
                writer.close()
    statuses = [a.status_code for a in answers]
    assert set(statuses) == {200, 429} and statuses.count(429) > 400, statuses.count(200)
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)
    # The other key and the health check answered throughout (a pair of requests at a time).
    assert len(waits) >= 3 and max(waits) < 5.0, waits
