"""Flowline's Prometheus metrics (docs/metrics.md): one registry per process, counted where the
work happens (the API and launch/ for ingest and starts, the activities for steps, sends and
journey ends, the export batcher for records), never in workflow code.

Labels are bounded: no profile, journey, flow or workspace ids (all user-controlled); values that
come from flows or callers (exit reasons, branch names) are folded into a fixed vocabulary.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from flowline.journey import JourneyEnd, PathEntry

log = logging.getLogger(__name__)
REGISTRY: Final = CollectorRegistry(auto_describe=True)
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST

HTTP_REQUESTS = Counter(
    "flowline_http_requests",
    "HTTP requests answered by the API, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "flowline_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
EVENTS_INGESTED = Counter(
    "flowline_events_ingested",
    "Events taken by POST /v1/events: stored (new) or duplicate (an id already stored).",
    ["outcome"],
    registry=REGISTRY,
)
EVENTS_REJECTED = Counter(
    "flowline_events_rejected",
    "Events refused by POST /v1/events, each with its faults (invalid, or over a limit).",
    registry=REGISTRY,
)
JOURNEYS_STARTED = Counter(
    "flowline_journeys_started",
    "Journeys this process started in Temporal, by trigger (event, or entry: the API, "
    "add_to_flow, an audience or date schedule).",
    ["trigger"],
    registry=REGISTRY,
)
JOURNEYS_ENDED = Counter(
    "flowline_journeys_ended",
    "Journeys whose end was recorded, by status and exit reason (a fixed vocabulary).",
    ["status", "reason"],
    registry=REGISTRY,
)
STEPS = Counter(
    "flowline_steps",
    "Step visits that ended, by step type and outcome (the branch taken, folded).",
    ["type", "outcome"],
    registry=REGISTRY,
)
SENDS = Counter(
    "flowline_sends",
    "Messages by channel and outcome: sent, skipped (a rule left it out), failed (for good), "
    "retried (a provider failed for now: Temporal retries the activity).",
    ["channel", "outcome"],
    registry=REGISTRY,
)
EXPORT_RECORDS = Counter(
    "flowline_export_records",
    "Export records settled by the batcher, by destination type and outcome.",
    ["destination", "outcome"],
    registry=REGISTRY,
)

# Exit reasons the engine writes; stop_when reasons carry the event or segment after the colon.
# Anything else (a reason given to POST .../stop) is "other".
_REASONS: Final = {
    "completed",
    "exit_step",
    "control_group",
    "added_to_flow",
    "max_duration",
    "goal_reached",
    "stop_when",
    "flow stopped",
    "profile erased",
}
# Branches every flow shares (flowline/flow/graph.py, the send, call and wait steps); a branch a
# flow names itself (branch and split steps, custom elements' outcomes) counts as "branch".
_OUTCOMES: Final = {
    "next",
    "control",
    "else",
    "added",
    "failed",
    "sent",
    "skipped",
    "success",
    "client_error",
    "server_error",
    "error",
    "exit",
    "max_duration",
    "stopped",
    "completed",
    "happened",
    "changed",
    "timeout",
}
# The ledger's channels (send, notify_internal and webhook steps).
_CHANNELS: Final = {"email", "sms", "push", "in_app", "webhook"}


def reason_label(exit_reason: str) -> str:
    reason = exit_reason.split(":", 1)[0].strip()
    return reason.replace(" ", "_") if reason in _REASONS else "other"


def outcome_label(branch: str | None) -> str:
    if branch is None:
        return "open"
    return branch if branch in _OUTCOMES else "branch"


def channel_label(channel: str) -> str:
    return channel if channel in _CHANNELS else "other"


def after_commit(conn: AsyncConnection, count: Callable[[], None]) -> None:
    """Run ``count`` once ``conn``'s transaction commits (never if it rolls back), so that what a
    retried activity rolled back is not counted twice."""
    event.listen(conn.sync_connection, "commit", lambda _conn: count(), once=True)


def count_journey_end(conn: AsyncConnection, end: JourneyEnd, already_closed: Iterable[int] = ()) -> None:
    """The end and the step visits it closes, counted when its transaction commits."""
    status, reason = end.status, reason_label(end.exit_reason)
    steps = closed_steps(end.path_start, end.path, already_closed)

    def count() -> None:
        JOURNEYS_ENDED.labels(status, reason).inc()
        _count_steps(steps)

    after_commit(conn, count)


def count_steps(
    conn: AsyncConnection, start: int, path: list[PathEntry], already_closed: Iterable[int] = ()
) -> None:
    steps = closed_steps(start, path, already_closed)
    if steps:
        after_commit(conn, lambda: _count_steps(steps))


def closed_steps(start: int, path: list[PathEntry], already_closed: Iterable[int]) -> list[tuple[str, str]]:
    """(type, outcome) of each entry left, except those whose seq was written left before: a path
    write repeats the entry the last write ended with (it may have been open then)."""
    skip = set(already_closed)
    return [
        (entry.type, outcome_label(entry.branch))
        for seq, entry in enumerate(path, start)
        if entry.left_at is not None and seq not in skip
    ]


def _count_steps(steps: list[tuple[str, str]]) -> None:
    for step_type, outcome in steps:
        STEPS.labels(step_type, outcome).inc()


def count_send(conn: AsyncConnection | None, channel: str, outcome: str) -> None:
    """One message's outcome; with ``conn``, once its transaction commits."""

    def count() -> None:
        SENDS.labels(channel_label(channel), outcome).inc()

    if conn is None:
        count()
    else:
        after_commit(conn, count)


@contextlib.contextmanager
def serving(host: str, port: int) -> Iterator[None]:
    """These metrics on http://host:port/metrics while the block runs (the worker, the export
    batcher: processes without an HTTP server of their own); nothing when ``port`` is 0."""
    if not port:
        yield
        return
    server, thread = start_http_server(port, host, registry=REGISTRY)
    log.info("metrics on http://%s:%d/metrics", host, port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def exposition() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)
