"""Temporal activities: every side effect a journey has (sends, webhooks, calls, bookkeeping)."""

from activities.call_api import CallApiActivities
from activities.journeys import JourneyActivities

__all__ = ["CallApiActivities", "JourneyActivities"]
