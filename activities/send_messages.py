"""The rendered message(s) of one ledger row: what the send activity hands its provider."""

from __future__ import annotations

from typing import Any

from flowline.channels.providers import OutgoingMessage
from flowline.flow.steps import EmailSendStep, PushSendStep, SmsSendStep
from flowline.templates import render_checked, render_value


def render_messages(
    step: EmailSendStep | SmsSendStep | PushSendStep, row: dict[str, Any], context: dict[str, Any]
) -> list[OutgoingMessage]:
    """The rendered message(s) of one delivery: push goes to each of the person's devices."""
    key, address, sender = row["id"], row["address"], step.sender
    match step:
        case EmailSendStep(content=content):
            return [
                OutgoingMessage(
                    channel="email",
                    idempotency_key=key,
                    to=address,
                    sender=sender,
                    subject=render_checked(content.subject, context),
                    text=render_checked(content.text, context) if content.text else None,
                    html=render_checked(content.html, context) if content.html else None,
                )
            ]
        case SmsSendStep(content=content):
            text = render_checked(content.body, context)
            return [OutgoingMessage(channel="sms", idempotency_key=key, to=address, sender=sender, text=text)]
        case PushSendStep(content=content):
            title, text = render_checked(content.title, context), render_checked(content.body, context)
            data = render_value(content.data, context)
            return [
                OutgoingMessage(
                    channel="push",
                    idempotency_key=f"{key}:{n}",
                    to=token,
                    sender=sender,
                    title=title,
                    text=text,
                    data=data,
                )
                for n, token in enumerate(address.split(","))
            ]
