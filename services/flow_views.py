"""What a person looking at flows needs (the console, the API's list): each flow with its recent
entries and conversion, and a flow version's step graph as a picture draws it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowline.flow.document import FlowDocument
from flowline.flow.graph import drawn_edges
from flowline.stats.significance import rate
from flowline.store import flows, journeys
from flowline.store.database import Store, utcnow
from flowline.store.lifecycle import FlowState, flow_states
from services.errors import NotFound


@dataclass(frozen=True)
class ListedFlow:
    row: dict[str, Any]  # the flow's record (flowline/store/flows.py)
    state: FlowState | None
    last_published_at: datetime | None
    entries: journeys.FlowEntries
    conversion_rate: float | None  # None without a goal or without entries


async def list_flows(store: Store, workspace_id: str, now: datetime | None = None) -> list[ListedFlow]:
    """Every flow of the workspace: its record, shown state, when it last published, its entries
    in the last day and week, and its goal's conversion rate."""
    now = now or utcnow()
    async with store.connect() as conn:
        rows = await flows.list_flows(conn, workspace_id)
        states = await flow_states(conn, workspace_id)
        published = await flows.last_published(conn, workspace_id)
        entries = await journeys.entries_by_flow(conn, workspace_id, now)
    listed = []
    for row in rows:
        counted = entries.get(row["id"], journeys.FlowEntries())
        has_goal = bool((row["draft"].get("settings") or {}).get("goal"))
        listed.append(
            ListedFlow(
                row,
                states.get(row["id"]),
                published.get(row["id"]),
                counted,
                rate(counted.converted, counted.entered) if has_goal else None,
            )
        )
    return listed


@dataclass(frozen=True)
class FlowGraph:
    flow_id: str
    version: int | None  # None: the draft
    document: FlowDocument
    edges: list[tuple[str, str | None, list[str], bool]]


async def flow_graph(store: Store, workspace_id: str, flow_id: str, version: int | None) -> FlowGraph:
    """The graph of ``version``; without one, of the current version, or of the draft while the
    flow has never been published."""
    async with store.connect() as conn:
        row = await flows.get_flow(conn, workspace_id, flow_id)
        if row is None:
            raise NotFound(f"no flow {flow_id!r}")
        wanted = version if version is not None else row["current_version"]
        if wanted is None:
            document = FlowDocument.model_validate(row["draft"])
        else:
            found = await flows.version_documents(conn, workspace_id, [(flow_id, wanted)])
            if (flow_id, wanted) not in found:
                raise NotFound(f"flow {flow_id!r} has no version {wanted}")
            document = found[flow_id, wanted]
    return FlowGraph(flow_id, wanted, document, drawn_edges(document))
