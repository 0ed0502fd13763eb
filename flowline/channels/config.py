"""Which provider delivers each channel of a workspace, and how to reach it.

Set with ``PUT /v1/workspace/channels``; stored in ``workspaces.channels``. Each channel names
its provider (a discriminated union, so a new provider is one more model here and one adapter).
Base URLs are configurable so that tests, staging and regional endpoints all work.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

# The fields that hold credentials, in any channel's settings: never shown by the API ("***"
# instead), stored sealed (flowline/secret_box.py), left out of reprs and validation errors.
SECRET_FIELDS: tuple[str, ...] = ("password", "auth_token", "access_token")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class SmtpSettings(_Strict):
    provider: Literal["smtp"] = "smtp"
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    # starttls: upgrade a plain connection (port 587); tls: TLS from the start (port 465).
    security: Literal["none", "starttls", "tls"] = "starttls"
    # The From address when a step names no sender, and the named senders steps may use.
    from_address: str = Field(min_length=3, max_length=320)
    senders: dict[str, str] = Field(default_factory=dict, max_length=100)
    timeout_seconds: float = Field(default=30, gt=0, le=300)


class TwilioSmsSettings(_Strict):
    """Twilio's Messages API: POST {base_url}/2010-04-01/Accounts/{sid}/Messages.json (form body,
    basic auth sid:token)."""

    provider: Literal["twilio"] = "twilio"
    base_url: AnyHttpUrl = AnyHttpUrl("https://api.twilio.com")
    account_sid: str = Field(min_length=1, max_length=64)
    auth_token: str = Field(min_length=1, max_length=200, repr=False)
    from_number: str = Field(min_length=2, max_length=32)
    senders: dict[str, str] = Field(default_factory=dict, max_length=100)
    # Where Twilio posts delivery reports (StatusCallback); None: no reports.
    status_callback_url: AnyHttpUrl | None = None


class FcmPushSettings(_Strict):
    """FCM HTTP v1: POST {base_url}/v1/projects/{project_id}/messages:send with a bearer token."""

    provider: Literal["fcm"] = "fcm"
    base_url: AnyHttpUrl = AnyHttpUrl("https://fcm.googleapis.com")
    project_id: str = Field(min_length=1, max_length=200)
    # An OAuth 2 access token for the service account (obtaining it is outside Flowline).
    access_token: str = Field(min_length=1, max_length=4000, repr=False)


EmailSettings = Annotated[SmtpSettings, Field(discriminator="provider")]
SmsSettings = Annotated[TwilioSmsSettings, Field(discriminator="provider")]
PushSettings = Annotated[FcmPushSettings, Field(discriminator="provider")]


class ChannelSettings(_Strict):
    email: EmailSettings | None = None
    sms: SmsSettings | None = None
    push: PushSettings | None = None
