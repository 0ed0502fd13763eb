"""SMS through Twilio's Messages API (or anything that speaks it: base URL configurable).

POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json with a form body (To, From, Body,
StatusCallback) and HTTP basic auth sid:token. The answer's ``sid`` names the message in delivery
reports. A 4xx other than 429 is a refusal retrying cannot change (21211: invalid number); 429,
5xx and transport errors are retried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from flowline.channels.config import TwilioSmsSettings
from flowline.channels.providers import DeliveryFailed, OutgoingMessage, Receipt

IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
SIGNATURE_HEADER = "X-Twilio-Signature"
# StatusCallback's MessageStatus -> feedback kind; the others (queued, sending, sent ...) are
# steps on the way and raise no event.
REPORTED_KINDS: dict[str, Literal["delivered", "failed", "opened"]] = {
    "delivered": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "read": "opened",
}
# The StatusCallback carries the delivery's id, so that a report arriving before the send
# recorded Twilio's sid still finds its ledger row.
DELIVERY_PARAM = "delivery_id"


def status_callback(url: str, delivery_id: str) -> str:
    """``url`` with the delivery's id added to its query string (Twilio signs the whole URL)."""
    parts = urlsplit(url)
    extra = urlencode({DELIVERY_PARAM: delivery_id})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit(parts._replace(query=query))


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature: base64 HMAC-SHA1 over the full URL followed by each POST
    parameter's name and value, sorted by name."""
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_valid(auth_token: str, urls: Iterable[str], params: list[tuple[str, str]], header: str) -> bool:
    """Whether ``header`` signs the parameters for one of ``urls`` (the URL as received and as
    configured: a proxy in front of the API may change scheme or host)."""
    return any(hmac.compare_digest(signature(auth_token, url, params), header) for url in urls)


def failure_reason(response: httpx.Response) -> str:
    """Twilio's error code and message when the body has them ({code, message, more_info})."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict) and "code" in body:
        return f"HTTP {response.status_code} code {body['code']}: {body.get('message', '')}"
    return f"HTTP {response.status_code}: {str(body)[:200]}"


class TwilioSms:
    def __init__(self, settings: TwilioSmsSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    def _from(self, sender: str | None) -> str:
        if sender is None:
            return self.settings.from_number
        if sender not in self.settings.senders:
            raise DeliveryFailed(f"no SMS sender {sender!r} in the workspace's settings", permanent=True)
        return self.settings.senders[sender]

    async def send(self, message: OutgoingMessage) -> Receipt:
        s = self.settings
        url = f"{str(s.base_url).rstrip('/')}/2010-04-01/Accounts/{s.account_sid}/Messages.json"
        form = {"To": message.to, "From": self._from(message.sender), "Body": message.text or ""}
        if s.status_callback_url is not None:
            form["StatusCallback"] = status_callback(str(s.status_callback_url), message.idempotency_key)
        try:
            response = await self.http.post(
                url,
                data=form,
                auth=(s.account_sid, s.auth_token),
                headers={IDEMPOTENCY_HEADER: message.idempotency_key},
            )
        except httpx.HTTPError as error:  # timeouts, refused connections: try again
            raise DeliveryFailed(f"Twilio unreachable: {error!r}", permanent=False) from error
        if response.status_code >= 400:
            permanent = response.status_code < 500 and response.status_code != 429
            raise DeliveryFailed(failure_reason(response), permanent=permanent)
        try:
            sid = response.json()["sid"]
        except (ValueError, KeyError, TypeError):
            # Accepted (2xx) but without a readable sid: the message is on its way, so it counts as
            # sent (sending again could duplicate it); reports still find it by its delivery id.
            return Receipt(provider_message_id=None)
        return Receipt(provider_message_id=str(sid))
