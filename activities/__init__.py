"""Temporal activities: every side effect a journey has (sends, webhooks, bookkeeping)."""

from activities.add_to_flow import FlowActivities
from activities.journeys import JourneyActivities
from activities.profile_steps import ProfileStepActivities

__all__ = ["FlowActivities", "JourneyActivities", "ProfileStepActivities"]
