"""What every step activity shares: the data its templates see, and the journey's end recorded in
the step's own transaction when only the end follows the step (see EndingStepVisit)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.exceptions import ApplicationError

from flowline import metrics
from flowline.journey import JourneyEnd, JourneyRef, PathEntry, TemplateScope
from flowline.json_values import nulled
from flowline.store import journey_steps, journeys, profiles
from flowline.store.database import utcnow

log = logging.getLogger(__name__)


async def template_context(
    conn: AsyncConnection, ref: JourneyRef, scope: TemplateScope, *, load_profile: bool = True
) -> dict[str, Any]:
    """What templates see: the profile (loaded unless not needed), event, variables, flow, journey."""
    attributes: dict[str, Any] = {}
    if load_profile:
        profile = await profiles.get_profile(conn, ref.workspace_id, ref.profile_id)
        # A NaN / Infinity stored before the store refused them reads as null (as the API shows it):
        # none goes out in a webhook or call body, nor into a template or expression.
        attributes = dict(nulled(profile["attributes"])) if profile else {}
    return {
        "profile": {**attributes, "id": ref.profile_id},
        "event": scope.event.get("properties", {}) | {"name": scope.event.get("name")},
        "vars": scope.vars,
        "flow": scope.flow,
        "journey": {"id": ref.journey_id},
    }


async def record_end_if_asked(
    conn: AsyncConnection, end: JourneyEnd | None, branch: str, error: str | None = None
) -> bool:
    """Record the journey's end in the step's own transaction (idempotent, like the step), the
    step's visit left by ``branch``."""
    if end is None:
        return False
    await record_end(conn, end.after_step(branch, utcnow(), error))
    return True


async def record_end(conn: AsyncConnection, end: JourneyEnd) -> None:
    """The journey's record closed and its path's last entries written, in one transaction."""
    if not await end_recorded(conn, end):
        raise not_recorded_yet(end)


async def end_recorded(conn: AsyncConnection, end: JourneyEnd) -> bool:
    """``record_end`` that answers False, having written nothing, when the journey's record is
    not there yet. The end and the visits it closes are counted once the transaction commits."""
    # Read first, for the metrics: an end recorded again (a retry whose first attempt committed)
    # is not counted again.
    before = await journeys.status_of(conn, end.journey.journey_id)
    if not await journeys.record_end(conn, end):
        return False
    await record_path(conn, end.journey, end.path_start, end.path, end=end, repeated=before != "running")
    return True


async def record_path(
    conn: AsyncConnection,
    ref: JourneyRef,
    start: int,
    path: list[PathEntry],
    *,
    end: JourneyEnd | None = None,
    repeated: bool = False,
) -> None:
    """Path entries written (journey_steps), the visits they close counted (flowline/metrics.py)
    unless the end was ``repeated``."""
    if repeated:
        await journey_steps.record_steps(conn, ref, start, path)
        return
    seen: set[int] = set()
    if path:
        seen = await journey_steps.left_before(conn, ref.journey_id, start, len(path))
        await journey_steps.record_steps(conn, ref, start, path)
    if end is None:
        metrics.count_steps(conn, start, path, seen)
        return
    metrics.count_journey_end(conn, end, seen)
    # DEBUG: a line per journey is more than most operators want (the metrics count them). The
    # reason as the metrics fold it: a stop's reason is the caller's free text.
    log.debug("journey ended %s (%s)", end.status, metrics.reason_label(end.exit_reason))


def not_recorded_yet(end: JourneyEnd) -> ApplicationError:
    # Its record commits with the transaction that started the journey: retry until it shows.
    return ApplicationError(
        f"journey {end.journey.journey_id} is not recorded yet", type="JourneyNotRecordedYet"
    )
