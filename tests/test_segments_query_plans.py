"""The shapes of segment queries on PostgreSQL (bench/segments.py measures their speed).

A whole audience's count reads each event window once and joins it; the per-profile shape
(compile_condition, for a few ids or a page of members) probes events per profile. Both must
select the same profiles: tests/test_conditions_sql.py checks that against the evaluator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import func, select, text

from flowline.conditions.rules import Condition
from flowline.store import segments_query
from flowline.store.database import Store
from flowline.store.tables import profiles
from tests.conftest import Tenant

RULE: TypeAdapter[Condition] = TypeAdapter(Condition)
NOW = datetime(2026, 11, 1, tzinfo=UTC)
SEGMENT = RULE.validate_python(
    {
        "all": [
            {"attribute": "plan", "op": "is", "value": "pro"},
            {"event": "page_view", "within": "30d", "count": {"op": ">=", "value": 2}},
            {"event": "app_open", "within": "7d", "happened": False},
        ]
    }
)


async def _plan(store: Store, tenant: Tenant, *, audience: bool) -> str:
    async with store.connect() as conn:
        await segments_query._tuned(conn, whole_audience=audience)
        where: Any = segments_query._where(conn, tenant.id, SEGMENT, NOW, audience=audience)
        compiled = select(func.count()).select_from(profiles).where(*where).compile(conn.sync_connection)  # type: ignore[arg-type]
        rows = await conn.exec_driver_sql("EXPLAIN (COSTS OFF) " + str(compiled), compiled.params)
        return "\n".join(line for (line,) in rows)


async def test_a_whole_audience_joins_event_windows_once(store: Store, tenant: Tenant) -> None:
    if store.dialect != "postgresql":
        pytest.skip("query plans are PostgreSQL's")
    audience = await _plan(store, tenant, audience=True)
    # No per-profile subplan: the count of events is a grouped window, joined once.
    assert "SubPlan" not in audience, audience
    assert "Group Key: events" in audience or "GroupAggregate" in audience, audience
    per_profile = await _plan(store, tenant, audience=False)
    assert "SubPlan" in per_profile, per_profile


async def test_settings_last_for_the_transaction_only(store: Store, tenant: Tenant) -> None:
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL settings")
    async with store.connect() as conn:
        assert await segments_query.count(conn, tenant.id, SEGMENT, NOW) == 0
        assert await conn.scalar(select(func.current_setting("jit"))) == "off"
        await conn.rollback()
        assert await conn.scalar(select(func.current_setting("max_parallel_workers_per_gather"))) != "0"


async def test_zone_names_are_looked_up_in_a_table(store: Store) -> None:
    """flowline_date_holds runs once per profile; pg_timezone_names reads every zone file per call."""
    if store.dialect != "postgresql":
        pytest.skip("PostgreSQL functions")
    async with store.connect() as conn:
        body = await conn.scalar(
            text(
                "SELECT pg_get_functiondef("
                "'flowline_date_holds(text,text,text,text,text,timestamptz)'::regprocedure)"
            )
        )
        assert "time_zone_names" in body and "pg_timezone_names" not in body
        assert (
            await conn.scalar(text("SELECT count(*) FROM time_zone_names WHERE name = 'Europe/Berlin'")) == 1
        )
