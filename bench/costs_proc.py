"""bench/costs.py's processes: the API, the worker or the bare baseline worker, each with SQL
counters attached before it starts (no product change: SQLAlchemy's class-level engine events).

    python bench/costs_proc.py api|worker|baseline   # settings from FLOWLINE_* variables

On SIGUSR1 the process writes its counters to $COSTS_OUT (JSON, written whole then renamed):
statements by (scope, verb, table), transactions by scope, and transactions by their shape (the
verbs and tables of their statements in order), where scope is the Temporal activity type a
statement ran in, or ``api`` / ``worker`` outside any activity.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The verb and the first table a statement names: INSERT INTO t, UPDATE t, DELETE FROM t, ... FROM t.
_TABLE = re.compile(r"\b(?:INTO|UPDATE|FROM)\s+\"?(\w+)\"?", re.IGNORECASE)
statements: Counter[str] = Counter()
transactions: Counter[str] = Counter()
shapes: Counter[str] = Counter()
snapshots = 0


def scope(default: str) -> str:
    from temporalio import activity

    return f"activity {activity.info().activity_type}" if activity.in_activity() else default


def attach(default: str) -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
        found = _TABLE.search(sql)
        table = found.group(1) if found else "-"
        statements[f"{scope(default)}|{verb}|{table}"] += 1
        conn.info.setdefault("costs_shape", []).append(f"{verb} {table}")

    def ended(conn: Any, how: str) -> None:
        transactions[f"{scope(default)}|{how}"] += 1
        shape = conn.info.pop("costs_shape", [])
        shapes[f"{scope(default)}|{how}|{', '.join(shape) or '(no statement)'}"] += 1

    @event.listens_for(Engine, "commit")
    def _commit(conn: Any) -> None:
        ended(conn, "commit")

    @event.listens_for(Engine, "rollback")
    def _rollback(conn: Any) -> None:
        ended(conn, "rollback")


def dump(_signum: int, _frame: object) -> None:
    global snapshots
    snapshots += 1
    out = Path(os.environ["COSTS_OUT"])
    tmp = out.with_suffix(".tmp")
    body = {"snapshots": snapshots, "statements": statements, "transactions": transactions, "shapes": shapes}
    tmp.write_text(json.dumps(body))
    tmp.rename(out)


async def baseline() -> None:
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    from bench.baseline_workflow import BaselineWorkflow, CostVariantWorkflow, noop, noop_heartbeat

    client = await Client.connect(
        os.environ["FLOWLINE_TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    worker = Worker(
        client,
        task_queue=os.environ["FLOWLINE_TASK_QUEUE"],
        workflows=[BaselineWorkflow, CostVariantWorkflow],
        activities=[noop, noop_heartbeat],
        max_concurrent_activities=100,
    )
    async with worker:
        await stop.wait()


def main(role: str) -> None:
    signal.signal(signal.SIGUSR1, dump)
    if role == "api":
        import uvicorn

        attach("api")
        port = int(os.environ["FLOWLINE_API_PORT"])
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host="127.0.0.1",
            port=port,
            access_log=False,
            log_level="warning",
        )
    elif role == "worker":
        import worker
        from flowline.settings import get_settings

        attach("worker")
        asyncio.run(worker.serve(get_settings()))
    else:
        asyncio.run(baseline())


if __name__ == "__main__":
    main(sys.argv[1])
