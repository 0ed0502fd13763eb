"""The export outbox and its batcher on both databases, against a fake CleverTap and a webhook
receiver on 127.0.0.1: wire format, partial failures mapped back to their records, refusals,
retries with backoff, giving up, identities, batch sizes, flushing, concurrency and leases."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from flowline.channels import webhook
from flowline.destinations.clevertap import RetryPolicy
from flowline.destinations.settings import CleverTapDestination, WebhookDestination
from flowline.exports.batcher import Batcher, BatcherSettings
from flowline.store import destinations, erasure, export_records, profiles
from flowline.store.database import Store, utcnow
from flowline.store.export_records import NewRecord
from tests.conftest import Tenant
from tests.fake_clevertap import FakeCleverTap, fake_clevertap
from tests.servers import HttpSink, Reply

TS = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
QUICK = BatcherSettings(
    flush_seconds=0,
    backoff_initial_seconds=0,
    request_retry=RetryPolicy(attempts=1, initial_delay=0),
    max_attempts=3,
)


async def no_sleep(_seconds: float) -> None:
    return None


async def put_clevertap(store: Store, tenant: Tenant, fake: FakeCleverTap, **extra: Any) -> None:
    settings = CleverTapDestination(
        account_id=fake.account_id, passcode=fake.passcode, base_url=fake.url, **extra
    )
    async with store.begin() as conn:
        await destinations.put_destination(store, conn, tenant.id, "ct", settings)


async def people(store: Store, tenant: Tenant, *ids: str, **attributes: Any) -> None:
    async with store.begin() as conn:
        for profile_id in ids:
            await profiles.upsert_profile(
                store, conn, tenant.id, profile_id, {"email": f"{profile_id}@x.io", **attributes}
            )


def event(
    key: str, profile_id: str, name: str = "Purchased", destination: str = "ct", **data: Any
) -> NewRecord:
    return NewRecord(destination, key, profile_id, "event", name, TS, data or {"sku": key})


async def add(store: Store, tenant: Tenant, records: list[NewRecord]) -> int:
    async with store.begin() as conn:
        return await export_records.add_records(conn, tenant.id, records)


async def statuses(
    store: Store, tenant: Tenant, destination: str = "ct"
) -> dict[str, tuple[str, int | None, str | None]]:
    async with store.connect() as conn:
        rows = await export_records.list_records(conn, tenant.id, destination, limit=10_000)
    return {r["record_key"]: (r["status"], r["code"], r["message"]) for r in rows}


async def drain(store: Store, tenant: Tenant, settings: BatcherSettings = QUICK) -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        batcher = Batcher(store, http, settings, sleep=no_sleep, workspace_id=tenant.id)
        return (await batcher.drain()).counts


async def test_a_record_is_written_once_per_key(store: Store, tenant: Tenant) -> None:
    await people(store, tenant, "p1")
    assert await add(store, tenant, [event("k1", "p1"), event("k2", "p1")]) == 2
    # A retried write (same keys) adds nothing; another destination's same key is its own record.
    assert await add(store, tenant, [event("k1", "p1"), event("k1", "p1", destination="other")]) == 1
    assert set(await statuses(store, tenant)) == {"k1", "k2"}


async def test_clevertap_receives_its_wire_format_and_outcomes_are_stored(
    store: Store, tenant: Tenant
) -> None:
    with fake_clevertap() as fake:
        await put_clevertap(store, tenant, fake, identity="email")
        await people(store, tenant, "p1", "p2")
        await add(
            store,
            tenant,
            [
                event("k1", "p1", sku="A-1", price=9.5),
                NewRecord("ct", "k2", "p2", "profile", None, TS, {"Plan": "gold"}),
            ],
        )
        assert await drain(store, tenant) == {"delivered": 2}
        ((path, headers, body),) = fake.requests
        assert path == "/1/upload"
        assert headers["x-clevertap-account-id"] == fake.account_id
        assert headers["x-clevertap-passcode"] == fake.passcode
        assert headers["content-type"] == "application/json; charset=utf-8"
        assert json.loads(body) == {
            "d": [
                {
                    "type": "event",
                    "identity": "p1@x.io",
                    "ts": int(TS.timestamp()),
                    "evtName": "Purchased",
                    "evtData": {"sku": "A-1", "price": 9.5},
                },
                {
                    "type": "profile",
                    "identity": "p2@x.io",
                    "ts": int(TS.timestamp()),
                    "profileData": {"Plan": "gold"},
                },
            ]
        }
    assert await statuses(store, tenant) == {"k1": ("delivered", None, None), "k2": ("delivered", None, None)}


@pytest.mark.parametrize("record_as", ["string", "object"])
async def test_partial_failures_are_mapped_back_to_their_records(
    store: Store, tenant: Tenant, record_as: str
) -> None:
    with fake_clevertap(record_as=record_as, reject_identities={"p2"}) as fake:
        fake.status_override = "success"  # CleverTap's status is never trusted alone
        await put_clevertap(store, tenant, fake)
        await people(store, tenant, "p1", "p2", "p3")
        await add(
            store,
            tenant,
            [event("k1", "p1"), event("k2", "p2"), event("k3", "p3", name="App Launched"), event("k4", "p3")],
        )
        assert await drain(store, tenant) == {"delivered": 2, "rejected": 2}
    found = await statuses(store, tenant)
    assert found["k1"][0] == found["k4"][0] == "delivered"
    assert found["k2"] == ("rejected", 555, "Miscellaneous server error")
    assert found["k3"] == ("rejected", 513, "Raised a restricted system event")


async def test_bad_credentials_reject_every_record_with_the_reason(store: Store, tenant: Tenant) -> None:
    with fake_clevertap() as fake:
        settings = CleverTapDestination(account_id=fake.account_id, passcode="wrong", base_url=fake.url)
        async with store.begin() as conn:
            await destinations.put_destination(store, conn, tenant.id, "ct", settings)
        await people(store, tenant, "p1", "p2")
        await add(store, tenant, [event("k1", "p1"), event("k2", "p2")])
        assert await drain(store, tenant) == {"rejected": 2}
        assert len(fake.requests) == 1  # permanent: not retried
    for status, code, message in (await statuses(store, tenant)).values():
        assert (status, code) == ("rejected", 401)
        assert message is not None and "Invalid Credentials" in message and "wrong" not in message


async def test_429_and_5xx_are_retried_with_backoff_then_delivered(store: Store, tenant: Tenant) -> None:
    settings = BatcherSettings(
        flush_seconds=0, backoff_initial_seconds=30, request_retry=RetryPolicy(attempts=1), max_attempts=5
    )
    with fake_clevertap(fail_next=[429, 503]) as fake:
        await put_clevertap(store, tenant, fake)
        await people(store, tenant, "p1")
        await add(store, tenant, [event("k1", "p1")])
        assert await drain(store, tenant, settings) == {"retried": 1}
        async with store.connect() as conn:
            (row,) = await export_records.list_records(conn, tenant.id, "ct")
        # Back to pending, due after the backoff, with why.
        assert row["status"] == "pending" and row["attempts"] == 1 and "429" in row["message"]
        assert await drain(store, tenant, settings) == {}  # not due yet: nothing sent
        assert len(fake.requests) == 1
        await _make_due(store, tenant)
        assert await drain(store, tenant, settings) == {"retried": 1}
        await _make_due(store, tenant)
        assert await drain(store, tenant, settings) == {"delivered": 1}
        assert len(fake.accepted) == 1
    assert settings.backoff(1) == timedelta(seconds=30) and settings.backoff(3) == timedelta(seconds=120)


async def _make_due(store: Store, tenant: Tenant) -> None:
    async with store.begin() as conn:
        await conn.execute(
            export_records.export_records.update()
            .where(export_records.export_records.c.workspace_id == tenant.id)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def test_a_destination_that_never_answers_is_given_up(store: Store, tenant: Tenant) -> None:
    with fake_clevertap(fail_next=[500] * 10) as fake:
        await put_clevertap(store, tenant, fake)
        await people(store, tenant, "p1")
        await add(store, tenant, [event("k1", "p1")])
        for _ in range(3):
            await drain(store, tenant)
        assert len(fake.requests) == 3
    status, _code, message = (await statuses(store, tenant))["k1"]
    assert status == "given_up" and message is not None and message.startswith("given up after 3 attempts")


async def test_a_person_without_the_identity_is_skipped_with_the_reason(store: Store, tenant: Tenant) -> None:
    with fake_clevertap() as fake:
        await put_clevertap(store, tenant, fake, identity="customer_id")
        async with store.begin() as conn:
            await profiles.upsert_profile(store, conn, tenant.id, "has", {"customer_id": 42})
            await profiles.upsert_profile(store, conn, tenant.id, "lacks", {"email": "l@x.io"})
        await add(store, tenant, [event("k1", "has"), event("k2", "lacks"), event("k3", "erased")])
        assert await drain(store, tenant) == {"delivered": 1, "skipped": 2}
        assert [r["identity"] for r in fake.accepted] == ["42"]
    found = await statuses(store, tenant)
    assert found["k2"] == ("skipped", None, "profile 'lacks' has no 'customer_id' for CleverTap's identity")
    assert found["k3"] == ("skipped", None, "profile 'erased' no longer exists")


async def test_batches_hold_at_most_1000_records(store: Store, tenant: Tenant) -> None:
    with fake_clevertap() as fake:
        await put_clevertap(store, tenant, fake, identity="id")
        await people(store, tenant, "p1")
        await add(store, tenant, [event(f"k{i}", "p1") for i in range(2_345)])
        # One batch in flight at a time: concurrent claims on PostgreSQL (SKIP LOCKED) split the
        # records between them as they race, which caps batches all the same but not evenly.
        one_at_a_time = replace(QUICK, concurrency=1)
        assert await drain(store, tenant, one_at_a_time) == {"delivered": 2_345}
        sizes = sorted(len(body["d"]) for body in fake.bodies())
    assert sizes == [345, 1000, 1000]


async def test_a_batch_waits_to_fill_until_its_oldest_record_waited_the_flush_time(
    store: Store, tenant: Tenant
) -> None:
    with fake_clevertap() as fake:
        await put_clevertap(store, tenant, fake, identity="id")
        await people(store, tenant, "p1")
        await add(store, tenant, [event("k1", "p1")])
        async with httpx.AsyncClient() as http:
            batcher = Batcher(store, http, BatcherSettings(flush_seconds=3600), workspace_id=tenant.id)
            assert await batcher.start_due(flush_seconds=3600) == 0  # one record, fresh: it waits
            await add(store, tenant, [event(f"f{i}", "p1") for i in range(999)])
            assert await batcher.start_due(flush_seconds=3600) == 1  # a full batch goes at once
            await asyncio.gather(*batcher._tasks)
        assert [len(body["d"]) for body in fake.bodies()] == [1000]


async def test_batches_of_one_destination_are_bounded_in_flight(store: Store, tenant: Tenant) -> None:
    with fake_clevertap(delay=0.2) as fake:
        await put_clevertap(store, tenant, fake, identity="id")
        await people(store, tenant, "p1")
        await add(store, tenant, [event(f"k{i}", "p1") for i in range(6_000)])
        settings = BatcherSettings(flush_seconds=0, concurrency=2, request_retry=RetryPolicy(attempts=1))
        assert await drain(store, tenant, settings) == {"delivered": 6_000}
        assert len(fake.requests) == 6
        assert fake.most_in_flight == 2


async def test_a_lease_that_runs_out_gives_the_records_to_another_claim(store: Store, tenant: Tenant) -> None:
    await people(store, tenant, "p1")
    await add(store, tenant, [event("k1", "p1"), event("k2", "p1")])
    now = utcnow()
    async with store.begin() as conn:
        first = await export_records.claim(
            store, conn, tenant.id, "ct", limit=10, now=now, lease_until=now + timedelta(seconds=60)
        )
    assert [r.record_key for r in first.records] == ["k1", "k2"]
    async with store.begin() as conn:
        held = await export_records.claim(store, conn, tenant.id, "ct", limit=10, now=now, lease_until=now)
    assert held.records == []  # leased: nobody else takes them
    later = now + timedelta(seconds=61)  # the first delivery's process died
    async with store.begin() as conn:
        second = await export_records.claim(
            store, conn, tenant.id, "ct", limit=10, now=later, lease_until=later + timedelta(seconds=60)
        )
    assert [r.attempts for r in second.records] == [2, 2]
    async with store.begin() as conn:
        # The first delivery's late outcomes are not stored; the second's are.
        late = [export_records.Outcome(r.id, "rejected", 1, "late") for r in first.records]
        assert await export_records.settle(conn, first.token, late) == 0
        done = [export_records.Outcome(r.id, "delivered") for r in second.records]
        assert await export_records.settle(conn, second.token, done) == 2
    assert {s for s, _, _ in (await statuses(store, tenant)).values()} == {"delivered"}


async def test_a_webhook_destination_gets_signed_batches(
    store: Store, tenant: Tenant, sink: HttpSink
) -> None:
    settings = WebhookDestination(url=f"{sink.url}/exports", signing_secret="hook-secret", batch_size=2)
    async with store.begin() as conn:
        await destinations.put_destination(store, conn, tenant.id, "hook", settings)
    await people(store, tenant, "p1")
    await add(store, tenant, [event(f"k{i}", "p1", destination="hook") for i in range(3)])
    assert await drain(store, tenant) == {"delivered": 3}
    received = sink.on("/exports")
    assert sorted(len(r.json()["records"]) for r in received) == [1, 2]
    records = {record["id"]: record for r in received for record in r.json()["records"]}
    assert records["k0"] == {
        "id": "k0",
        "type": "event",
        "profile_id": "p1",
        "ts": int(TS.timestamp()),
        "data": {"sku": "k0"},
        "name": "Purchased",
    }
    for request in received:
        assert webhook.verify("hook-secret", request.body, request.headers["Flowline-Signature"])


async def test_a_webhook_destination_may_reject_records_and_its_4xx_rejects_the_batch(
    store: Store, tenant: Tenant, sink: HttpSink
) -> None:
    settings = WebhookDestination(url=f"{sink.url}/exports", signing_secret="s", batch_size=10)
    async with store.begin() as conn:
        await destinations.put_destination(store, conn, tenant.id, "hook", settings)
    await people(store, tenant, "p1")
    sink.replies["/exports"] = Reply(200, {"rejected": [{"id": "k1", "code": 7, "message": "unknown sku"}]})
    await add(store, tenant, [event("k0", "p1", destination="hook"), event("k1", "p1", destination="hook")])
    assert await drain(store, tenant) == {"delivered": 1, "rejected": 1}
    sink.replies["/exports"] = Reply(422, {"error": "no such schema"})
    await add(store, tenant, [event("k2", "p1", destination="hook")])
    assert await drain(store, tenant) == {"rejected": 1}
    sink.replies["/exports"] = Reply(503)
    await add(store, tenant, [event("k3", "p1", destination="hook")])
    assert await drain(store, tenant, replace(QUICK, backoff_initial_seconds=60)) == {"retried": 1}
    found = await statuses(store, tenant, "hook")
    assert found["k0"][0] == "delivered"
    assert found["k1"] == ("rejected", 7, "unknown sku")
    assert found["k2"] == ("rejected", 422, 'answered 422: {"error": "no such schema"}')
    assert found["k3"][0] == "pending"


async def test_records_of_a_deleted_destination_are_skipped(store: Store, tenant: Tenant) -> None:
    await people(store, tenant, "p1")
    await add(store, tenant, [event("k1", "p1", destination="gone")])
    assert await drain(store, tenant) == {"skipped": 1}
    assert (await statuses(store, tenant, "gone"))["k1"] == (
        "skipped",
        None,
        "destination 'gone' was deleted",
    )


async def test_an_erased_persons_records_lose_their_data_and_are_never_sent(
    store: Store, tenant: Tenant
) -> None:
    await people(store, tenant, "gone", "stays")
    await add(store, tenant, [event("sent", "gone"), event("waiting", "gone"), event("other", "stays")])
    async with store.begin() as conn:
        await conn.execute(
            export_records.export_records.update()
            .where(export_records.export_records.c.record_key == "sent")
            .values(status="delivered")
        )
        assert await erasure.erase_profile(conn, tenant.id, "gone")
    async with store.connect() as conn:
        rows = {r["record_key"]: r for r in await export_records.list_records(conn, tenant.id, "ct")}
    assert (rows["sent"]["status"], rows["sent"]["data"]) == ("delivered", {})
    assert (rows["waiting"]["status"], rows["waiting"]["data"]) == ("skipped", {})
    assert rows["waiting"]["message"] == "the person was erased"
    assert (rows["other"]["status"], rows["other"]["data"]) == ("pending", {"sku": "other"})
