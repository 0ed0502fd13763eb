"""Flows: drafts (YAML or JSON), validation, listing, and API-started journeys (publishing and
the rest of the lifecycle: api/routes/flow_lifecycle.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from api.body import CheckedRoute, read_as_json
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, WITH_BODY, errors
from api.schemas import FlowGraphOut, FlowList, FlowOut, FlowValid, JourneyStarted, StartJourneyIn
from flowline.flow.document import FlowDocument
from flowline.flow.graph import drawn_edges
from flowline.flow.validation import FlowFault, FlowInvalid, load_document, parse_flow
from flowline.json_values import value_faults
from flowline.settings import Settings
from flowline.store import flows
from flowline.store.lifecycle import FlowState, flow_states
from services import elements as element_use_cases
from services import flow_lifecycle, flow_views
from services import journeys as journey_use_cases

router = APIRouter(route_class=CheckedRoute, prefix="/v1/flows", tags=["flows"], responses=AUTHENTICATED)

_DOCUMENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A flow document (docs/flows.md) as JSON or YAML (`Content-Type: application/yaml`).",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/FlowDocument"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


async def _document(request: Request, flow_id: str, settings: Settings) -> FlowDocument:
    if read_as_json(request):
        # Checked as it came in (api/body.py), and not read again as YAML: YAML 1.1 takes JSON's
        # 1e5 (no dot) for a string.
        return _parsed(await request.json(), flow_id, settings)
    document = load_document(await request.body())
    # YAML is checked here by the same rules (it has .nan and .inf, and aliases that repeat a
    # subtree without its bytes).
    faults = value_faults(document, settings.json_limits())
    if faults:
        raise FlowInvalid([FlowFault(f.path, f.message) for f in faults])
    return _parsed(document, flow_id, settings)


def _parsed(document: Any, flow_id: str, settings: Settings) -> FlowDocument:
    if isinstance(document, dict):
        document.setdefault("id", flow_id)
        if document["id"] != flow_id:
            raise FlowInvalid(
                [FlowFault("$.id", f"the document's id {document['id']!r} is not the URL's {flow_id!r}")]
            )
    return parse_flow(document, max_steps=settings.max_steps)


def _flow_out(row: dict[str, Any], state: FlowState | None = None) -> dict[str, Any]:
    """A flow as the API shows it; ``state``: its shown status and journeys in flight."""
    return {
        "id": row["id"],
        "name": row["name"],
        "status": state.status if state else row["status"],
        "in_flight": state.in_flight if state else 0,
        "current_version": row["current_version"],
        "draft": row["draft"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


@router.put(
    "/{flow_id}",
    openapi_extra=_DOCUMENT_BODY,
    response_model=FlowOut,
    responses=errors(413, 422),
    summary="Create or replace the draft of a flow",
)
async def put_flow(flow_id: str, request: Request, workspace: Workspace, svc: Svc) -> dict[str, Any]:
    flow = await _document(request, flow_id, svc.settings)
    await element_use_cases.check_flow(svc.store, workspace, flow)
    async with svc.store.begin() as conn:
        row = await flows.save_draft(svc.store, conn, workspace, flow)
    return _flow_out(row)


@router.post(
    "/{flow_id}/validate",
    openapi_extra=_DOCUMENT_BODY,
    response_model=FlowValid,
    responses=errors(413, 422),
    summary="Validate a document without saving it",
)
async def validate_flow(
    flow_id: str,
    request: Request,
    workspace: Workspace,
    svc: Svc,
    references: bool = Query(
        False,
        description="also check what the flow names in this workspace (segments, destinations, "
        "custom elements), as publishing does",
    ),
) -> dict[str, Any]:
    """The document's faults, each with its path; custom steps are checked against their
    elements. With ``references=true`` also every reference publishing checks (a missing
    segment or destination), so that CI refuses a flow before it is published
    (``flowline validate --remote``)."""
    flow = await _document(request, flow_id, svc.settings)
    if references:
        await flow_lifecycle.check_references(svc.store, workspace, flow)
    else:
        await element_use_cases.check_flow(svc.store, workspace, flow)
    return {"valid": True, "flow": flow.dump(), "edges": _edges(drawn_edges(flow))}


@router.get("", response_model=FlowList, summary="List flows with their recent entries and conversion")
async def list_flows(workspace: Workspace, svc: Svc) -> dict[str, Any]:
    return {
        "flows": [
            _flow_out(f.row, f.state)
            | {
                "last_published_at": f.last_published_at,
                "entered_last_day": f.entries.last_day,
                "entered_last_week": f.entries.last_week,
                "entered": f.entries.entered,
                "conversion_rate": f.conversion_rate,
            }
            for f in await flow_views.list_flows(svc.store, workspace)
        ]
    }


@router.get(
    "/{flow_id}/graph",
    response_model=FlowGraphOut,
    responses=errors(404, 422),
    summary="A version's steps as a graph: each step's branches and where they lead",
)
async def get_flow_graph(
    flow_id: str,
    workspace: Workspace,
    svc: Svc,
    version: int | None = Query(
        None, ge=1, le=2**31 - 1, description="default: the current version, or the draft if never published"
    ),
) -> dict[str, Any]:
    """Edges join the branches that lead to the same step; ``implicit`` edges are the ones no branch
    names (the journey goes on to the step listed next), and a null ``target`` ends the journey."""
    graph = await flow_views.flow_graph(svc.store, workspace, flow_id, version)
    return {
        "flow_id": graph.flow_id,
        "version": graph.version,
        "document": graph.document.dump(),
        "edges": _edges(graph.edges),
    }


def _edges(edges: list[tuple[str, str | None, list[str], bool]]) -> list[dict[str, Any]]:
    return [
        {"source": source, "target": target, "branches": branches, "implicit": implicit}
        for source, target, branches, implicit in edges
    ]


@router.get(
    "/{flow_id}",
    response_model=FlowOut,
    responses=errors(404),
    summary="A flow: its draft, status and current version",
)
async def get_flow(flow_id: str, workspace: Workspace, svc: Svc) -> dict[str, Any]:
    """``status`` is draft, running, draining, stopped or finished (flowline/store/lifecycle.py);
    ``in_flight`` counts its journeys in flight over all versions."""
    async with svc.store.connect() as conn:
        row = await flows.get_flow(conn, workspace, flow_id)
        states = await flow_states(conn, workspace, flow_id)
    if row is None:
        raise ApiError(404, f"no flow {flow_id!r}")
    return _flow_out(row, states.get(flow_id))


@router.post(
    "/{flow_id}/journeys",
    status_code=201,
    response_model=JourneyStarted,
    responses={**WITH_BODY, **errors(409)},
    summary="Start a journey for one profile",
)
async def start_journey(flow_id: str, body: StartJourneyIn, workspace: Workspace, svc: Svc) -> dict[str, Any]:
    started = await journey_use_cases.start_journey(
        svc.launcher,
        workspace,
        flow_id,
        body.profile_id,
        entry_id=body.entry_id,
        variables=body.variables,
    )
    return {"journey_id": started.journey_id, "flow_id": flow_id, "version": started.version}
