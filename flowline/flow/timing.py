"""When pauses, date waits and call windows end, given the current time and the person's time zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flowline.clock import anniversary, local_instant, next_time_of_day, next_weekday_time
from flowline.flow.base import WEEKDAYS
from flowline.flow.steps import PauseStep, WaitForDateStep
from flowline.flow.steps.waiting import WeekdayTime
from flowline.flow.windows import CallWindow


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


def _moment(value: str, wall: time, tz: ZoneInfo, year: int | None) -> datetime:
    """The instant a date attribute names (in ``year`` when given: every-year dates)."""
    text = value.strip()
    if len(text) == 10:  # a date: at ``wall`` on that day
        day = date.fromisoformat(text)
        return local_instant(anniversary(day, year) if year else day, wall, tz)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        day = anniversary(moment.date(), year) if year else moment.date()
        return local_instant(day, moment.time(), tz)
    if year:
        local = moment.astimezone(tz)
        return local_instant(anniversary(local.date(), year), local.time().replace(tzinfo=None), tz)
    return moment


def date_wait_end(step: WaitForDateStep, value: str, now: datetime, tz: ZoneInfo) -> datetime:
    """When a wait_for_date step is over for the date ``value`` (ValueError if it is no date)."""
    wall = _wall(step.at) if step.at else time(0, 0)

    def target(year: int | None) -> datetime:
        moment = _moment(value, wall, tz, year)
        if step.is_in is not None:
            return moment - step.is_in
        if step.was is not None:
            return moment + step.was
        days = -1 if step.is_tomorrow else 1 if step.was_yesterday else 0
        local = moment.astimezone(tz)
        return local_instant(local.date() + timedelta(days=days), local.time().replace(tzinfo=None), tz)

    if not step.every_year:
        return max(target(None), now)
    year = now.astimezone(tz).year
    for candidate in (year - 1, year, year + 1, year + 2):
        end = target(candidate)
        if end >= now:
            return end
    raise AssertionError("unreachable: an every-year date recurs within a year")  # pragma: no cover


def window_opens(window: CallWindow, now: datetime, tz: ZoneInfo) -> datetime:
    """``now`` if a call may go out now, else when ``window`` next opens (in ``tz``)."""
    start, end = _wall(window.from_), _wall(window.to)
    overnight = end < start
    today = now.astimezone(tz).date()
    upcoming = []
    # From yesterday (an overnight window may still be open) to a week ahead.
    for offset in range(-1, 8):
        day = today + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        opens = local_instant(day, start, tz)
        closes = local_instant(day + timedelta(days=1) if overnight else day, end, tz)
        if opens <= now < closes:
            return now
        if opens > now:
            upcoming.append(opens)
    return min(upcoming)
