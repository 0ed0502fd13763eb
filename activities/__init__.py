"""Temporal activities: every side effect a journey has (sends, webhooks, bookkeeping)."""

from activities.conditions import ConditionActivities
from activities.journeys import JourneyActivities

__all__ = ["ConditionActivities", "JourneyActivities"]
