"""Calendar arithmetic across DST changes, on several zones (property-based)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowline.clock import (
    anniversary,
    local_instant,
    next_anniversary,
    next_time_of_day,
    next_weekday_time,
    zone,
)

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/Santiago", "UTC"]
instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2032, 12, 31), timezones=st.just(UTC)
)
walls = st.times().map(lambda t: t.replace(microsecond=0))


def wall_of(instant: datetime, tz: ZoneInfo) -> time:
    return instant.astimezone(tz).time().replace(tzinfo=None)


@settings(max_examples=300, deadline=None)
@given(after=instants, wall=walls, name=st.sampled_from(ZONES))
def test_next_time_of_day_is_the_first_matching_instant(after: datetime, wall: time, name: str) -> None:
    tz = ZoneInfo(name)
    result = next_time_of_day(after, wall, tz)
    assert result >= after
    assert result - after <= timedelta(days=1, hours=1)
    local = result.astimezone(tz)
    if wall_of(result, tz) != wall:
        # Only in a spring-forward gap: then it is the first instant after the jump.
        assert local.utcoffset() != (result - timedelta(hours=3)).astimezone(tz).utcoffset()
        assert (
            wall_of(result - timedelta(minutes=1), tz) < wall < wall_of(result, tz)
            or wall_of(result, tz) > wall
        )
    # Nothing earlier qualifies: the same wall time a day earlier is before ``after``.
    earlier_day = local.date() - timedelta(days=1)
    assert local_instant(earlier_day, wall, tz) < after


@settings(max_examples=200, deadline=None)
@given(after=instants, wall=walls, weekday=st.integers(0, 6), name=st.sampled_from(ZONES))
def test_next_weekday_time(after: datetime, wall: time, weekday: int, name: str) -> None:
    tz = ZoneInfo(name)
    result = next_weekday_time(after, weekday, wall, tz)
    assert result >= after
    assert result - after <= timedelta(days=7, hours=1)
    assert result.astimezone(tz).weekday() == weekday


def test_spring_forward_gap_berlin() -> None:
    tz = ZoneInfo("Europe/Berlin")  # 2026-03-29: 02:00 CET jumps to 03:00 CEST
    result = next_time_of_day(datetime(2026, 3, 28, 23, 0, tzinfo=UTC), time(2, 30), tz)
    assert result == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert result.astimezone(tz).time() == time(3, 0)


def test_fall_back_takes_the_first_of_two() -> None:
    tz = ZoneInfo("America/New_York")  # 2026-11-01: 01:30 happens at 05:30 UTC and at 06:30 UTC
    result = next_time_of_day(datetime(2026, 11, 1, 0, 0, tzinfo=UTC), time(1, 30), tz)
    assert result == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_a_day_across_dst_keeps_the_wall_clock() -> None:
    tz = ZoneInfo("Europe/Berlin")
    before = next_time_of_day(datetime(2026, 3, 28, 0, 0, tzinfo=UTC), time(9, 0), tz)
    after = next_time_of_day(before + timedelta(seconds=1), time(9, 0), tz)
    assert after - before == timedelta(hours=23)  # the short day
    assert wall_of(after, tz) == time(9, 0)


def test_every_year_dates_and_february_29() -> None:
    assert anniversary(date(2000, 2, 29), 2027) == date(2027, 2, 28)
    assert anniversary(date(2000, 2, 29), 2028) == date(2028, 2, 29)
    tz = ZoneInfo("Asia/Kolkata")
    result = next_anniversary(datetime(2027, 3, 1, tzinfo=UTC), date(1992, 2, 29), time(10, 0), tz)
    assert result.astimezone(tz) == datetime(2028, 2, 29, 10, 0, tzinfo=tz)


def test_zone_falls_back_in_order() -> None:
    assert zone("Mars/Olympus", "Europe/Berlin").key == "Europe/Berlin"
    assert zone(None, "", "bogus").key == "UTC"
    assert zone("America/New_York", "Europe/Berlin").key == "America/New_York"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        next_time_of_day(datetime(2026, 1, 1), time(9, 0), ZoneInfo("UTC"))


def _transitions(tz: ZoneInfo, year: int) -> list[tuple[datetime, timedelta]]:
    """(instant, offset change) of each change of ``tz``'s UTC offset in ``year``, to the second."""
    found = []
    instant = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    while instant < end:
        step = instant + timedelta(hours=1)
        before, after = instant.astimezone(tz).utcoffset(), step.astimezone(tz).utcoffset()
        assert before is not None and after is not None
        if before != after:
            low, high = instant, step
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if middle.astimezone(tz).utcoffset() == before else (low, middle)
            found.append((high, after - before))
        instant = step
    return found


@pytest.mark.parametrize("name", [z for z in ZONES if z not in ("UTC", "Asia/Kolkata")])
def test_wall_times_inside_each_gap_happen_at_the_jump_and_repeats_the_first_time(name: str) -> None:
    tz = ZoneInfo(name)
    changes = _transitions(tz, 2026)
    assert changes, "the zone changes its offset in 2026"
    for jump, change in changes:
        local_before = (jump - timedelta(seconds=1)).astimezone(tz).replace(tzinfo=None)
        if change > timedelta(0):  # spring forward: the skipped half hour
            inside = local_before + timedelta(minutes=30)
            result = next_time_of_day(jump - timedelta(hours=6), inside.time(), tz)
            assert result == jump
        else:  # fall back: the repeated wall time happens the first time
            repeated = (jump + timedelta(minutes=10)).astimezone(tz)
            result = next_time_of_day(jump - timedelta(hours=6), repeated.time().replace(tzinfo=None), tz)
            assert result == jump + timedelta(minutes=10) + change
