"""The base of every model of a document users write (flows, conditions, segments)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown fields are faults: a typo in a flow is reported with its path, not ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
