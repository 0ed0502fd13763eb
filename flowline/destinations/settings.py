"""The settings of a workspace's export destinations, one model per type.

Set with ``PUT /v1/destinations/{id}`` (body ``{"type": ..., ...settings}``) and stored in the
``destinations`` table. ``type`` discriminates the union, as ``provider`` does for channels
(flowline/channels/config.py): a new type is one more model here and one adapter.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, UrlConstraints

# CleverTap's data centres; eu1 (the default) is the one whose host has no region prefix.
Region = Literal["eu1", "in1", "us1", "sg1", "aps3", "mec1"]
Url = Annotated[AnyHttpUrl, UrlConstraints(max_length=2000)]
EventName = Annotated[str, Field(min_length=1, max_length=200)]

# The fields that hold secrets, per type: never shown by the API ("***" instead), stored sealed
# (flowline/secret_box.py), left out of reprs and validation errors.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {"clevertap": ("passcode",), "webhook": ("signing_secret",)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class CleverTapDestination(_Strict):
    """CleverTap's upload API: POST {host}/1/upload with the account id and passcode headers."""

    type: Literal["clevertap"] = "clevertap"
    account_id: str = Field(min_length=1, max_length=100)
    passcode: str = Field(min_length=1, max_length=200, repr=False)
    region: Region = "eu1"
    # Which profile field is CleverTap's identity: id, email, phone or an attribute's name.
    identity: str = Field(default="id", min_length=1, max_length=200)
    # Overrides the region's host (tests, proxies).
    base_url: Url | None = None
    # Events exported as "Referred <Name>" / "Generated <Name>" pairs for a person with a referrer.
    referral_events: list[EventName] = Field(default_factory=list, max_length=100)
    # Events exported as they are (flow_entered, flow_exited, any event's name).
    events: list[EventName] = Field(default_factory=list, max_length=100)


class WebhookDestination(_Strict):
    """POSTs batches ``{"records": [...]}`` to ``url``, signed as webhook steps are
    (``Flowline-Signature``, flowline/channels/webhook.py)."""

    type: Literal["webhook"] = "webhook"
    url: Url
    signing_secret: str = Field(min_length=1, max_length=500, repr=False)
    batch_size: int = Field(default=100, ge=1, le=1000)
    # Events exported as they are (flow_entered, flow_exited, any event's name).
    events: list[EventName] = Field(default_factory=list, max_length=100)


Destination = Annotated[CleverTapDestination | WebhookDestination, Field(discriminator="type")]
