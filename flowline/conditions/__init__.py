"""The rule language shared by segments, branch rules and trigger filters (SPEC §4).

``rules`` holds the models (one union ``Condition``), ``evaluate`` their meaning for one
profile in memory, ``facts`` what that evaluation reads; ``property_filter`` filters event
properties (``where``)."""

from flowline.conditions.property_filter import PropertyFilter, matches_all

__all__ = ["PropertyFilter", "matches_all"]
