"""The use cases (services/): callable without HTTP, answered over HTTP exactly as when the
routes held them, and signalling journeys only through typed references."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api import errors
from api.errors import ApiError
from flowline.store.database import Store
from flowline.store.lifecycle import refusal
from services import journeys as journey_use_cases
from services import profiles as profile_use_cases
from services.errors import Invalid, NotFound, Refused, ServiceError, TemporalUnavailable
from tests.conftest import Tenant
from tests.python_source import parse
from tests.servers import unreachable_temporal
from tests.test_journeys import publish
from tests.test_profiles_api import erasable_flow, in_pause

ROOT = Path(__file__).resolve().parent.parent

# Each error of the use cases, and the ApiError the routes raised for it before services/.
ANSWERS: list[tuple[ServiceError, ApiError]] = [
    (NotFound("no flow 'f'"), ApiError(404, "no flow 'f'")),
    (Refused("journey 'j' has ended (completed)"), ApiError(409, "journey 'j' has ended (completed)")),
    (
        Invalid("variables do not fit their declarations", [("$.plan", "expected a string")]),
        ApiError(
            422,
            "variables do not fit their declarations",
            faults=[{"path": "$.plan", "message": "expected a string"}],
        ),
    ),
    (
        TemporalUnavailable("Temporal did not take the stop (gone); send it again"),
        ApiError(503, "Temporal did not take the stop (gone); send it again"),
    ),
]


@pytest.mark.parametrize("error, before", ANSWERS, ids=lambda a: type(a).__name__)
async def test_an_error_of_a_use_case_is_answered_byte_for_byte_as_before(
    error: ServiceError, before: ApiError
) -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/now")
    async def now() -> None:
        raise error

    @app.get("/before")
    async def earlier() -> None:
        raise before

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        new, old = await client.get("/now"), await client.get("/before")
    assert (new.status_code, new.content, new.headers.items()) == (
        old.status_code,
        old.content,
        old.headers.items(),
    )


async def test_the_use_cases_answer_over_http_as_the_routes_did(api: httpx.AsyncClient) -> None:
    cases = [
        (api.post("/v1/journeys/j-nope/stop"), 404, {"message": "no journey 'j-nope'"}),
        (api.post("/v1/flows/nope/publish"), 404, {"message": "no flow 'nope'"}),
        (api.post("/v1/flows/nope/drain"), 404, {"message": "no flow 'nope'"}),
        (api.post("/v1/flows/nope/stop"), 404, {"message": "no flow 'nope'"}),
        (api.delete("/v1/profiles/nobody"), 404, {"message": "no profile 'nobody'"}),
        (
            api.post("/v1/flows/nope/journeys", json={"profile_id": "ada"}),
            409,
            {"message": "flow 'nope' is not published: it takes no new entries"},
        ),
    ]
    for request, status, body in cases:
        response = await request
        assert (response.status_code, response.json()) == (status, body)
    await api.put("/v1/flows/cart", json=erasable_flow())
    drained = await api.post("/v1/flows/cart/drain")
    assert (drained.status_code, drained.json()) == (409, {"message": refusal("drain", "cart", "draft")})


async def test_a_journey_stop_temporal_does_not_take_is_a_503_to_send_again(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, erasable_flow())
    response = await api.post("/v1/events", json={"id": "c-1", "profile_id": "ada", "name": "cart_updated"})
    [journey_id] = response.json()["journeys"]
    await in_pause(temporal, journey_id)
    services = api._transport.app.state.services  # type: ignore[attr-defined]
    working = services.temporal
    services.temporal = await unreachable_temporal()
    try:
        refused = await api.post(f"/v1/journeys/{journey_id}/stop")
    finally:
        services.temporal = working
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json()["message"].startswith("Temporal did not take the stop (")
    stopped = await api.post(f"/v1/journeys/{journey_id}/stop", json={"reason": "enough"})
    assert stopped.json() == {"journey_id": journey_id, "status": "stopping", "reason": "enough"}


async def test_the_use_cases_are_called_without_http(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant
) -> None:
    with pytest.raises(NotFound, match="no journey 'j-nope'"):
        await journey_use_cases.stop_journey(store, temporal.client, tenant.id, "j-nope", "why")
    with pytest.raises(NotFound, match="no profile 'nobody'"):
        await profile_use_cases.erase_person(store, temporal.client, tenant.id, "nobody")


def test_services_know_nothing_of_http() -> None:
    script = (
        "import sys, pkgutil, importlib, services\n"
        "for m in pkgutil.walk_packages(services.__path__, 'services.'): importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "services.flow_lifecycle" in loaded
    assert [m for m in loaded if m.split(".")[0] in {"fastapi", "starlette", "api"}] == []


def _signal_names(path: Path) -> list[str]:
    """``.signal(...)`` calls whose first argument is not a handler of a workflow class."""
    found = []
    for node in ast.walk(parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "signal":
            first = node.args[0] if node.args else None
            typed = (
                isinstance(first, ast.Attribute)
                and isinstance(first.value, ast.Name)
                and first.value.id.endswith("Workflow")
            )
            passed_on = isinstance(first, ast.Name) and first.id == "signal"  # launch/signals.py's own
            if not (typed or passed_on):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_journeys_are_signalled_through_typed_references_only() -> None:
    sources = [
        p for folder in ("api", "launch", "services", "activities") for p in (ROOT / folder).rglob("*.py")
    ]
    assert [found for path in sources for found in _signal_names(path)] == []
