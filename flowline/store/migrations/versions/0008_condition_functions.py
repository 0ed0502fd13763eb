"""PostgreSQL functions for date conditions compiled to SQL (flowline/conditions/sql.py)

They mirror flowline/conditions/evaluate.py (date attributes) and flowline/clock.py
``local_instant`` (wall times at DST changes); SQLite registers Python functions instead.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 23:15:00
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

LOCAL_INSTANT = r"""
CREATE OR REPLACE FUNCTION flowline_local_instant(l timestamp, tz text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
  t0 timestamptz := l AT TIME ZONE tz;
  shift interval;
  c timestamptz;
  best timestamptz;
  lo timestamptz;
  hi timestamptz;
  mid timestamptz;
  res timestamptz;
BEGIN
  -- The offsets around the wall time; a candidate exists if it reads back as that wall time.
  FOREACH shift IN ARRAY ARRAY[interval '-1 day', interval '0', interval '1 day'] LOOP
    c := (l - (((t0 + shift) AT TIME ZONE tz) - ((t0 + shift) AT TIME ZONE 'UTC'))) AT TIME ZONE 'UTC';
    IF (c AT TIME ZONE tz) = l AND (best IS NULL OR c < best) THEN best := c; END IF;
    IF lo IS NULL OR c < lo THEN lo := c; END IF;
    IF hi IS NULL OR c > hi THEN hi := c; END IF;
  END LOOP;
  IF best IS NOT NULL THEN RETURN best; END IF;  -- the first of two when ambiguous
  -- In a gap: the first instant after the jump (as flowline.clock.local_instant).
  WHILE hi - lo > interval '1 second' LOOP
    mid := lo + (hi - lo) / 2;
    IF (mid AT TIME ZONE tz) > l THEN hi := mid; ELSE lo := mid; END IF;
  END LOOP;
  res := hi - make_interval(secs => extract(microseconds FROM hi)::bigint % 1000000 / 1000000.0);
  WHILE ((res - interval '1 second') AT TIME ZONE tz) > l LOOP
    res := res - interval '1 second';
  END LOOP;
  RETURN res;
END $$;
"""

MOMENT = r"""
CREATE OR REPLACE FUNCTION flowline_moment(raw text, tz text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
  y int; m int; d int; h int := 0; mi int := 0; s int := 0; off int; rest text := ''; l timestamp;
BEGIN
  IF raw IS NULL OR raw !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})?)?$' THEN
    RETURN NULL;
  END IF;
  y := substr(raw, 1, 4)::int; m := substr(raw, 6, 2)::int; d := substr(raw, 9, 2)::int;
  IF y < 1 OR m < 1 OR m > 12 OR d < 1 THEN RETURN NULL; END IF;
  IF d > extract(day FROM (make_date(y, m, 1) + interval '1 month' - interval '1 day')) THEN RETURN NULL; END IF;
  IF length(raw) > 10 THEN
    h := substr(raw, 12, 2)::int; mi := substr(raw, 15, 2)::int;
    IF substr(raw, 17, 1) = ':' THEN s := substr(raw, 18, 2)::int; rest := substr(raw, 20);
    ELSE rest := substr(raw, 17); END IF;
    IF h > 23 OR mi > 59 OR s > 59 THEN RETURN NULL; END IF;
  END IF;
  l := make_timestamp(y, m, d, h, mi, s);
  IF rest = '' THEN RETURN flowline_local_instant(l, tz); END IF;
  IF rest = 'Z' THEN RETURN l AT TIME ZONE 'UTC'; END IF;
  off := substr(rest, 2, 2)::int * 60 + substr(rest, 5, 2)::int;
  IF off >= 1440 THEN RETURN NULL; END IF;
  IF substr(rest, 1, 1) = '-' THEN off := -off; END IF;
  RETURN (l - make_interval(mins => off)) AT TIME ZONE 'UTC';
END $$;
"""

DATE_HOLDS = r"""
CREATE OR REPLACE FUNCTION flowline_date_holds(
  kind text, raw text, zone_name text, op text, expected text, now timestamptz
) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
  tz text := 'UTC'; inst timestamptz; day date; today date; span interval; v timestamptz;
BEGIN
  IF kind IS DISTINCT FROM 'string' OR raw IS NULL THEN RETURN false; END IF;
  IF zone_name IS NOT NULL AND zone_name <> ''
     AND EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = zone_name) THEN
    tz := zone_name;
  END IF;
  inst := flowline_moment(raw, tz);
  IF inst IS NULL THEN RETURN false; END IF;
  day := (inst AT TIME ZONE tz)::date;
  today := (now AT TIME ZONE tz)::date;
  IF op = 'was_today' THEN RETURN day = today; END IF;
  -- expected: whole days (was, will_be_in), seconds (windows), else the value as written.
  IF op = 'was' THEN RETURN day = today - expected::int; END IF;
  IF op = 'will_be_in' THEN RETURN day = today + expected::int; END IF;
  IF op IN ('was_within', 'was_more_than', 'will_be_within', 'will_be_more_than') THEN
    span := expected::bigint * interval '1 second';
    IF op = 'was_within' THEN RETURN now - span <= inst AND inst <= now; END IF;
    IF op = 'was_more_than' THEN RETURN inst < now - span; END IF;
    IF op = 'will_be_within' THEN RETURN now <= inst AND inst <= now + span; END IF;
    RETURN inst > now + span;
  END IF;
  IF length(expected) = 10 THEN
    RETURN CASE op
      WHEN 'is' THEN day = expected::date WHEN 'before' THEN day < expected::date
      WHEN 'until' THEN day <= expected::date WHEN 'since' THEN day >= expected::date
      ELSE day > expected::date END;
  END IF;
  v := flowline_moment(expected, tz);
  RETURN CASE op
    WHEN 'is' THEN inst = v WHEN 'before' THEN inst < v
    WHEN 'until' THEN inst <= v WHEN 'since' THEN inst >= v
    ELSE inst > v END;
END $$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite: Python functions registered per connection (flowline/store/database.py)
    for statement in (LOCAL_INSTANT, MOMENT, DATE_HOLDS):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS flowline_date_holds(text, text, text, text, text, timestamptz)")
    op.execute("DROP FUNCTION IF EXISTS flowline_moment(text, text)")
    op.execute("DROP FUNCTION IF EXISTS flowline_local_instant(timestamp, text)")
