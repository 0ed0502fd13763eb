"""Which provider delivers each channel of a workspace, and how to reach it.

Set with ``PUT /v1/workspace/channels``; stored in ``workspaces.channels``. Each channel names
its provider (a discriminated union, so a new provider is one more model here and one adapter).
Base URLs are configurable so that tests, staging and regional endpoints all work.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from flowline.channels.service_account import rsa_private_key
from flowline.secrets import MASK

# The fields that hold credentials, in any channel's settings: never shown by the API ("***"
# instead), stored sealed (flowline/secret_box.py), left out of reprs and validation errors.
SECRET_FIELDS: tuple[str, ...] = ("password", "auth_token", "access_token")
# Sealed at rest whole: the secret fields, and FCM's service-account JSON, which holds a private
# key (the API masks only that key: api/routes/workspace.py, NESTED_SECRETS).
SEALED_FIELDS: tuple[str, ...] = (*SECRET_FIELDS, "service_account")


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


class FcmServiceAccount(_Strict):
    """The service-account key file as Firebase hands it out (Project settings > Service
    accounts > Generate new private key). Flowline signs its own OAuth 2 token requests with
    ``private_key`` (a secret: masked like the others, never logged)."""

    type: Literal["service_account"]
    project_id: str = Field(min_length=1, max_length=200)
    private_key_id: str | None = Field(default=None, max_length=200)
    private_key: str = Field(min_length=1, max_length=20000, repr=False)
    client_email: str = Field(min_length=3, max_length=320)
    client_id: str | None = Field(default=None, max_length=200)
    auth_uri: AnyHttpUrl | None = None
    token_uri: AnyHttpUrl = AnyHttpUrl("https://oauth2.googleapis.com/token")
    auth_provider_x509_cert_url: AnyHttpUrl | None = None
    client_x509_cert_url: AnyHttpUrl | None = None
    universe_domain: str | None = Field(default=None, max_length=200)

    @field_validator("private_key")
    @classmethod
    def _rsa_pem(cls, value: str) -> str:
        if value != MASK:  # the mask: the settings as shown (a PUT puts the stored key back)
            rsa_private_key(value)  # the message names the fault, never the key
        return value


class FcmPushSettings(_Strict):
    """FCM HTTP v1: POST {base_url}/v1/projects/{project_id}/messages:send with a bearer token,
    minted from ``service_account`` (refreshed by Flowline) or a fixed ``access_token``."""

    provider: Literal["fcm"] = "fcm"
    base_url: AnyHttpUrl = AnyHttpUrl("https://fcm.googleapis.com")
    # None: the service account's project.
    project_id: str | None = Field(default=None, min_length=1, max_length=200)
    # An OAuth 2 access token obtained outside Flowline (expires within the hour).
    access_token: str | None = Field(default=None, min_length=1, max_length=4000, repr=False)
    # Exactly one of access_token and service_account (checked here, so a fault names this key
    # even when it is missing: validate_default runs the check on the default too).
    service_account: FcmServiceAccount | None = Field(default=None, validate_default=True)

    @field_validator("service_account")
    @classmethod
    def _one_credential(
        cls, value: FcmServiceAccount | None, info: ValidationInfo
    ) -> FcmServiceAccount | None:
        if "access_token" not in info.data:
            return value  # the access token is invalid: that fault says enough
        token, project = info.data["access_token"], info.data.get("project_id")
        if value is None and token is None:
            raise PydanticCustomError(
                "missing", "Field required: the service account JSON (or an access_token)"
            )
        if value is not None and token is not None:
            raise PydanticCustomError("value_error", "give a service_account or an access_token, not both")
        if value is None and project is None and "project_id" in info.data:
            raise PydanticCustomError("value_error", "an access_token needs a project_id")
        return value

    @property
    def project(self) -> str:
        """The project messages are sent in."""
        if self.project_id is not None:
            return self.project_id
        assert self.service_account is not None  # validated: one of the two
        return self.service_account.project_id


EmailSettings = Annotated[SmtpSettings, Field(discriminator="provider")]
SmsSettings = Annotated[TwilioSmsSettings, Field(discriminator="provider")]
PushSettings = Annotated[FcmPushSettings, Field(discriminator="provider")]


class ChannelSettings(_Strict):
    email: EmailSettings | None = None
    sms: SmsSettings | None = None
    push: PushSettings | None = None
