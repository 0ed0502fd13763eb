"""The batcher: delivers the export outbox, per destination, in batches.

A destination's records go as soon as a full batch (1,000 for CleverTap, the webhook's
``batch_size``) is due, or once the oldest due record waited ``flush_seconds``, whichever comes
first; at most ``concurrency`` batches of one destination are in flight at once (CleverTap allows
15 concurrent uploads per account). Each batch is claimed (a lease), delivered, and settled with
every record's outcome; a batch the destination could not answer goes back with exponential
backoff, and is given up after ``max_attempts``.

Nothing is lost through a crash: records live in the database from the transaction that wrote
them, and a delivery's lease runs out if its process dies, so another claim takes the records
again. The window: a process that dies after the destination answered and before the outcomes
committed sends that batch twice (CleverTap takes no idempotency key; webhook destinations
receive each record's ``id`` to drop a repeat). docs/destinations/README.md#delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import httpx

from flowline import metrics
from flowline.channels.outbound import outbound_client
from flowline.destinations.clevertap import RetryPolicy, Sleep
from flowline.exports.delivery import Batch, RetryLater, batch_size, deliver
from flowline.settings import Settings
from flowline.store import destinations, export_records, profiles
from flowline.store.database import Store, utcnow
from flowline.store.export_records import Claim, DueDestination, Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatcherSettings:
    flush_seconds: float = 2.0
    poll_seconds: float = 0.5
    concurrency: int = 4
    # How long a delivery holds its records; past it, another claim may take them again.
    lease_seconds: float = 120.0
    request_seconds: float = 30.0
    # Attempts of one batch (each with the client's own quick retries) before it is given up.
    max_attempts: int = 10
    backoff_initial_seconds: float = 10.0
    backoff_max_seconds: float = 3600.0
    # The CleverTap client's retries inside one attempt (429, 5xx, unreachable).
    request_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3, initial_delay=1.0))

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt."""
        seconds = min(self.backoff_max_seconds, self.backoff_initial_seconds * 2 ** max(0, attempts - 1))
        return timedelta(seconds=seconds)


@dataclass
class Delivered:
    """What one pass settled, by outcome (retried: records put back for a later attempt)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, status: str, n: int = 1) -> None:
        if n:
            self.counts[status] = self.counts.get(status, 0) + n

    @property
    def settled(self) -> int:
        return sum(n for status, n in self.counts.items() if status != "retried")


DestinationKey = tuple[str, str]  # (workspace id, destination id)


class Batcher:
    def __init__(
        self,
        store: Store,
        http: httpx.AsyncClient,
        settings: BatcherSettings | None = None,
        *,
        sleep: Sleep | None = None,
        workspace_id: str | None = None,
    ) -> None:
        """``workspace_id``: deliver only that workspace's records (tests and benchmarks share a
        database with others); ``sleep``: awaited between a request's quick retries."""
        self.store = store
        self.workspace_id = workspace_id
        self.http = http
        self.settings = settings or BatcherSettings()
        self.sleep = sleep
        self._in_flight: dict[DestinationKey, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered = Delivered()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; a failing pass is logged and the next one tries again.
        Deliveries in flight when it stops finish (their leases keep others off meanwhile)."""
        try:
            while not stop.is_set():
                try:
                    await self.start_due(flush_seconds=self.settings.flush_seconds)
                except Exception:
                    log.exception("export batcher: a pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_seconds)
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def start_due(self, *, flush_seconds: float) -> int:
        """Start a delivery for each batch that is due (full, or its oldest record waited
        ``flush_seconds``), within each destination's concurrency; returns how many started."""
        now = utcnow()
        async with self.store.connect() as conn:
            due = await export_records.due_destinations(conn, now, workspace_id=self.workspace_id)
        started = 0
        for destination in due:
            key = (destination.workspace_id, destination.destination_id)
            slots = self.settings.concurrency - self._in_flight.get(key, 0)
            if slots <= 0:
                continue
            waited = (now - destination.oldest).total_seconds()
            size = await self._batch_size(destination)
            if size is None:
                continue
            if destination.records < size and waited < flush_seconds:
                continue
            batches = min(slots, -(-destination.records // size))
            for _ in range(batches):
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
                task = asyncio.create_task(self._deliver_one(destination, size))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                started += 1
        return started

    async def drain(self) -> Delivered:
        """Deliver everything due now, without waiting for batches to fill (tests, the bench)."""
        while True:
            started = await self.start_due(flush_seconds=0)
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            if not started:
                return self.delivered

    async def _batch_size(self, destination: DueDestination) -> int | None:
        async with self.store.connect() as conn:
            stored = await destinations.get_destination(
                conn, destination.workspace_id, destination.destination_id
            )
        if stored is None:
            return 1000  # claimed and settled as skipped below
        return batch_size(stored.settings)

    async def _deliver_one(self, destination: DueDestination, size: int) -> None:
        key = (destination.workspace_id, destination.destination_id)
        try:
            await self.deliver_batch(destination.workspace_id, destination.destination_id, size)
        except Exception:
            # The records stay claimed until their lease runs out, then go again.
            log.exception("export batcher: a delivery to %s/%s failed", *key)
        finally:
            self._in_flight[key] -= 1

    async def deliver_batch(self, workspace_id: str, destination_id: str, size: int) -> int:
        """Claim one batch of the destination, deliver it and store the outcomes; returns how many
        records it claimed."""
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.store.begin() as conn:
            claim = await export_records.claim(
                self.store, conn, workspace_id, destination_id, limit=size, now=now, lease_until=lease
            )
        if not claim.records:
            return 0
        async with self.store.connect() as conn:
            stored = await destinations.get_destination(conn, workspace_id, destination_id)
            people = await profiles.attributes_of(conn, workspace_id, {r.profile_id for r in claim.records})
        if stored is None:
            why = f"destination {destination_id!r} was deleted"
            await self._settle(claim, [Outcome(r.id, "skipped", None, why) for r in claim.records], "deleted")
            return len(claim.records)
        try:
            outcomes = await deliver(
                stored.settings,
                Batch(claim.records, people),
                self.http,
                seconds=self.settings.request_seconds,
                retry=self.settings.request_retry,
                sleep=self.sleep,
            )
        except RetryLater as error:
            await self._retry(claim, str(error), stored.settings.type)
            return len(claim.records)
        await self._settle(claim, outcomes, stored.settings.type)
        return len(claim.records)

    async def _settle(self, claim: Claim, outcomes: list[Outcome], destination: str) -> None:
        """``destination``: its type (clevertap, webhook) or "deleted", for the metrics."""
        async with self.store.begin() as conn:
            await export_records.settle(conn, claim.token, outcomes)
        for outcome in outcomes:
            self.delivered.add(outcome.status)
            metrics.EXPORT_RECORDS.labels(destination, outcome.status).inc()

    async def _retry(self, claim: Claim, why: str, destination: str) -> None:
        """Back with backoff, or given up once a record has had its attempts."""
        now = utcnow()
        spent = [r for r in claim.records if r.attempts >= self.settings.max_attempts]
        again = [r for r in claim.records if r.attempts < self.settings.max_attempts]
        async with self.store.begin() as conn:
            if spent:
                message = f"given up after {self.settings.max_attempts} attempts: {why}"
                await export_records.settle(
                    conn, claim.token, [Outcome(r.id, "given_up", None, message) for r in spent]
                )
            by_attempts: dict[int, list[int]] = {}
            for record in again:
                by_attempts.setdefault(record.attempts, []).append(record.id)
            for attempts, ids in by_attempts.items():
                await export_records.retry_later(
                    conn, claim.token, ids, now + self.settings.backoff(attempts), why
                )
        self.delivered.add("given_up", len(spent))
        self.delivered.add("retried", len(again))
        metrics.EXPORT_RECORDS.labels(destination, "given_up").inc(len(spent))
        metrics.EXPORT_RECORDS.labels(destination, "retried").inc(len(again))
        log.warning(
            "export batch of %d records not delivered (%s): %d retried", len(claim.records), why, len(again)
        )


async def deliver_until(stop: asyncio.Event, store: Store, settings: Settings) -> None:
    """The batcher with the process's settings, through the outbound guard, until ``stop``."""
    batcher_settings = BatcherSettings(
        flush_seconds=settings.export_flush_seconds,
        concurrency=settings.export_concurrency,
        lease_seconds=settings.export_lease_seconds,
        request_seconds=settings.webhook_timeout_seconds,
    )
    async with outbound_client(
        timeout=settings.webhook_timeout_seconds, allow_private=settings.allow_private_outbound
    ) as http:
        await Batcher(store, http, batcher_settings).run(stop)
