"""Calendar arithmetic for journeys: times of day, weekdays and every-year dates in a person's
time zone, correct across DST changes. Pure functions of their arguments, so the workflow can
call them with ``workflow.now()`` and stay deterministic (zone rules come from tzdata).

Rules at DST changes, the ones a person would expect from a calendar:
- a wall time that does not exist that day (clocks jump forward over it) happens at the first
  instant after the jump (02:30 on a spring-forward night in Berlin is 03:00 CEST);
- a wall time that happens twice (clocks fall back) happens the first time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "UTC"
EARLIEST = datetime.min.replace(tzinfo=UTC)


def since(now: datetime, span: timedelta) -> datetime:
    """The start of the look-back ``now - span`` ("within 30d"); the earliest time there is when
    the span reaches before year 1 (``within: 428433922009s``): such a window holds all of time,
    it does not fail."""
    try:
        return now - span
    except OverflowError:
        return EARLIEST


def zone(*names: str | None) -> ZoneInfo:
    """The first valid IANA zone of ``names`` (profile, then workspace, ...), else UTC."""
    for name in names:
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file
                continue
    return ZoneInfo(DEFAULT_ZONE)


def local_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The instant (UTC) at which ``day`` ``wall`` happens in ``tz``, by the rules above."""
    naive = datetime.combine(day, wall.replace(tzinfo=None))
    first = naive.replace(tzinfo=tz, fold=0)
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) == naive:
        return as_utc  # exists (fold=0 is the first of two when it is ambiguous)
    # In a gap. fold=1 reads the wall time with the offset from after the jump, which lands
    # before the gap; fold=0 with the offset from before it, which lands after the gap. The jump
    # lies between them: find the first instant whose wall time is past ``wall``.
    before = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    after = as_utc
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) / 2
        if middle.astimezone(tz).replace(tzinfo=None) > naive:
            after = middle
        else:
            before = middle
    # Transitions fall on whole seconds: the jump is the earliest whole second still past ``wall``.
    result = after.replace(microsecond=0)
    while (result - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None) > naive:
        result -= timedelta(seconds=1)
    return result


def next_time_of_day(after: datetime, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant at or after ``after`` when the clock in ``tz`` shows ``wall``."""
    _aware(after)
    day = after.astimezone(tz).date()
    for offset in range(3):
        candidate = local_instant(day + timedelta(days=offset), wall, tz)
        if candidate >= after:
            return candidate
    raise AssertionError("unreachable: a wall time recurs within two days")  # pragma: no cover


def next_weekday_time(after: datetime, weekday: int, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant at or after ``after`` that is ``weekday`` (Monday=0) at ``wall`` in ``tz``."""
    _aware(after)
    if not 0 <= weekday <= 6:
        raise ValueError("weekday is 0 (Monday) to 6 (Sunday)")
    day = after.astimezone(tz).date()
    for offset in range(15):
        candidate_day = day + timedelta(days=offset)
        if candidate_day.weekday() != weekday:
            continue
        candidate = local_instant(candidate_day, wall, tz)
        if candidate >= after:
            return candidate
    raise AssertionError("unreachable: a weekday recurs within two weeks")  # pragma: no cover


def anniversary(day: date, year: int) -> date:
    """``day`` in ``year`` for every-year dates; 29 February is 28 February in other years."""
    try:
        return day.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def next_anniversary(after: datetime, day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The first instant at or after ``after`` that is ``day``'s anniversary at ``wall`` in ``tz``."""
    _aware(after)
    year = after.astimezone(tz).year
    for candidate_year in (year, year + 1, year + 2):
        candidate = local_instant(anniversary(day, candidate_year), wall, tz)
        if candidate >= after:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def _aware(value: datetime) -> None:
    if value.tzinfo is None:
        raise ValueError("naive datetime: give an aware one (workflow.now() is)")
