"""Heartbeats that prove the worker process is alive while an activity runs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity


@contextlib.asynccontextmanager
async def heartbeating(every: float = 1.0) -> AsyncIterator[None]:
    """Beat every ``every`` seconds while the block runs (the SDK throttles what it sends).

    With a heartbeat timeout on the activity, the attempt of a killed worker is retried once the
    beats stop, instead of after the whole start-to-close timeout. The beats come from a task of
    their own, so a slow HTTP answer or a wait for the database lock never misses one.
    """

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
