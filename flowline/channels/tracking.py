"""Signed tracking tokens: the open pixel, click redirects and unsubscribe links of an email.

A token is ``<payload>.<tag>``, both base64url without padding: the payload is compact JSON
``{"w": workspace, "d": delivery, "k": kind, "u": url (clicks only)}`` and the tag its
HMAC-SHA256 under the workspace's tracking key (workspaces.tracking_key, shown to no one). The
token is the only authority the tracking routes accept, so it must not be forgeable: a click
token only ever sends its reader to the URL it names (never an open redirect), and an
unsubscribe token names one delivery's recipient.
Tokens carry no time or nonce: the same delivery always gets the same links, so a retried send
renders the same message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

TokenKind = Literal["open", "click", "unsubscribe"]
_KIND_CODES: dict[TokenKind, str] = {"open": "o", "click": "c", "unsubscribe": "u"}
_CODE_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
# Route segments of each kind: {public_url}/t/{segment}/{token}.
PATHS: dict[TokenKind, str] = {"open": "/t/o/", "click": "/t/c/", "unsubscribe": "/t/u/"}
# Longer tokens are refused before any work (a click token holds its URL).
MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True)
class TrackingToken:
    workspace_id: str
    delivery_id: str
    kind: TokenKind
    # The destination of a click token; None for the other kinds.
    url: str | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def sign(token: TrackingToken, secret: bytes) -> str:
    body: dict[str, str] = {"w": token.workspace_id, "d": token.delivery_id, "k": _KIND_CODES[token.kind]}
    if token.url is not None:
        body["u"] = token.url
    payload = _b64(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{payload}.{_tag(secret, payload)}"


def _parts(text: str) -> tuple[str, str] | None:
    if len(text) > MAX_TOKEN_LENGTH or text.count(".") != 1:
        return None
    payload, tag = text.split(".")
    if not (payload.isascii() and tag.isascii()):
        return None
    return payload, tag


def _body(payload: str) -> dict[str, Any] | None:
    try:
        body = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        return None
    return body if isinstance(body, dict) else None


def claimed_workspace(text: str) -> str | None:
    """The workspace a token claims to be from, NOT verified: only to find the key to verify it
    with (each workspace signs with its own key)."""
    parts = _parts(text)
    body = _body(parts[0]) if parts is not None else None
    workspace_id = body.get("w") if body is not None else None
    return workspace_id if isinstance(workspace_id, str) else None


def verify(text: str, secret: bytes, kind: TokenKind) -> TrackingToken | None:
    """The token's content when its tag is right and it is of ``kind``; None otherwise."""
    parts = _parts(text)
    if parts is None:
        return None
    payload, tag = parts
    # Constant time: the tag is checked before anything in the payload is trusted.
    if not hmac.compare_digest(_tag(secret, payload), tag):
        return None
    body = _body(payload)
    if body is None or _CODE_KINDS.get(str(body.get("k"))) != kind:
        return None
    workspace_id, delivery_id, url = body.get("w"), body.get("d"), body.get("u")
    if not isinstance(workspace_id, str) or not isinstance(delivery_id, str):
        return None
    if kind == "click" and not isinstance(url, str):
        return None
    return TrackingToken(workspace_id, delivery_id, kind, url if kind == "click" else None)


def tracking_url(public_url: str, token: TrackingToken, secret: bytes) -> str:
    return f"{public_url.rstrip('/')}{PATHS[token.kind]}{sign(token, secret)}"
