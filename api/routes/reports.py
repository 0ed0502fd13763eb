"""Delivery reports from providers become channel events (flowline/channels/feedback.py).

``POST /v1/reports/twilio`` takes Twilio's StatusCallback, signed with ``X-Twilio-Signature``
under the auth token of the workspace that sent the message. ``POST /v1/reports/{channel}`` is
for other providers (or a relay in front of them), authenticated by the workspace's API key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.body import CheckedRoute
from api.deps import Svc, Workspace
from api.errors import ApiError
from api.responses import AUTHENTICATED, WITH_BODY, errors
from flowline.channels import twilio
from flowline.channels.feedback import FeedbackKind
from flowline.store import deliveries, workspaces
from flowline.store.database import utcnow
from services.reports import record_report

router = APIRouter(route_class=CheckedRoute, prefix="/v1/reports", tags=["reports"], responses=AUTHENTICATED)


class ReportOut(BaseModel):
    delivery_id: str
    # The feedback recorded (None: a status that raises no event, e.g. Twilio's "sent").
    kind: str | None
    # False when the same report came before.
    recorded: bool


async def _record(
    svc: Svc, delivery_id: str, kind: FeedbackKind | None, at: datetime, detail: str | None
) -> ReportOut:
    recorded = await record_report(svc.store, svc.launcher, delivery_id, kind, at, detail)
    return ReportOut(delivery_id=delivery_id, kind=kind, recorded=recorded)


def _forbidden() -> ApiError:
    return ApiError(403, "the X-Twilio-Signature does not match the report")


@router.post(
    "/twilio",
    response_model=ReportOut,
    responses=errors(403, 404, 409, 413, 422),
    summary="Twilio's delivery report (StatusCallback)",
)
async def twilio_report(request: Request, svc: Svc) -> ReportOut:
    """Form fields MessageSid, MessageStatus, AccountSid, ErrorCode. The message is found by the
    ``delivery_id`` the callback URL carries (sends add it) or by its sid; the signature is
    checked with the auth token of the workspace whose SMS settings name that AccountSid."""
    params = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    form = dict(params)
    missing = [name for name in ("MessageSid", "MessageStatus", "AccountSid") if not form.get(name)]
    if missing:
        faults = [{"path": f"$.{name}", "message": "Field required"} for name in missing]
        raise ApiError(422, "the report is invalid", faults=faults)
    header = request.headers.get(twilio.SIGNATURE_HEADER)
    if not header:
        raise ApiError(401, f"missing {twilio.SIGNATURE_HEADER}")
    delivery_id = request.query_params.get(twilio.DELIVERY_PARAM)
    async with svc.store.begin() as conn:
        if delivery_id is not None:
            delivery = await deliveries.get_delivery(conn, delivery_id)
        else:
            delivery = await deliveries.delivery_by_provider_id(conn, "sms", form["MessageSid"])
        if delivery is None or delivery["channel"] != "sms":
            raise ApiError(404, f"no SMS delivery for message {form['MessageSid']!r}")
        sms = (await workspaces.channel_settings(conn, delivery["workspace_id"])).sms
        if sms is None or sms.account_sid != form["AccountSid"]:
            raise _forbidden()
        urls = [str(request.url)]
        if sms.status_callback_url is not None:
            configured = str(sms.status_callback_url)
            urls.append(
                configured if delivery_id is None else twilio.status_callback(configured, delivery_id)
            )
        if not twilio.signature_valid(sms.auth_token, urls, params, header):
            raise _forbidden()
        known = delivery["provider_message_id"]
        if known is not None and known != form["MessageSid"]:
            raise ApiError(
                409, f"delivery {delivery['id']!r} was sent as {known!r}, not {form['MessageSid']!r}"
            )
        await deliveries.note_provider_message_id(conn, delivery["id"], form["MessageSid"])
    kind = twilio.REPORTED_KINDS.get(form["MessageStatus"])
    code = form.get("ErrorCode")
    return await _record(svc, delivery["id"], kind, utcnow(), f"Twilio error {code}" if code else None)


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Name the message by the provider's id or by the delivery's id (the send's idempotency key).
    provider_message_id: str | None = Field(default=None, min_length=1, max_length=200)
    delivery_id: str | None = Field(default=None, min_length=1, max_length=40)
    status: Literal["delivered", "failed", "bounced", "opened"]
    at: datetime | None = None
    reason: str | None = Field(default=None, max_length=1000)

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @model_validator(mode="after")
    def _one_name(self) -> ReportIn:
        if (self.provider_message_id is None) == (self.delivery_id is None):
            raise ValueError("give exactly one of provider_message_id and delivery_id")
        return self


@router.post(
    "/{channel}",
    response_model=ReportOut,
    responses={**WITH_BODY, **errors(404)},
    summary="A delivery report from another provider",
)
async def channel_report(
    channel: Literal["email", "sms", "push"], body: ReportIn, workspace: Workspace, svc: Svc
) -> Any:
    async with svc.store.connect() as conn:
        if body.delivery_id is not None:
            delivery = await deliveries.get_delivery(conn, body.delivery_id)
        else:
            assert body.provider_message_id is not None
            delivery = await deliveries.delivery_by_provider_id(
                conn, channel, body.provider_message_id, workspace_id=workspace
            )
    if delivery is None or delivery["workspace_id"] != workspace or delivery["channel"] != channel:
        raise ApiError(404, f"no {channel} delivery {body.delivery_id or body.provider_message_id!r}")
    return await _record(svc, delivery["id"], body.status, body.at or utcnow(), body.reason)
