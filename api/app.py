"""The FastAPI application. ``uvicorn --factory api.app:create_app`` serves it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter
from starlette.routing import BaseRoute
from temporalio.client import Client

from api import console, docs_pages, errors, links, metrics, responses
from api.body import BodyLimit, CheckedRoute
from api.deps import Services
from api.rate_limits import RateLimit, RateLimits
from api.routes import (
    attributes,
    codec,
    destinations,
    elements,
    events,
    flow_lifecycle,
    flow_stats,
    flows,
    health,
    inbox,
    journeys,
    keys,
    profile_batches,
    profiles,
    reports,
    segments,
    tracking,
    workspace,
)
from api.schemas import SELF_PARSED_BODIES
from flowline import logs
from flowline.flow.document import FlowDocument
from flowline.secret_box import NO_KEYS_WARNING
from flowline.settings import Settings, get_settings
from flowline.store.database import Store
from launch.client import connect
from launch.routing import JourneyLauncher
from services.api_keys import KeyCheck

log = logging.getLogger("flowline.sweeper")
SWEEP_BATCH = 500  # JourneyLauncher.sweep's default limit


async def _sweep_forever(launcher: JourneyLauncher, settings: Settings) -> None:
    """Route events left unrouted (see JourneyLauncher.sweep); errors are logged and retried."""
    while True:
        await asyncio.sleep(settings.sweep_seconds)
        if launcher.behind.pending():
            continue  # this process is routing an import's changes: the sweeper would race it
        try:
            # Batch after batch until the backlog is gone (flow_entered / flow_exited events of
            # every journey come this way).
            while routed := await launcher.sweep(
                older_than=timedelta(seconds=settings.sweep_after_seconds),
                engine_older_than=timedelta(seconds=settings.sweep_engine_after_seconds),
            ):
                log.info("swept %d unrouted events", routed)
                if routed < SWEEP_BATCH:
                    break
        except Exception:  # the next sweep tries again
            log.exception("sweeping unrouted events failed")


def unchecked_routes(app: FastAPI) -> list[str]:
    """Routes whose bodies would skip api/body.py (a router made without its route class)."""
    found: list[str] = []
    # FastAPI (0.165) keeps an included router as one entry holding the router: walk into it.
    pending: list[list[BaseRoute]] = [list(app.routes)]
    while pending:
        for route in pending.pop():
            included = getattr(route, "original_router", None)
            if isinstance(included, APIRouter):
                pending.append(list(included.routes))
            elif isinstance(route, APIRoute) and not isinstance(route, CheckedRoute):
                found.append(route.path)  # the path carries its router's prefix
    return found


def _own_validation_answers(schema: dict[str, Any]) -> None:
    """FastAPI declares its own 422 body (``detail``) on every route with parameters; ours is
    ``{message, faults}`` (api/errors.py), as api/responses.py declares it."""
    ours = {
        "description": responses.errors(422)[422]["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Invalid"}}},
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None and "HTTPValidationError" in json.dumps(answer):
                operation["responses"]["422"] = ours
    for fastapi_own in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(fastapi_own, None)


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, temporal: Client | None = None
) -> FastAPI:
    """Tests pass their own store and Temporal client; otherwise both come from ``settings``.
    Called without settings (uvicorn's factory: a process of its own), it sets up the process's
    logging (JSON lines or plain: FLOWLINE_LOG_FORMAT), so that the sweeper's lines show."""
    if settings is None:
        settings = get_settings()
        logs.configure("api", settings.log_format, settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store is None
        active_store = store or Store(
            settings.database_url, secret_keys=settings.payload_keys.get_secret_value()
        )
        if not active_store.secrets.seals:
            logging.getLogger("flowline.secrets").warning(NO_KEYS_WARNING)
        client = temporal or await connect(settings)
        app.state.services = Services(
            settings=settings,
            store=active_store,
            temporal=client,
            launcher=JourneyLauncher(
                active_store, client, settings.task_queue, flow_cache_seconds=settings.flow_cache_seconds
            ),
            keys=KeyCheck(active_store),
        )
        sweeper = (
            asyncio.create_task(_sweep_forever(app.state.services.launcher, settings))
            if settings.sweep_seconds > 0
            else None
        )
        try:
            yield
        finally:
            await app.state.services.launcher.behind.close()
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if own_store:
                await active_store.dispose()

    app = FastAPI(
        title="Flowline",
        version="0.1.0",
        description="Automated customer journeys on Temporal. "
        "Authenticate with `Authorization: Bearer <API key>`.",
        lifespan=lifespan,
        docs_url=None,  # api/docs_pages.py serves both pages with their assets
        redoc_url=None,
    )
    app.state.settings = settings
    docs_pages.install(app)
    console.install(app, settings)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.rate_limit_per_second > 0:  # outside BodyLimit: refused before anything is read
        limits = RateLimits(settings.rate_limit_per_second, settings.rate_limit_burst)
        app.add_middleware(RateLimit, limits=limits)
    # Outside the body and rate limits, so that their 413s and 429s are counted too.
    metrics.install(app, endpoint=settings.metrics_endpoint)
    for module in (
        flows,
        flow_lifecycle,
        flow_stats,
        events,
        profile_batches,
        profiles,
        attributes,
        journeys,
        workspace,
        keys,
        segments,
        destinations,
        elements,
        inbox,
        reports,
        tracking,
        health,
    ):
        app.include_router(module.router)
    if settings.codec_endpoint:  # decrypts for whoever reaches it: only where chosen
        app.include_router(codec.router_for(settings))
    unchecked = unchecked_routes(app)
    if unchecked:  # every body passes api/body.py's checks: a router without them is a bug
        raise RuntimeError(f"routes without route_class=CheckedRoute: {unchecked}")

    # Publish the flow document's JSON Schema for editors and the PUT /v1/flows body.
    def openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            flow_schema = FlowDocument.model_json_schema(
                by_alias=True, ref_template="#/components/schemas/{model}"
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(flow_schema.pop("$defs", {}))
            components["FlowDocument"] = flow_schema
            # Bodies a route parses itself name their schema by reference: without the component
            # ReDoc draws nothing ("Invalid reference token").
            for model in SELF_PARSED_BODIES:
                body_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(body_schema.pop("$defs", {}))
                components[model.__name__] = body_schema
            _own_validation_answers(schema)
            links.add_links(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # Last: the outermost middleware, so that a request's span covers every other (docs/tracing.md).
    from api import tracing

    tracing.install(app, settings)
    return app
