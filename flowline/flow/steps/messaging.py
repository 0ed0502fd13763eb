"""Steps that send messages: ``send`` (email, sms, push, in_app) and ``notify_internal``.

``send`` is one step type with a variant per channel (a union tagged by ``channel``), so each
channel's content is checked for what that channel needs. A send goes down ``sent`` when at least
one recipient got the message, ``skipped`` when every recipient was left out by a rule
(do-not-contact, frequency cap, no address), ``failed`` otherwise.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from flowline.flow.base import Named, StepBase, StepId
from flowline.flow.template_fields import LongTemplate, Template, TemplatedData
from flowline.flow.windows import CallWindow
from flowline.strict import Strict

Recipients = Literal["self", "referrer", "friends"]
SEND_BRANCHES = ("sent", "skipped", "failed")


class SendNext(Strict):
    sent: StepId | None = None
    skipped: StepId | None = None
    failed: StepId | None = None


class EmailContent(Strict):
    subject: Template = Field(min_length=1)
    html: LongTemplate | None = None
    text: LongTemplate | None = None

    @model_validator(mode="after")
    def _a_body(self) -> EmailContent:
        if not self.html and not self.text:
            raise ValueError("an email needs 'html' or 'text' (or both)")
        return self


class SmsContent(Strict):
    body: LongTemplate = Field(min_length=1)


class PushContent(Strict):
    title: Template = ""
    body: LongTemplate = Field(min_length=1)
    # Custom data for the app (values may be Liquid templates).
    data: TemplatedData = Field(default_factory=dict)


class InAppContent(Strict):
    title: Template = ""
    body: LongTemplate
    # Custom data and actions for the app (values may be Liquid templates).
    data: TemplatedData = Field(default_factory=dict)


class SendStep(StepBase):
    """What every channel's send has: who gets it, from which sender, when it may go out."""

    type: Literal["send"]
    # self: the journey's person; referrer: who referred them; friends: each of their friends.
    to: Recipients = "self"
    # A named sender of the workspace's channel settings; do-not-contact entries may name it.
    sender: str | None = Field(default=None, min_length=1, max_length=200)
    # A delivery window in the person's time zone: the send waits for it (durably), it is not dropped.
    window: CallWindow | None = None
    next: StepId | SendNext | None = None


class EmailSendStep(SendStep):
    channel: Literal["email"]
    content: EmailContent


class SmsSendStep(SendStep):
    channel: Literal["sms"]
    content: SmsContent


class PushSendStep(SendStep):
    channel: Literal["push"]
    content: PushContent


class InAppSendStep(SendStep):
    channel: Literal["in_app"]
    content: InAppContent
    # A consumable message carries a reward: the app consumes it once (POST /v1/inbox/{id}/consume).
    consumable: bool = False


# Named, so the ``type`` union's mapping points at it (``#/$defs/SendStep``) instead of holding it.
SendSteps = Annotated[
    Annotated[EmailSendStep | SmsSendStep | PushSendStep | InAppSendStep, Field(discriminator="channel")],
    Named("SendStep"),
]


class NotifyInternalStep(StepBase):
    """Tells the team: an email or SMS to fixed addresses, or to ones taken from variables or the
    profile (each address is a Liquid template, e.g. ``{{ vars.account_manager }}``)."""

    type: Literal["notify_internal"]
    channel: Literal["email", "sms"]
    to: list[Template] = Field(min_length=1, max_length=50)
    subject: Template = ""
    body: LongTemplate = Field(min_length=1)
    next: StepId | None = None

    @model_validator(mode="after")
    def _subject(self) -> NotifyInternalStep:
        if self.channel == "email" and not self.subject:
            raise ValueError("an internal email needs a 'subject'")
        return self
