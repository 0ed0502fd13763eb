"""When steps may act: delivery windows and rates, shared by call_api, send and the flow's
settings (``window``, ``rate``, ``quiet_hours``, ``send_rate``); flowline/flow/timing.py computes
when a window opens."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from flowline.flow.base import TimeOfDay, Weekday, check_zone
from flowline.strict import Strict

_EVERY_DAY: tuple[Weekday, ...] = get_args(Weekday)


class CallWindow(Strict):
    """When calls may go out: on ``days`` between ``from`` and ``to`` (a window ending before it
    starts runs past midnight, counted to the day it opens). Times are in this ``timezone`` when
    given, else the person's zone (their ``timezone`` attribute, else the workspace's), else UTC."""

    days: list[Weekday] = Field(default_factory=lambda: list(_EVERY_DAY), min_length=1, max_length=7)
    from_: TimeOfDay = Field(alias="from")
    to: TimeOfDay
    timezone: str | None = None

    @model_validator(mode="after")
    def _sensible(self) -> CallWindow:
        if self.from_ == self.to:
            raise ValueError("'from' and 'to' are the same time: the window would be empty")
        if len(set(self.days)) != len(self.days):
            raise ValueError("each day is listed once")
        check_zone(self.timezone)
        return self


class CallRate(Strict):
    """At most ``max`` calls per calendar ``per`` (UTC) from this step, over every journey."""

    max: int = Field(ge=1, le=1_000_000)
    per: Literal["minute", "hour", "day"]

    @property
    def period_seconds(self) -> int:
        return {"minute": 60, "hour": 3600, "day": 86400}[self.per]
