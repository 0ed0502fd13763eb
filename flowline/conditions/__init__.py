"""The rule language shared by segments, branch rules and trigger filters (SPEC §4)."""

from flowline.conditions.property_filter import PropertyFilter, matches_all

__all__ = ["PropertyFilter", "matches_all"]
