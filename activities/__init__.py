"""Temporal activities: every side effect a journey has (sends, webhooks, calls, bookkeeping)."""

from activities.add_to_flow import FlowActivities
from activities.call_api import CallApiActivities
from activities.conditions import ConditionActivities
from activities.journeys import JourneyActivities

__all__ = ["CallApiActivities", "ConditionActivities", "FlowActivities", "JourneyActivities"]
