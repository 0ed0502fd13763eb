"""The SMTP provider against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import uuid

import pytest

from flowline.channels.config import ChannelSettings
from flowline.channels.outbound import outbound_client
from flowline.channels.providers import DeliveryFailed, OutgoingMessage
from flowline.channels.registry import provider_for
from flowline.channels.smtp import SmtpProvider
from tests.servers import free_port
from tests.smtp import SmtpServer


def _message(to: str, **fields: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "channel": "email",
        "idempotency_key": uuid.uuid4().hex,
        "to": to,
        "subject": "Welcome, Ada",
        "text": "Hello Ada",
        "html": "<p>Hello <b>Ada</b></p>",
        "headers": {
            "List-Unsubscribe": "<https://flowline.test/t/u/abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    }
    return OutgoingMessage(**{**values, **fields})  # type: ignore[arg-type]


def _to() -> str:
    return f"ada-{uuid.uuid4().hex[:8]}@example.test"


async def test_a_message_arrives_with_text_and_html_alternatives_and_its_headers(smtp: SmtpServer) -> None:
    to = _to()
    message = _message(to)
    receipt = await SmtpProvider(smtp.settings(), allow_private=True).send(message)
    [mail] = smtp.to(to)
    mime = mail.message
    assert mime.get_content_type() == "multipart/alternative"
    assert mail.part("plain").strip() == "Hello Ada"
    assert mail.part("html").strip() == "<p>Hello <b>Ada</b></p>"
    assert mime["From"] == "Flowline <hello@flowline.test>" and mail.sender == "hello@flowline.test"
    assert mime["To"] == to and mime["Subject"] == "Welcome, Ada"
    assert mime["List-Unsubscribe"] == "<https://flowline.test/t/u/abc>"
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mime["Message-ID"] == f"<{message.idempotency_key}@flowline.test>"
    assert receipt.provider_message_id == mime["Message-ID"]


async def test_a_resend_of_the_same_delivery_carries_the_same_message_id(smtp: SmtpServer) -> None:
    to = _to()
    message = _message(to)
    provider = SmtpProvider(smtp.settings(), allow_private=True)
    await provider.send(message)
    await provider.send(message)
    await provider.send(_message(to))
    ids = [m.message["Message-ID"] for m in smtp.to(to)]
    assert ids[0] == ids[1] != ids[2]


async def test_a_named_sender_is_the_from_address_and_an_unknown_one_fails_for_good(smtp: SmtpServer) -> None:
    to = _to()
    settings = smtp.settings(senders={"news": "Acme News <news@acme.test>"})
    provider = SmtpProvider(settings, allow_private=True)
    await provider.send(_message(to, sender="news"))
    [mail] = smtp.to(to)
    assert mail.message["From"] == "Acme News <news@acme.test>" and mail.sender == "news@acme.test"
    assert mail.message["Message-ID"].endswith("@acme.test>")
    with pytest.raises(DeliveryFailed) as failed:
        await provider.send(_message(to, sender="nobody"))
    assert failed.value.permanent


async def test_html_only_and_text_only_messages(smtp: SmtpServer) -> None:
    to = _to()
    provider = SmtpProvider(smtp.settings(), allow_private=True)
    await provider.send(_message(to, text=None))
    await provider.send(_message(to, html=None))
    html_only, text_only = smtp.to(to)
    assert html_only.message.get_content_type() == "text/html"
    assert text_only.message.get_content_type() == "text/plain"


async def test_a_refused_recipient_is_a_permanent_failure(smtp: SmtpServer) -> None:
    with pytest.raises(DeliveryFailed, match="550") as failed:
        await SmtpProvider(smtp.settings(), allow_private=True).send(_message("refused@example.test"))
    assert failed.value.permanent


async def test_a_4xx_answer_is_retried(smtp: SmtpServer) -> None:
    with pytest.raises(DeliveryFailed, match="451") as failed:
        await SmtpProvider(smtp.settings(), allow_private=True).send(_message("busy@example.test"))
    assert not failed.value.permanent


async def test_no_server_listening_is_retried() -> None:
    settings = SmtpServer("127.0.0.1", free_port()).settings(timeout_seconds=2)
    with pytest.raises(DeliveryFailed) as failed:
        await SmtpProvider(settings, allow_private=True).send(_message(_to()))
    assert not failed.value.permanent


async def test_the_registry_gives_the_smtp_provider_when_email_is_configured(smtp: SmtpServer) -> None:
    async with outbound_client(timeout=5, allow_private=True) as http:
        assert provider_for("email", ChannelSettings(), http) is None
        provider = provider_for("email", ChannelSettings(email=smtp.settings()), http)
        assert provider is not None
        to = _to()
        await provider.send(_message(to))
    assert len(smtp.to(to)) == 1


async def test_line_breaks_in_a_rendered_subject_cannot_add_headers(smtp: SmtpServer) -> None:
    to = _to()
    await SmtpProvider(smtp.settings(), allow_private=True).send(
        _message(f"Ada <{to}>", subject="Hi\r\nBcc: eve@example.test")
    )
    [mail] = smtp.to(to)
    assert mail.message["Subject"] == "Hi Bcc: eve@example.test" and mail.message["Bcc"] is None
    assert mail.recipients == [to]


async def test_a_malformed_address_fails_for_good(smtp: SmtpServer) -> None:
    for address in ("not an address", "ada@example.test\nBcc: eve@example.test"):
        with pytest.raises(DeliveryFailed) as failed:
            await SmtpProvider(smtp.settings(), allow_private=True).send(_message(address))
        assert failed.value.permanent


async def test_private_smtp_hosts_are_refused_for_good_unless_allowed(smtp: SmtpServer) -> None:
    """The SMTP host is a workspace's setting: the worker's SSRF guard covers it too."""
    to = _to()
    with pytest.raises(DeliveryFailed, match="non-public") as failed:
        await SmtpProvider(smtp.settings()).send(_message(to))
    assert failed.value.permanent
    async with outbound_client(timeout=5, allow_private=False) as http:
        guarded = provider_for("email", ChannelSettings(email=smtp.settings()), http)
        assert guarded is not None
        with pytest.raises(DeliveryFailed, match="non-public"):
            await guarded.send(_message(to))
    assert smtp.to(to) == []
