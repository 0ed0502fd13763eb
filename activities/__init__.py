"""Temporal activities: every side effect a journey has (sends, webhooks, bookkeeping)."""

from activities.add_to_flow import FlowActivities
from activities.conditions import ConditionActivities
from activities.journeys import JourneyActivities

__all__ = ["ConditionActivities", "FlowActivities", "JourneyActivities"]
