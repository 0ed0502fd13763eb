"""When a pause step ends, given the current time and the person's time zone."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from flowline.clock import next_time_of_day, next_weekday_time
from flowline.flow.model import WEEKDAYS, PauseStep, WeekdayTime


def _wall(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def pause_end(step: PauseStep, now: datetime, tz: ZoneInfo) -> datetime:
    """The instant the pause is over (never before ``now``)."""
    if step.for_ is not None:
        end = now + step.for_
        return next_time_of_day(end, _wall(step.until_time), tz) if step.until_time else end
    if isinstance(step.until, WeekdayTime):
        return next_weekday_time(now, WEEKDAYS.index(step.until.weekday), _wall(step.until.time), tz)
    if isinstance(step.until, datetime):
        exact = step.until if step.until.tzinfo is not None else step.until.replace(tzinfo=tz)
        return max(exact, now)
    raise ValueError("a pause takes either 'for' or 'until'")  # the model already refuses this
