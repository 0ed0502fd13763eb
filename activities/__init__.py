"""Temporal activities: every side effect a journey has (sends, webhooks, calls, bookkeeping)."""

from activities.add_to_flow import FlowActivities
from activities.call_api import CallApiActivities
from activities.conditions import ConditionActivities
from activities.custom_elements import CustomElementActivities
from activities.entries import EntryActivities
from activities.exports import ExportActivities
from activities.journeys import JourneyActivities
from activities.profile_steps import ProfileStepActivities
from activities.segment_clock import SegmentClockActivities
from activities.sends import SendActivities

__all__ = [
    "CallApiActivities",
    "ConditionActivities",
    "CustomElementActivities",
    "EntryActivities",
    "ExportActivities",
    "FlowActivities",
    "JourneyActivities",
    "ProfileStepActivities",
    "SegmentClockActivities",
    "SendActivities",
]
