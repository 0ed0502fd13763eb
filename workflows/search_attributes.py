"""Typed keys of the search attributes in ``flowline.journey.SEARCH_ATTRIBUTES``."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

WORKSPACE_ID = SearchAttributeKey.for_keyword("WorkspaceId")
FLOW_ID = SearchAttributeKey.for_keyword("FlowId")
FLOW_VERSION = SearchAttributeKey.for_int("FlowVersion")
PROFILE_ID = SearchAttributeKey.for_keyword("ProfileId")
STEP_ID = SearchAttributeKey.for_keyword("StepId")
