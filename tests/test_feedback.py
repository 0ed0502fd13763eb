"""record_feedback, the one entry for channel feedback (tracking links and provider reports)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from flowline.channels.feedback import record_feedback
from flowline.store.database import Store
from flowline.store.profile_changes import Origin, change_do_not_contact
from flowline.store.profiles import get_profile
from launch.routing import JourneyLauncher
from tests.conftest import Tenant
from tests.test_tracking import _delivery, _delivery_row, _events

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


async def test_each_kind_is_news_once_and_keeps_its_first_time(
    store: Store, tenant: Tenant, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    launcher = JourneyLauncher(store, temporal.client, task_queue)
    delivery_id = await _delivery(store, tenant, sender="alerts")

    async def record(kind: str, at: datetime, **detail: object) -> bool:
        return await record_feedback(
            store,
            launcher,
            delivery_id=delivery_id,
            kind=kind,
            at=at,
            detail=detail,  # type: ignore[arg-type]
        )

    assert await record("delivered", T0, provider_status="delivered")
    assert not await record("delivered", T0 + timedelta(minutes=1))
    assert await record("failed", T0, reason="carrier rejected")
    assert not await record("failed", T0, reason="carrier rejected")
    assert await record("bounced", T0 + timedelta(minutes=2))
    assert await record("unsubscribed", T0 + timedelta(minutes=3))
    row = await _delivery_row(store, delivery_id)
    assert row["delivered_at"] == T0 and row["bounced_at"] == T0 + timedelta(minutes=2)
    assert row["opened_at"] is None and row["unsubscribed_at"] == T0 + timedelta(minutes=3)
    assert row["failed_at"] == T0 and row["status"] == "sent"  # the status is the send's
    [delivered] = await _events(store, tenant, "message_delivered")
    assert delivered["timestamp"] == T0 and delivered["properties"]["provider_status"] == "delivered"
    [failed] = await _events(store, tenant, "message_failed")
    assert failed["properties"]["reason"] == "carrier rejected" and failed["id"] == f"{delivery_id}:failed"
    assert len(await _events(store, tenant, "message_bounced")) == 1
    async with store.connect() as conn:
        profile = await get_profile(conn, tenant.id, "ada")
    # The bounce blocks the address from every sender; the unsubscribe only the one sender.
    assert profile is not None and profile["do_not_contact"] == [
        {"channel": "email", "sender": None},
        {"channel": "email", "sender": "alerts"},
    ]


async def test_detail_cannot_change_what_the_event_is_about(
    store: Store, tenant: Tenant, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    launcher = JourneyLauncher(store, temporal.client, task_queue)
    delivery_id = await _delivery(store, tenant)
    detail = {"delivery_id": "someone-else", "step_id": "x", "url": "https://shop.example/"}
    assert await record_feedback(
        store, launcher, delivery_id=delivery_id, kind="clicked", at=T0, detail=detail
    )
    [clicked] = await _events(store, tenant, "message_clicked")
    assert clicked["properties"]["delivery_id"] == delivery_id
    assert clicked["properties"]["step_id"] == "mail"
    assert clicked["properties"]["url"] == "https://shop.example/"


async def test_unknown_deliveries_and_other_workspaces_record_nothing(
    store: Store, tenant: Tenant, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    launcher = JourneyLauncher(store, temporal.client, task_queue)
    delivery_id = await _delivery(store, tenant)
    assert not await record_feedback(
        store, launcher, delivery_id="no-such-delivery", kind="opened", at=T0, detail={}
    )
    assert not await record_feedback(
        store, launcher, delivery_id=delivery_id, kind="opened", at=T0, detail={}, workspace_id="ws-other"
    )
    assert (await _delivery_row(store, delivery_id))["opened_at"] is None
    assert await _events(store, tenant, "message_opened") == []


async def test_a_bounce_blocks_the_channel_once(
    store: Store, tenant: Tenant, temporal: WorkflowEnvironment, task_queue: str
) -> None:
    launcher = JourneyLauncher(store, temporal.client, task_queue)
    delivery_id = await _delivery(store, tenant, sender="alerts")

    async def contact() -> list[dict[str, object]]:
        async with store.connect() as conn:
            profile = await get_profile(conn, tenant.id, "ada")
        assert profile is not None
        return list(profile["do_not_contact"])

    assert await record_feedback(store, launcher, delivery_id=delivery_id, kind="failed", at=T0, detail={})
    assert await contact() == []  # a failure is not the address's fault
    assert await record_feedback(store, launcher, delivery_id=delivery_id, kind="bounced", at=T0, detail={})
    assert await contact() == [{"channel": "email", "sender": None}]
    [changed] = await _events(store, tenant, "do_not_contact_changed")
    assert changed["properties"]["added"] == [{"channel": "email", "sender": None}]
    # The address is fixed and the entry removed: the same report again does not block anew.
    async with store.begin() as conn:
        await change_do_not_contact(
            store, conn, tenant.id, "ada", Origin(source="api"), action="remove", channel="email"
        )
    assert not await record_feedback(
        store, launcher, delivery_id=delivery_id, kind="bounced", at=T0, detail={}
    )
    assert await contact() == []
