"""A send that ends its journey writes the end in the send's own transaction (issue 17: fewer
statements and commits per journey), and keeps the ledger's guarantees: an in-app message to the
journey's person is kept only with its end (nothing when the record is not committed yet, then
once); a message sent through a provider to one recipient commits its close even when the end
must wait, and the retry sends nothing again and records the end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from activities.sends import SendActivities
from flowline.flow.validation import parse_flow
from flowline.journey import JourneyEnd, JourneyRef, PathEntry, SendRequest, TemplateScope
from flowline.store import deliveries, journeys
from flowline.store.database import Store
from flowline.store.journey_steps import path_of
from flowline.store.profiles import upsert_profile
from flowline.store.tables import profiles
from tests.conftest import Tenant
from tests.deliveries_for_tests import events_named
from tests.providers import fake_twilio
from tests.test_activities import _claim
from tests.test_message_sent import channels

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _request(tenant: Tenant, journey_id: str, step: dict[str, Any]) -> SendRequest:
    ref = JourneyRef(journey_id=journey_id, workspace_id=tenant.id, flow_id="f", version=1, profile_id="p")
    end = JourneyEnd(
        journey=ref,
        status="completed",
        last_step="bye",
        exit_reason="exit_step",
        ended_at=T0,
        path=[PathEntry(step=step["id"], type="send", entered_at=T0)],
    )
    flow = {
        "id": "f",
        "name": "f",
        "trigger": {"type": "flow"},
        "steps": [step, {"id": "bye", "type": "exit"}],
    }
    return SendRequest(
        journey=ref,
        step=parse_flow(flow).steps[0],  # type: ignore[arg-type]
        visit=1,
        scope=TemplateScope(),
        now=T0,
        ends_journey=end,
    )


def _in_app(body: str = "Hi {{ profile.name }}") -> dict[str, Any]:
    return {
        "id": "hi",
        "type": "send",
        "channel": "in_app",
        "content": {"title": "t", "body": body},
        "next": "bye",
    }


async def _person(store: Store, tenant: Tenant, attributes: dict[str, Any]) -> None:
    async with store.begin() as conn:
        await upsert_profile(store, conn, tenant.id, "p", attributes)


async def _ended(store: Store, tenant: Tenant, journey_id: str) -> tuple[str, list[tuple[str, Any, Any]]]:
    async with store.connect() as conn:
        record = await journeys.get_journey(conn, tenant.id, journey_id)
        path = await path_of(conn, tenant.id, journey_id)
    assert record is not None
    return record["status"], [(e["step"], e["branch"], e["error"]) for e in path]


async def _names(store: Store, tenant: Tenant) -> dict[str, int]:
    return {n: len(await events_named(store, tenant.id, n)) for n in ("message_sent", "flow_exited")}


async def test_an_in_app_message_to_the_person_is_kept_only_with_its_end_then_once(
    store: Store, tenant: Tenant
) -> None:
    await _person(store, tenant, {"name": "Ada"})
    request = _request(tenant, f"{tenant.id}-in-app", _in_app())
    async with httpx.AsyncClient() as http:
        activities = SendActivities(store, http)
        try:
            await activities._send_message(request)
            raise AssertionError("the end cannot be recorded before the journey's record commits")
        except ApplicationError as error:
            assert error.type == "JourneyNotRecordedYet" and not error.non_retryable
        async with store.connect() as conn:
            assert await deliveries.list_inbox(conn, tenant.id, "p") == [], "rolled back with the end"
            key = deliveries.delivery_key(request.journey.journey_id, "hi", 1, "p")
            assert await deliveries.find_delivery(conn, key) is None
        assert await _names(store, tenant) == {"message_sent": 0, "flow_exited": 0}
        await _claim(store, request.journey)
        first = await activities._send_message(request)
        again = await activities._send_message(request)  # a lost completion: the activity again
    assert (first.branch, first.journey_ended) == ("sent", True)
    assert (again.branch, again.delivery_id, again.journey_ended) == ("sent", first.delivery_id, True)
    async with store.connect() as conn:
        [message] = await deliveries.list_inbox(conn, tenant.id, "p")
    assert message["body"] == "Hi Ada"
    assert await _names(store, tenant) == {"message_sent": 1, "flow_exited": 1}
    assert await _ended(store, tenant, request.journey.journey_id) == (
        "completed",
        [("hi", "sent", None), ("bye", "exit", None)],
    )


async def test_an_in_app_message_a_rule_leaves_out_still_ends_the_journey(
    store: Store, tenant: Tenant
) -> None:
    await _person(store, tenant, {"name": "Ada"})
    async with store.begin() as conn:
        await conn.execute(
            profiles.update()
            .where(profiles.c.workspace_id == tenant.id, profiles.c.id == "p")
            .values(do_not_contact=[{"channel": "in_app", "sender": None}])
        )
    request = _request(tenant, f"{tenant.id}-left-out", _in_app())
    await _claim(store, request.journey)
    async with httpx.AsyncClient() as http:
        result = await SendActivities(store, http)._send_message(request)
    assert (result.branch, result.journey_ended) == ("skipped", True)
    assert result.error is not None and result.error.startswith("do_not_contact")
    assert await _names(store, tenant) == {"message_sent": 0, "flow_exited": 1}
    status, path = await _ended(store, tenant, request.journey.journey_id)
    assert status == "completed" and path[0][:2] == ("hi", "skipped") and path[0][2] == result.error


async def test_an_sms_whose_end_must_wait_is_sent_once_and_its_end_recorded_by_the_retry(
    store: Store, tenant: Tenant
) -> None:
    sms = {
        "id": "text",
        "type": "send",
        "channel": "sms",
        "content": {"body": "Hi {{ profile.name }}"},
        "next": "bye",
    }
    request = _request(tenant, f"{tenant.id}-sms", sms)
    with fake_twilio() as twilio:
        await channels(store, tenant, twilio)
        await _person(store, tenant, {"name": "Ada", "phone": "+15005550006"})
        async with httpx.AsyncClient() as http:
            activities = SendActivities(store, http)
            try:
                await activities._send_message(request)
                raise AssertionError("the end cannot be recorded before the journey's record commits")
            except ApplicationError as error:
                assert error.type == "JourneyNotRecordedYet"
            key = deliveries.delivery_key(request.journey.journey_id, "text", 1, "p")
            async with store.connect() as conn:
                row = await deliveries.find_delivery(conn, key)
            assert row is not None and row["status"] == "sent", "the close committed without the end"
            assert await _names(store, tenant) == {"message_sent": 1, "flow_exited": 0}
            await _claim(store, request.journey)
            retried = await activities._send_message(request)
        assert len(twilio.accepted) == 1 and len(twilio.requests) == 1, "no second message"
    assert (retried.branch, retried.delivery_id, retried.journey_ended) == ("sent", row["id"], True)
    assert await _names(store, tenant) == {"message_sent": 1, "flow_exited": 1}
    assert await _ended(store, tenant, request.journey.journey_id) == (
        "completed",
        [("text", "sent", None), ("bye", "exit", None)],
    )


async def test_an_sms_to_one_recipient_closes_and_ends_in_one_go(store: Store, tenant: Tenant) -> None:
    sms = {"id": "text", "type": "send", "channel": "sms", "content": {"body": "Hi"}, "next": "bye"}
    request = _request(tenant, f"{tenant.id}-sms-end", sms)
    with fake_twilio() as twilio:
        await channels(store, tenant, twilio)
        await _person(store, tenant, {"phone": "+15005550006"})
        await _claim(store, request.journey)
        async with httpx.AsyncClient() as http:
            result = await SendActivities(store, http)._send_message(request)
        assert len(twilio.accepted) == 1
    assert (result.branch, result.journey_ended) == ("sent", True)
    assert await _names(store, tenant) == {"message_sent": 1, "flow_exited": 1}
    assert (await _ended(store, tenant, request.journey.journey_id))[0] == "completed"
