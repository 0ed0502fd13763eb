"""schemathesis over the whole OpenAPI document, on SQLite and on PostgreSQL.

The real app is served by uvicorn on 127.0.0.1 (in a thread with its own event loop, its own
store connections and a worker on the dev server), authenticated with a valid API key. Every
operation gets generated requests (flow documents included: their schema is valid OpenAPI), and
each answer must be no 5xx, a declared status, a declared content type, a body matching the
declared schema and declared headers. A stateful run then follows the document's links (create a
resource, then read, change and delete it).

``make test`` runs FLOWLINE_FUZZ_EXAMPLES=25 examples per operation (the default); ``make fuzz`` runs
100 per operation and a longer stateful run (FLOWLINE_FUZZ_EXAMPLES=100).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from flowline.settings import Settings
from flowline.store.database import Store
from tests.conftest import new_tenant
from tests.servers import free_port
from worker import running_worker

EXAMPLES = int(os.environ.get("FLOWLINE_FUZZ_EXAMPLES", "25"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
# The document as the app publishes it at GET /openapi.json (building it needs no store). The
# coverage phase is off: it enumerates its boundary cases when tests are collected, over 230,000
# for the flow document's schema (minutes before the first request); the examples and fuzzing
# phases generate as many requests as asked.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(sweep_seconds=0)).openapi(),
    config=SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}}),
)


@dataclass(frozen=True)
class Served:
    url: str
    headers: dict[str, str]


class _Server(threading.Thread):
    """The app with a store and a worker of its own, served on 127.0.0.1 from its own event loop
    (schemathesis calls are blocking: in the tests' loop they would stall the app)."""

    def __init__(self, database_url: str, temporal_address: str, data_dir: Path) -> None:
        super().__init__(daemon=True)
        self.port = free_port()
        self.database_url = database_url
        self.temporal_address = temporal_address
        self.data_dir = data_dir
        self.server: uvicorn.Server | None = None
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by the fixture
            self.failure = error

    async def _serve(self) -> None:
        task_queue = f"tq-fuzz-{uuid.uuid4().hex[:8]}"
        settings = Settings(
            database_url=self.database_url, task_queue=task_queue, data_dir=self.data_dir, sweep_seconds=0
        )
        store = Store(self.database_url)
        client = await Client.connect(self.temporal_address, data_converter=pydantic_data_converter)
        app = create_app(settings, store=store, temporal=client)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        try:
            async with running_worker(client, store, task_queue, webhook_timeout=2):
                await self.server.serve()
        finally:
            await store.dispose()


@pytest_asyncio.fixture(scope="module")
async def served(
    store: Store, dev_server: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    tenant = await new_tenant(store)
    address = dev_server.client.service_client.config.target_host
    server = _Server(str(store.url), address, tmp_path_factory.mktemp("fuzz"))
    server.start()
    url = f"http://127.0.0.1:{server.port}"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as http:
        while True:
            if server.failure is not None:
                raise server.failure
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)
    yield Served(url, {"Authorization": f"Bearer {tenant.key}"})
    assert server.server is not None
    server.server.should_exit = True
    await asyncio.to_thread(server.join, 30)


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation(case: schemathesis.Case, served: Served) -> None:
    # The valid key replaces whatever bearer token schemathesis made up for the security scheme.
    case.headers = {**(case.headers or {}), **served.headers}
    case.call_and_validate(base_url=served.url, checks=CHECKS, timeout=30)


# Sequences along the document's links (api/links.py): a created profile, flow, segment or journey
# is read, changed and deleted; a resource answered as created must be there, a deleted one gone.
STATEFUL_CHECKS = [*CHECKS, checks.use_after_free, checks.ensure_resource_availability]


def test_stateful_sequences(served: Served) -> None:
    class Sequences(SCHEMA.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            case.headers = {**(case.headers or {}), **served.headers}
            return {"base_url": served.url, "timeout": 30}

        def validate_response(
            self,
            response: schemathesis.Response,
            case: schemathesis.Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(response, checks=STATEFUL_CHECKS, transport_kwargs=kwargs)

    Sequences.run(
        settings=settings(
            max_examples=max(5, EXAMPLES // 2),
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
    )


# ---------------------------------------------------------------- what the fuzzing found


async def test_offsets_past_the_databases_range_are_faults(api: httpx.AsyncClient) -> None:
    """An offset beyond 64 bits was a 500 (SQLite: int too large; PostgreSQL: bigint out of range)."""
    huge = 2**70
    for url in (f"/v1/journeys?offset={huge}", f"/v1/segments/s/members?offset={huge}"):
        answer = await api.get(url)
        assert answer.status_code == 422, answer.text
        assert [f["path"] for f in answer.json()["faults"]] == ["query.offset"]


NUL_MESSAGE = "a string with the character U+0000, which cannot be stored"


async def test_nul_characters_are_faults_and_nothing_is_written(api: httpx.AsyncClient) -> None:
    """U+0000 was a 500 on PostgreSQL (text and jsonb cannot hold it) and stored on SQLite."""
    answer = await api.put(
        "/v1/profiles/ada", json={"attributes": {"city": "Pa\x00ris", "tags": {"k\x00": 1}, "ok": "fine"}}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["faults"] == [
        {"path": "$.attributes.city", "message": NUL_MESSAGE},
        {"path": '$.attributes.tags["k\\u0000"]', "message": NUL_MESSAGE.replace("string", "key")},
    ]
    assert (await api.get("/v1/profiles/ada")).status_code == 404

    answer = await api.put(
        "/v1/profiles/ada/push_tokens", json={"tokens": [{"token": "a\x00", "platform": "ios"}]}
    )
    assert answer.status_code == 422, answer.text
    assert [f["path"] for f in answer.json()["faults"]] == ["$.tokens[0].token"]
    assert (await api.get("/v1/profiles/ada")).status_code == 404

    answer = await api.post(
        "/v1/events", json={"id": "e1", "profile_id": "ada", "name": "signed_up", "properties": {"x\x00": 1}}
    )
    assert answer.status_code == 422, answer.text
    [rejected] = answer.json()["rejected"]
    assert [f["path"] for f in rejected["faults"]] == ['$.properties["x\\u0000"]']
    again = await api.post("/v1/events", json={"id": "e1", "profile_id": "ada", "name": "signed_up"})
    assert again.json()["accepted"] == 1  # the refused one was not stored under its id

    answer = await api.get("/v1/profiles/a%00b")
    assert answer.status_code == 422, answer.text
    assert [f["path"] for f in answer.json()["faults"]] == ["path.profile_id"]

    answer = await api.get("/v1/journeys?flow=a%00")
    assert [f["path"] for f in answer.json()["faults"]] == ["query.flow"]


async def test_nul_characters_in_a_yaml_flow_are_faults(api: httpx.AsyncClient) -> None:
    document = (
        'name: "Wel\\0come"\ntrigger: {type: event, event: signed_up}\nsteps: [{id: done, type: exit}]\n'
    )
    answer = await api.put(
        "/v1/flows/welcome", content=document, headers={"Content-Type": "application/yaml"}
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["faults"] == [{"path": "$.name", "message": NUL_MESSAGE}]
    assert (await api.get("/v1/flows/welcome")).status_code == 404


async def test_profile_ids_longer_than_stored_ones_are_faults(api: httpx.AsyncClient) -> None:
    """A 201-character id in the path was stored on SQLite and a 500 on PostgreSQL (varchar(200)),
    where the same id in a body was already a 422."""
    long_id = "p" * 201
    answer = await api.put(f"/v1/profiles/{long_id}", json={})
    assert answer.status_code == 422, answer.text
    assert [f["path"] for f in answer.json()["faults"]] == ["path.profile_id"]
    assert (await api.put(f"/v1/profiles/{long_id[:200]}", json={})).status_code == 200
