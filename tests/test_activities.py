"""Activities against the real store: retries see their earlier work and never redo an effect."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities import JourneyActivities
from flowline.journey import JourneyEnd, JourneyRef, SendInAppRequest, TemplateScope, WebhookRequest
from flowline.store import deliveries, journeys
from flowline.store.database import Store
from tests.conftest import Tenant
from tests.servers import http_sink

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _ref(tenant: Tenant, journey_id: str) -> JourneyRef:
    return JourneyRef(journey_id=journey_id, workspace_id=tenant.id, flow_id="f", version=1, profile_id="p")


async def _claim(store: Store, ref: JourneyRef) -> None:
    async with store.begin() as conn:
        assert await journeys.claim_entry(
            store,
            conn,
            journey_id=ref.journey_id,
            workspace_id=ref.workspace_id,
            flow_id=ref.flow_id,
            version=1,
            profile_id=ref.profile_id,
            lock="active",
            trigger_event_id=None,
            started_at=T0,
        )


async def test_a_journey_end_before_its_record_is_visible_is_retried(store: Store, tenant: Tenant) -> None:
    ref = _ref(tenant, f"{tenant.id}-early")
    end = JourneyEnd(journey=ref, status="completed", last_step="x", exit_reason="exit_step", ended_at=T0)
    async with httpx.AsyncClient() as http:
        activities = JourneyActivities(store, http)
        with pytest.raises(ApplicationError) as caught:
            await activities.record_journey_end(end)
        assert caught.value.type == "JourneyNotRecordedYet" and not caught.value.non_retryable
        await _claim(store, ref)
        await activities.record_journey_end(end)  # the retry, once the record is committed
    async with store.connect() as conn:
        row = await journeys.get_journey(conn, tenant.id, ref.journey_id)
    assert row is not None and (row["status"], row["entry_lock"]) == ("completed", None)


async def test_an_in_app_send_whose_end_must_wait_keeps_nothing_then_delivers_once(
    store: Store, tenant: Tenant
) -> None:
    ref = _ref(tenant, f"{tenant.id}-send")
    end = JourneyEnd(journey=ref, status="completed", last_step="bye", exit_reason="exit_step", ended_at=T0)
    request = SendInAppRequest(
        journey=ref, step_id="hi", visit=1, title="", body="hi", scope=TemplateScope(), ends_journey=end
    )
    async with httpx.AsyncClient() as http:
        activities = JourneyActivities(store, http)
        with pytest.raises(ApplicationError):
            await activities.send_in_app(request)
        async with store.connect() as conn:
            assert await deliveries.list_inbox(conn, tenant.id, "p") == [], "rolled back with the end"
        await _claim(store, ref)
        first = await activities.send_in_app(request)
        again = await activities.send_in_app(request)
    assert first.journey_ended and again.delivery_id == first.delivery_id
    async with store.connect() as conn:
        assert len(await deliveries.list_inbox(conn, tenant.id, "p")) == 1


async def test_a_webhook_whose_end_must_wait_is_sent_once_and_its_end_retried(
    store: Store, tenant: Tenant
) -> None:
    # The ledger row closes in the end's transaction, yet commits without it: the retry must find
    # the webhook sent (one request, not two) and then record the end.
    ref = _ref(tenant, f"{tenant.id}-hook")
    end = JourneyEnd(journey=ref, status="completed", last_step="bye", exit_reason="exit_step", ended_at=T0)
    with http_sink() as sink:
        request = WebhookRequest(
            journey=ref,
            step_id="hook",
            visit=1,
            url=f"{sink.url}/hook",
            scope=TemplateScope(),
            ends_journey=end,
        )
        async with httpx.AsyncClient() as http:
            activities = JourneyActivities(store, http)
            with pytest.raises(ApplicationError) as caught:
                await activities._deliver_webhook(request)
            assert caught.value.type == "JourneyNotRecordedYet"
            async with store.connect() as conn:
                row = await deliveries.find_delivery(
                    conn, deliveries.delivery_key(ref.journey_id, "hook", 1, "p")
                )
            assert row is not None and row["status"] == "sent"
            await _claim(store, ref)
            retried = await activities._deliver_webhook(request)
        assert len(sink.on("/hook")) == 1
    assert retried.branch == "sent" and retried.journey_ended and retried.delivery_id == row["id"]
    async with store.connect() as conn:
        journey = await journeys.get_journey(conn, tenant.id, ref.journey_id)
    assert journey is not None and journey["status"] == "completed"


async def test_a_legacy_in_app_send_whose_template_fails_fails_at_once_and_delivers_nothing(
    store: Store, tenant: Tenant
) -> None:
    """The in-app activity of journeys from before send-channels-v1: a template that fails on the
    journey's data is not retried (it cannot heal); the step fails with the reason."""
    ref = _ref(tenant, f"{tenant.id}-legacy")
    await _claim(store, ref)
    request = SendInAppRequest(
        journey=ref,
        step_id="hi",
        visit=1,
        title="",
        body="{{ 10 | divided_by: vars.zero }}",
        scope=TemplateScope(vars={"zero": 0}),
    )
    async with httpx.AsyncClient() as http:
        with pytest.raises(ApplicationError) as caught:
            await JourneyActivities(store, http).send_in_app(request)
    assert caught.value.non_retryable and "divided_by: can't divide by 0" in str(caught.value)
    assert str(caught.value).startswith("template: ")
    async with store.connect() as conn:
        assert await deliveries.list_inbox(conn, tenant.id, "p") == []
