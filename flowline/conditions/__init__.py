"""The rule language shared by segments, branch rules and trigger filters (docs/conditions.md).

``operators`` names every operator once; ``rules`` holds the models (one union ``Condition``);
``events`` the event conditions shared by rules, waits, stops and goals (and where their
meanings differ); ``property_filter`` filters event properties (``where``). ``evaluate`` gives
a rule's meaning for one profile in memory, ``facts`` what that evaluation reads, ``sql`` the
same meaning for a whole audience."""

from flowline.conditions.property_filter import PropertyFilter, matches_all

__all__ = ["PropertyFilter", "matches_all"]
