"""Push through the FCM HTTP v1 API (base URL configurable).

POST {base_url}/v1/projects/{project_id}/messages:send with ``Authorization: Bearer <token>`` and
{"message": {"token", "notification": {"title", "body"}, "data"}}; FCM takes string data values
only, so others are sent as JSON. The answer's ``name`` names the message. A token FCM no longer
knows (404 / UNREGISTERED) raises ``TokenUnregistered`` so the caller removes it from the
person's push tokens; other 4xx are permanent too, 429 and 5xx are retried.

The bearer token is the settings' fixed ``access_token``, or one minted from the settings'
``service_account`` (``flowline.channels.service_account``): cached until shortly before it
expires, and, when FCM answers 401 all the same (revoked, clock skew), minted afresh once and the
message sent again.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from flowline.channels.config import FcmPushSettings
from flowline.channels.providers import DeliveryFailed, OutgoingMessage, Receipt
from flowline.channels.service_account import TOKENS, AccessTokens, TokenRefused


class TokenUnregistered(DeliveryFailed):
    """The device token is gone (app uninstalled, token rotated): drop it, never retry it."""

    def __init__(self, message: str, *, token: str) -> None:
        super().__init__(message, permanent=True)
        self.token = token


def string_data(data: dict[str, Any]) -> dict[str, str]:
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), default=str)
        for k, v in data.items()
    }


def _error(response: httpx.Response) -> tuple[str, str]:
    """(status, FCM error code) of an error answer, e.g. ("NOT_FOUND", "UNREGISTERED")."""
    try:
        error = response.json().get("error", {})
        status = str(error.get("status", ""))
        codes = [d.get("errorCode") for d in error.get("details", []) if isinstance(d, dict)]
    except (ValueError, AttributeError, TypeError):
        return "", ""
    return status, next((str(c) for c in codes if c), "")


class FcmPush:
    def __init__(
        self, settings: FcmPushSettings, http: httpx.AsyncClient, tokens: AccessTokens = TOKENS
    ) -> None:
        self.settings = settings
        self.http = http
        self.tokens = tokens

    async def _token(self) -> str:
        s = self.settings
        if s.service_account is None:
            assert s.access_token is not None  # validated: one of the two
            return s.access_token
        try:
            return await self.tokens.token(s.service_account, self.http)
        except TokenRefused as error:
            raise DeliveryFailed(f"FCM: no access token: {error}", permanent=error.permanent) from None

    async def send(self, message: OutgoingMessage) -> Receipt:
        s = self.settings
        url = f"{str(s.base_url).rstrip('/')}/v1/projects/{s.project}/messages:send"
        payload: dict[str, Any] = {
            "message": {
                "token": message.to,
                "notification": {"title": message.title, "body": message.text or ""},
                "data": string_data(message.data),
            }
        }
        token = await self._token()
        response = await self._post(url, payload, token)
        if response.status_code == 401 and s.service_account is not None:
            self.tokens.refused(s.service_account, token)
            response = await self._post(url, payload, await self._token())
        code = response.status_code
        if code >= 400:
            status, fcm_code = _error(response)
            reason = f"HTTP {code} {status} {fcm_code}".strip() + f": {response.text[:200]}"
            if code == 404 or fcm_code == "UNREGISTERED":
                raise TokenUnregistered(reason, token=message.to)
            raise DeliveryFailed(reason, permanent=code < 500 and code != 429)
        try:
            name = response.json()["name"]
        except (ValueError, KeyError, TypeError):
            return Receipt(provider_message_id=None)  # accepted: sending again could duplicate
        return Receipt(provider_message_id=str(name))

    async def _post(self, url: str, payload: dict[str, Any], token: str) -> httpx.Response:
        try:
            return await self.http.post(url, json=payload, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"FCM unreachable: {error!r}", permanent=False) from error
