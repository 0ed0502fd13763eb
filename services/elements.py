"""Custom elements: declarative ones set (a new version on each change), read and deleted
(refused while a running flow uses one), code ones read from the installed packages; and the
check of a flow's custom steps against the catalogue (docs/elements.md)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.document_paths import error_path
from flowline.elements.definition import DeclarativeElement
from flowline.elements.params import code_faults, declarative_faults, outcome_faults
from flowline.elements.plugins import CodeElement, code_elements
from flowline.flow.base import STRICT_TEMPLATES
from flowline.flow.document import FlowDocument
from flowline.flow.steps import CustomStep
from flowline.flow.validation import FlowFault, FlowInvalid
from flowline.json_values import member_path
from flowline.secrets import kept_secrets, mask, secret_headers
from flowline.store import elements
from flowline.store.database import Store
from flowline.store.elements import StoredElement
from flowline.store.lifecycle import flows_with_step
from services.errors import Invalid, NotFound, Refused


def shown_declarative(stored: StoredElement) -> dict[str, Any]:
    """The element as the API shows it; the values of credential headers as the mask."""
    definition = stored.definition
    shown = definition.model_dump(mode="json", by_alias=True)
    mask(shown["request"]["headers"], secret_headers(shown["request"]["headers"]))
    return {
        "id": stored.element_id,
        "kind": "declarative",
        "description": definition.description,
        "input_schema": definition.input_schema(),
        "outcomes": definition.outcome_names,
        "version": stored.version,
        "created_at": stored.first_created_at.isoformat(),
        "updated_at": stored.created_at.isoformat(),
        "definition": shown,
    }


def shown_code(element_id: str, element: CodeElement) -> dict[str, Any]:
    return {
        "id": element_id,
        "kind": "code",
        "description": element.description or None,
        "input_schema": element.params.model_json_schema(),
        "outcomes": element.outcome_names,
        "saves": list(element.saves),
    }


async def put_element(
    store: Store, workspace_id: str, element_id: str, body: DeclarativeElement
) -> StoredElement:
    """Create the element or add a version (Refused for a code element's id; Invalid when a
    template names an unknown filter or a condition an unknown function)."""
    if element_id in code_elements():
        raise Refused(f"{element_id!r} is a code element's id (installed with a Python package)")
    raw = body.model_dump(mode="json", by_alias=True)
    try:
        async with store.begin() as conn:
            stored = await elements.get_element(conn, workspace_id, element_id)
            return await elements.put_element(conn, workspace_id, element_id, _definition(raw, stored))
    except IntegrityError:
        # Another PUT of the same element took the version number first.
        raise Refused(f"element {element_id!r} changed meanwhile; send again") from None


def _definition(raw: dict[str, Any], stored: StoredElement | None) -> DeclarativeElement:
    """``raw`` with the stored values of masked credential headers, validated with the rules of
    documents being saved (the route's parse has no context); Invalid with the faults' paths."""
    headers = raw["request"]["headers"]
    before = SimpleNamespace(**stored.definition.request.headers) if stored is not None else None
    kept, faults = kept_secrets(headers, before, secret_headers(headers), "$.request.headers")
    if faults:
        # Header names are no plain keys: their paths quoted where they need it.
        faults = [
            (member_path("$.request.headers", p.removeprefix("$.request.headers.")), w) for p, w in faults
        ]
        raise Invalid("the element is invalid; nothing was changed", faults)
    headers.update(kept)
    try:
        return DeclarativeElement.model_validate(raw, context={STRICT_TEMPLATES: True})
    except ValidationError as error:
        faults = [
            (error_path(raw, item), item["msg"].removeprefix("Value error, ")) for item in error.errors()
        ]
        raise Invalid("the element is invalid; nothing was changed", faults) from None


async def get_element(
    store: Store, workspace_id: str, element_id: str, version: int | None = None
) -> dict[str, Any]:
    if element_id in code_elements() and version is None:
        return shown_code(element_id, code_elements()[element_id])
    async with store.connect() as conn:
        found = await elements.get_element(conn, workspace_id, element_id, version=version)
    if found is None:
        raise NotFound(f"no element {element_id!r}" + (f" version {version}" if version else ""))
    return shown_declarative(found)


async def list_elements(store: Store, workspace_id: str) -> list[dict[str, Any]]:
    """Code elements and the workspace's declarative ones (newest versions), by id."""
    async with store.connect() as conn:
        stored = await elements.list_elements(conn, workspace_id)
    shown = [shown_code(i, e) for i, e in code_elements().items()] + [shown_declarative(s) for s in stored]
    return sorted(shown, key=lambda e: str(e["id"]))


async def flows_using(
    conn: AsyncConnection, workspace_id: str, element_id: str, *, lock: bool = False
) -> list[str]:
    """The running (or draining) flows whose current version uses the element (custom steps)."""
    return await flows_with_step(
        conn,
        workspace_id,
        lambda step: isinstance(step, CustomStep) and step.element == element_id,
        lock=lock,
    )


async def delete_element(store: Store, workspace_id: str, element_id: str) -> None:
    """Delete every version: NotFound when there is none, Refused for a code element or while a
    running flow uses it."""
    if element_id in code_elements():
        raise Refused(f"{element_id!r} is a code element: uninstall its package to remove it")
    async with store.begin() as conn:
        if await elements.get_element(conn, workspace_id, element_id) is None:
            raise NotFound(f"no element {element_id!r}")
        using = await flows_using(conn, workspace_id, element_id, lock=True)
        if using:
            names = ", ".join(repr(flow_id) for flow_id in using)
            raise Refused(f"element {element_id!r} is used by running flows: {names}")
        await elements.delete_element(conn, workspace_id, element_id)


async def element_faults(conn: AsyncConnection, workspace_id: str, document: FlowDocument) -> list[FlowFault]:
    """Each custom step against its element: the element exists, its params fit the inputs
    (names, required, types of the values that are no templates) and ``next`` names outcomes it
    has; each fault with its path."""
    customs = [(i, s) for i, s in enumerate(document.steps) if isinstance(s, CustomStep)]
    if not customs:
        return []
    installed = code_elements()
    stored = await elements.element_ids(conn, workspace_id, {s.element for _, s in customs} - set(installed))
    faults: list[tuple[str, str]] = []
    for index, step in customs:
        at = f"$.steps[{index}]"
        outcomes: list[str]
        if (code := installed.get(step.element)) is not None:
            faults += code_faults(code.params, step.params, f"{at}.params")
            outcomes = code.outcome_names
        elif (declared := stored.get(step.element)) is not None:
            faults += declarative_faults(declared.definition, step.params, f"{at}.params")
            outcomes = declared.definition.outcome_names
        else:
            faults.append((f"{at}.element", f"no element {step.element!r}"))
            continue
        if isinstance(step.next, dict):
            faults += outcome_faults(outcomes, step.next, f"{at}.next", step.element)
    return [FlowFault(path, message) for path, message in faults]


async def check_flow(store: Store, workspace_id: str, document: FlowDocument) -> None:
    """Raise FlowInvalid when a custom step does not fit its element."""
    if not any(isinstance(s, CustomStep) for s in document.steps):
        return
    async with store.connect() as conn:
        faults = await element_faults(conn, workspace_id, document)
    if faults:
        raise FlowInvalid(faults)
