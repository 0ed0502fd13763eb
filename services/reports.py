"""Delivery reports from providers (delivered, failed, bounced, opened, ...) recorded as the
channel events journeys listen to (flowline/channels/feedback.py)."""

from __future__ import annotations

import logging
from datetime import datetime

from flowline.channels.feedback import FeedbackKind, record_feedback
from flowline.store.database import Store
from launch.journey_start import JourneyStartFailed
from launch.routing import JourneyLauncher

log = logging.getLogger(__name__)


async def record_report(
    store: Store,
    launcher: JourneyLauncher,
    delivery_id: str,
    kind: FeedbackKind | None,
    at: datetime,
    detail: str | None = None,
) -> bool:
    """Record what a provider reports about a delivery; True when it is news (False: the same
    report came before, or ``kind`` is None, a status that raises no event). ``detail``: a
    click's URL, else the reason. The event is routed to the journeys that listen; if Temporal
    refuses, it stays stored and the sweeper routes it (the provider need not report again)."""
    if kind is None:
        return False
    try:
        extra = {} if detail is None else {"url" if kind == "clicked" else "reason": detail}
        return await record_feedback(store, launcher, delivery_id=delivery_id, kind=kind, at=at, detail=extra)
    except JourneyStartFailed as error:
        # The event is stored: the sweeper routes it.
        log.warning("report on %s not routed yet (the sweeper will): %s", delivery_id, error)
        return True
