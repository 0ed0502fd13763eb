"""The base of every model a journey exchanges (input, state, signals, activity requests)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    # A field nobody declared is a bug (or a payload of another version): refused, never dropped.
    model_config = ConfigDict(extra="forbid")
