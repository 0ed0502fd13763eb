"""The flow language: documents (SPEC §3), their validation and their step graph."""

from flowline.flow.document import FlowDocument
from flowline.flow.steps import Step
from flowline.flow.validation import FlowFault, FlowInvalid, parse_flow

__all__ = ["FlowDocument", "FlowFault", "FlowInvalid", "Step", "parse_flow"]
