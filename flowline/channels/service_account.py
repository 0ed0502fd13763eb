"""OAuth 2 access tokens for a Google service account, minted by Flowline itself.

The two-legged flow of RFC 7523 as Google runs it: a JWT (RS256, signed with the service
account's private key; ``iss`` the account's email, ``scope``, ``aud`` the token URI, ``iat`` and
``exp`` one hour apart) is POSTed to the account's ``token_uri`` with
``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``; the answer's ``access_token`` is good
for ``expires_in`` seconds. ``AccessTokens`` keeps one token per service account and scope until
shortly before it expires, mints one at a time per account (concurrent sends wait for it) and
forgets a token a provider refused, so the next request mints a fresh one.

The private key, the assertion and the tokens are never logged nor put into error messages.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

if TYPE_CHECKING:
    from flowline.channels.config import FcmServiceAccount

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 3600
# A token is replaced this long before it expires (at most half its lifetime), so a request
# never leaves with a token that expires on the way.
REFRESH_MARGIN_SECONDS = 300.0


class TokenRefused(Exception):
    """The token endpoint gave no token. ``permanent``: the account or its key is wrong (a 4xx
    but 429), retrying cannot help; otherwise it was unreachable or failing."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@lru_cache(maxsize=128)
def rsa_private_key(pem: str) -> rsa.RSAPrivateKey:
    """The RSA key of a PEM text (checked once per process and key: the check costs ~0.1 s).
    ValueError without the key's text when it is none."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not an unencrypted PEM private key (the key file's private_key, as is)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key (service accounts sign with RS256)")
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def assertion(account: FcmServiceAccount, scope: str, now: float) -> str:
    """The signed JWT that asks ``account.token_uri`` for a token of ``scope``."""
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    issued = int(now)
    claims = {
        "iss": account.client_email,
        "scope": scope,
        "aud": str(account.token_uri),
        "iat": issued,
        "exp": issued + ASSERTION_SECONDS,
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    try:
        key = rsa_private_key(account.private_key)
    except ValueError as error:  # only the mask can be stored unchecked
        raise TokenRefused(f"the service account's private_key: {error}", permanent=True) from None
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


@dataclass(frozen=True)
class AccessToken:
    value: str
    # Clock time after which it is not used any more (shortly before it expires).
    use_until: float


def _account_key(account: FcmServiceAccount, scope: str) -> tuple[str, ...]:
    # The key's digest, not the key: a changed key (rotation) is another cache entry.
    digest = hashlib.sha256(account.private_key.encode()).hexdigest()
    return (str(account.token_uri), account.client_email, account.private_key_id or "", digest, scope)


class AccessTokens:
    """Access tokens per service account and scope. ``clock``: seconds since the epoch (the
    JWT's ``iat`` and the tokens' lifetimes; tests drive it)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tokens: dict[tuple[str, ...], AccessToken] = {}
        # One lock per account and event loop (a lock belongs to the loop it first waited in).
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, ...], asyncio.Lock]
        ] = weakref.WeakKeyDictionary()
        self.minted = 0

    async def token(self, account: FcmServiceAccount, http: httpx.AsyncClient, scope: str = FCM_SCOPE) -> str:
        key = _account_key(account, scope)
        cached = self._tokens.get(key)
        if cached is not None and self.clock() < cached.use_until:
            return cached.value
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        async with locks.setdefault(key, asyncio.Lock()):
            cached = self._tokens.get(key)  # minted while this request waited
            if cached is not None and self.clock() < cached.use_until:
                return cached.value
            fresh = await self._mint(account, http, scope)
            self._tokens[key] = fresh
            return fresh.value

    def refused(self, account: FcmServiceAccount, token: str, scope: str = FCM_SCOPE) -> None:
        """The provider refused ``token`` (401): forget it unless another one replaced it."""
        key = _account_key(account, scope)
        cached = self._tokens.get(key)
        if cached is not None and cached.value == token:
            del self._tokens[key]

    async def _mint(self, account: FcmServiceAccount, http: httpx.AsyncClient, scope: str) -> AccessToken:
        now = self.clock()
        form = {"grant_type": GRANT_TYPE, "assertion": assertion(account, scope, now)}
        try:
            response = await http.post(str(account.token_uri), data=form)
        except httpx.HTTPError as error:
            raise TokenRefused(f"token endpoint unreachable: {error!r}", permanent=False) from None
        answer = _json(response)
        code = response.status_code
        if code >= 400:
            # Google's OAuth errors: {"error": "invalid_grant", "error_description": "..."}.
            reason = " ".join(str(answer.get(k, ""))[:200] for k in ("error", "error_description")).strip()
            raise TokenRefused(
                f"token endpoint answered HTTP {code} {reason}".strip(), permanent=code < 500 and code != 429
            )
        value, lifetime = answer.get("access_token"), answer.get("expires_in", ASSERTION_SECONDS)
        valid_lifetime = isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0
        if not isinstance(value, str) or not value or not valid_lifetime:
            raise TokenRefused("token endpoint answered no access_token / expires_in", permanent=False)
        self.minted += 1
        margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
        return AccessToken(value=value, use_until=now + lifetime - margin)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


# The worker's tokens: one process-wide cache, as providers are built per send.
TOKENS = AccessTokens()
