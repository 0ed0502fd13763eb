"""When a ``date`` trigger enters a profile: the moments its date attribute names, and which
attribute values can name a moment in a time window (the store's prefilter).

Pure functions of their arguments. DST follows flowline/clock.py: a wall time skipped by a
spring-forward jump happens at the first instant after it; a repeated one, the first time.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flowline.clock import anniversary, local_instant
from flowline.flow.triggers import DateTrigger

# A local date and the UTC instant differ by at most 14 hours; a day either side covers the
# zones, and one more the attribute's own offset (a date-time in another zone than the trigger's).
_SLACK = timedelta(days=2)


def attribute_date(value: object, tz: ZoneInfo) -> date:
    """The calendar date an attribute holds: a date (``YYYY-MM-DD``), or a date-time read in ``tz``
    when it carries an offset, as written when it does not. ValueError if it is no date."""
    if not isinstance(value, str):
        raise ValueError("not a date")
    text = value.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    moment = datetime.fromisoformat(text)
    return moment.astimezone(tz).date() if moment.tzinfo is not None else moment.date()


def _wall(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def occurrences(
    trigger: DateTrigger, value: object, tz: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[date, datetime]]:
    """The (local date, instant) pairs in [start, end) at which ``value`` enters the profile.

    The local date names the occurrence (the journey's entry): each (profile, date) enters once.
    Every year: ``days`` before / after each anniversary (29 February is 28 February in other
    years). ValueError if ``value`` is no date.
    """
    day = attribute_date(value, tz)
    wall = _wall(trigger.at)
    if trigger.every_year:
        first, last = (start - _SLACK).astimezone(tz).year, (end + _SLACK).astimezone(tz).year
        days = [anniversary(day, year) + trigger.offset for year in range(first - 1, last + 2)]
    else:
        days = [day + trigger.offset]
    found = []
    for local in days:
        moment = local_instant(local, wall, tz)
        if start <= moment < end:
            found.append((local, moment))
    return found


def candidate_prefixes(trigger: DateTrigger, start: datetime, end: datetime) -> tuple[set[str], int]:
    """Texts an attribute value may start with to have an occurrence in [start, end): full dates
    (``YYYY-MM-DD``, matched on characters 1-10) or, every year, ``MM-DD`` (characters 6-10).
    Returns the texts and the 1-based position they start at."""
    first = (start - _SLACK).date()
    count = (end + _SLACK).date().toordinal() - first.toordinal() + 1
    sources = [first + timedelta(days=n) - trigger.offset for n in range(count)]
    if not trigger.every_year:
        return {d.isoformat() for d in sources}, 1
    month_days = {d.isoformat()[5:] for d in sources}
    if "02-28" in month_days:
        month_days.add("02-29")  # on 28 February in years without a 29th
    return month_days, 6
