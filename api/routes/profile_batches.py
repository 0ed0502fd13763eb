"""POST /v1/profiles/batch: up to 1,000 profiles merged in one call (imports); each invalid entry is
reported by its index with the path of each fault, the valid ones kept."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from api.body import BatchRoute, json_body
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, Invalid, errors
from api.schemas import (
    MAX_PROFILES_PER_CALL,
    Fault,
    ProfileEntry,
    ProfileResult,
    ProfilesBatchIn,
    ProfilesBatchResult,
)
from flowline.document_paths import error_path
from flowline.json_values import JsonLimits, value_faults
from flowline.store.profile_batches import BatchEntry
from services import profiles as profile_use_cases

router = APIRouter(route_class=BatchRoute, prefix="/v1/profiles", tags=["profiles"], responses=AUTHENTICATED)

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProfilesBatchIn"}}},
    }
}
# 422: the request is unreadable or its settings invalid (faults), or every entry is invalid
# (each by its index).
_ANSWERS: dict[int | str, dict[str, Any]] = {
    **errors(400, 413, 422),
    422: {**errors(422)[422], "model": Invalid | ProfilesBatchResult},
}
_ADAPTER = TypeAdapter(ProfilesBatchIn)
Checked = tuple[ProfilesBatchIn, list[tuple[int, BatchEntry]], list[ProfileResult]]


def _entry(item: ProfileEntry) -> BatchEntry:
    return BatchEntry(item.id, item.attributes)


def _all_valid(raw: bytes, limits: JsonLimits) -> Checked | None:
    """The usual batch, parsed and checked in pydantic-core at once; None when some part is
    invalid (then each entry is checked on its own)."""
    try:
        body = _ADAPTER.validate_json(raw)
    except ValidationError:
        return None
    sent = [{"id": p.id, "attributes": p.attributes} for p in body.profiles]
    if value_faults(sent, limits, "$.profiles", depth=1):
        return None
    return body, [(i, _entry(p)) for i, p in enumerate(body.profiles)], []


def _shown_id(item: Any, limits: JsonLimits) -> str | None:
    found = item.get("id") if isinstance(item, dict) else None
    return found if isinstance(found, str) and not value_faults(found, limits) else None


def _one_by_one(body: Any, limits: JsonLimits) -> Checked:
    """The settings checked as a whole (a fault there refuses the request), then each entry."""
    if not isinstance(body, dict):
        raise ApiError(422, "the request is invalid", faults=[{"path": "$", "message": "expected an object"}])
    items = body.get("profiles")
    if isinstance(items, list) and len(items) > MAX_PROFILES_PER_CALL:
        raise ApiError(413, f"{len(items)} profiles in one call; send at most {MAX_PROFILES_PER_CALL}")
    try:
        settings = ProfilesBatchIn.model_validate(
            {**body, "profiles": []} if isinstance(items, list) else body
        )
    except ValidationError as error:
        found = [{"path": error_path(body, e), "message": e["msg"]} for e in error.errors()]
        raise ApiError(422, "the request is invalid; nothing was changed", faults=found) from None
    assert isinstance(items, list)
    valid: list[tuple[int, BatchEntry]] = []
    rejected: list[ProfileResult] = []
    for index, item in enumerate(items):
        at = f"$.profiles[{index}]"
        faults: list[Fault] = [
            Fault(path=f.path, message=f.message) for f in value_faults(item, limits, at, depth=2)
        ]
        if not faults:
            try:
                valid.append((index, _entry(ProfileEntry.model_validate(item))))
                continue
            except ValidationError as error:
                faults = [
                    Fault(
                        path=error_path(body, {**e, "loc": ("profiles", index, *e["loc"])}), message=e["msg"]
                    )
                    for e in error.errors()
                ]
        shown = _shown_id(item, limits)
        rejected.append(ProfileResult(index=index, id=shown, outcome="rejected", faults=faults))
    return settings, valid, rejected


@router.post(
    "/batch",
    response_model=ProfilesBatchResult,
    responses=_ANSWERS,
    openapi_extra=_BODY,
    summary="Create or merge up to 1,000 profiles (imports)",
)
async def post_profiles_batch(request: Request, workspace: Workspace, svc: Svc) -> Any:
    """Each entry is merged as PUT /v1/profiles/{id} merges, matched by `id` or by
    `attributes.email`, in one transaction; each answer says created, updated, unchanged or
    rejected (with the path of each fault; nothing of a rejected entry is written). Changes start
    profile_change flows after the answer unless `triggers` is false. 422 when every entry is
    rejected."""
    limits = svc.settings.json_limits()
    checked = _all_valid(await request.body(), limits)
    if checked is None:
        checked = _one_by_one(await json_body(request), limits)
    body, valid, rejected = checked
    outcomes = await profile_use_cases.merge_profiles(
        svc.store,
        svc.launcher,
        workspace,
        valid,
        match=body.match,
        blank=body.blank,
        dry_run=body.dry_run,
        triggers=body.triggers,
        max_attributes=svc.settings.max_profile_attributes,
    )
    # Plain dicts in the shape of ProfilesBatchResult: a model per entry cost a tenth of a batch.
    results: list[dict[str, Any]] = [r.model_dump(mode="json") for r in rejected]
    results += [
        {
            "index": o.index,
            "id": o.profile_id,
            "outcome": o.outcome,
            "faults": [{"path": p, "message": m} for p, m in o.faults],
        }
        for o in outcomes
    ]
    results.sort(key=lambda r: int(r["index"]))
    counts = dict.fromkeys(("created", "updated", "unchanged", "rejected"), 0)
    for result in results:
        counts[result["outcome"]] += 1
    answer = {**counts, "dry_run": body.dry_run, "results": results}
    status = 422 if results and counts["rejected"] == len(results) else 200
    return JSONResponse(answer, status_code=status)
