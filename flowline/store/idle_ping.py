"""Ping a pooled PostgreSQL connection only when it has been idle, not at every checkout.

``pool_pre_ping`` costs one round trip per checkout: 11-14 % of the API's CPU and 6 % of the
worker's under the latency benchmark, where connections go back to work within milliseconds and
cannot have been dropped in between. What drops connections (a server restart, an idle timeout in
a proxy or load balancer, ``idle_session_timeout``) needs the connection to have sat in the pool,
so a connection idle for ``after_idle_s`` or more is pinged, the others are trusted. A failed ping
raises ``DisconnectionError``: the pool discards that connection and checks out a fresh one.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

CHECKED_IN = "flowline_checked_in"


def ping_when_idle(engine: Engine, after_idle_s: float) -> None:
    """Install the checkin/checkout listeners on ``engine`` (an AsyncEngine's ``sync_engine``)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _: PoolProxiedConnection) -> None:
        since = record.info.get(CHECKED_IN)
        # A connection just opened (never checked in) is fresh.
        if since is None or time.monotonic() - since < after_idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection idle for {after_idle_s}s+ is gone") from error
