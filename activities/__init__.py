"""Temporal activities: every side effect a journey has (sends, webhooks, bookkeeping)."""

from activities.journeys import JourneyActivities
from activities.profile_steps import ProfileStepActivities

__all__ = ["JourneyActivities", "ProfileStepActivities"]
