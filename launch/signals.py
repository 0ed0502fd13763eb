"""Signalling journeys in flight, the one place that reads Temporal's answer to a signal.

A signal names its handler on ``JourneyWorkflow`` (``JourneyWorkflow.stop``, ``.move``,
``.event``), never a name string, so the type checker ties the request to the handler. A
journey that has ended (Temporal answers NOT_FOUND) simply does not take it; any other failure
is ``SignalNotTaken``, which says whether Temporal could be reached at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import TypeVar

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows.journey import JourneyWorkflow

# Signals to many journeys (a flow's stop or move) go out this many at a time.
SIGNAL_CONCURRENCY = 20

Request = TypeVar("Request")
JourneySignal = Callable[[JourneyWorkflow, Request], None]


class SignalNotTaken(RuntimeError):
    """Temporal did not take a signal for a journey it may still run: ``unreachable`` when the
    SDK could not connect (it raises RuntimeError), else Temporal refused it (an RPCError)."""

    def __init__(self, journey_id: str, error: Exception) -> None:
        super().__init__(f"Temporal did not take the signal for {journey_id}: {error}")
        self.journey_id = journey_id
        self.error = error
        self.unreachable = not isinstance(error, RPCError)


async def signal_journey(
    client: Client, journey_id: str, signal: JourneySignal[Request], request: Request
) -> bool:
    """Signal one journey: True when it took the signal, False when it has ended already.
    Raises SignalNotTaken otherwise."""
    try:
        await client.get_workflow_handle(journey_id).signal(signal, request)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise SignalNotTaken(journey_id, error) from error
    except RuntimeError as error:
        raise SignalNotTaken(journey_id, error) from error
    return True


async def signal_journeys(
    client: Client,
    journey_ids: Collection[str],
    signal: JourneySignal[Request],
    request: Request,
    *,
    concurrency: int = SIGNAL_CONCURRENCY,
) -> int:
    """Signal each journey, at most ``concurrency`` at a time; returns how many took the signal.
    A journey that ended meanwhile, or whose signal Temporal refused, is not counted; raises
    SignalNotTaken (after trying them all) when Temporal could not be reached."""
    gate = asyncio.Semaphore(concurrency)

    async def one(journey_id: str) -> bool:
        async with gate:
            try:
                return await signal_journey(client, journey_id, signal, request)
            except SignalNotTaken as error:
                if error.unreachable:
                    raise
                return False

    outcomes = await asyncio.gather(*(one(j) for j in journey_ids), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return sum(1 for outcome in outcomes if outcome is True)
