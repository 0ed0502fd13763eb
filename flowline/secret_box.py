"""Secrets at rest (docs/secrets.md): the credentials in channel and destination settings (an
SMTP password, a Twilio auth token, an FCM access token, a CleverTap passcode, a webhook signing
secret) are stored AES-256-GCM encrypted, never as they were given.

The keys are the payload keys (``FLOWLINE_PAYLOAD_KEYS``, flowline/key_ring.py), each one turned
by HKDF into a key of its own for this use: a sealed secret cannot be decrypted as a Temporal
payload (the codec endpoint decrypts payloads for whoever reaches it), nor a payload as a secret.
The first key seals, every key opens, so secrets rotate as payloads do: put the new key first,
run ``flowline reencrypt-secrets`` (re-seals every stored secret under it, and seals those still
in clear), then drop the old key once Temporal no longer needs it either.

A sealed value is a JSON object in place of the secret::

    {"$sealed": "aes-256-gcm", "key": "<key id>", "data": "<base64 of nonce + ciphertext>"}

Anything else is a secret stored before encryption (or with no keys configured) and is read as
it is: rows written by older versions keep working, and ``reencrypt-secrets`` seals them.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flowline.key_ring import PayloadKeyError, parse_keys

MARKER = "$sealed"
ALGORITHM = "aes-256-gcm"
_NONCE_BYTES = 12
# HKDF's info: what the derived key is for (a payload key is never used for a secret as it is).
_PURPOSE = b"flowline secrets at rest v1"


class SecretKeyError(PayloadKeyError):
    """A sealed secret that no configured key opens (its key was removed, or the data altered)."""


def is_sealed(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and value.get(MARKER) == ALGORITHM
        and set(value) == {MARKER, "key", "data"}
    )


def sealed_key(value: object) -> str | None:
    """The id of the key a stored secret is sealed under; None for a secret in clear."""
    return str(value["key"]) if is_sealed(value) else None  # type: ignore[index]


def _derive(key: bytes) -> AESGCM:
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(key))


class SecretBox:
    """Seals secrets under the first key of a key ring and opens them under any of its keys.
    With no keys it seals nothing (secrets are stored in clear: a warning at startup says so)."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._ciphers = {key_id: _derive(key) for key_id, key in keys.items()}
        self.key_id: str | None = next(iter(keys), None)

    @classmethod
    def from_setting(cls, setting: str) -> SecretBox:
        """The box for a ``FLOWLINE_PAYLOAD_KEYS`` value (empty: a box that seals nothing)."""
        return cls(parse_keys(setting))

    @property
    def seals(self) -> bool:
        return self.key_id is not None

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def seal(self, value: Any) -> Any:
        """``value`` (any JSON value) sealed under the newest key; as it is with no keys."""
        if self.key_id is None or value is None:
            return value
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        sealed = self._ciphers[self.key_id].encrypt(nonce, plain, _aad(self.key_id))
        return {MARKER: ALGORITHM, "key": self.key_id, "data": base64.b64encode(nonce + sealed).decode()}

    def open(self, stored: Any) -> Any:
        """The secret ``stored`` holds: opened when sealed, as it is when in clear."""
        if not is_sealed(stored):
            return stored
        key_id = str(stored["key"])
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise SecretKeyError(
                f"a stored secret is sealed under key {key_id!r}, which FLOWLINE_PAYLOAD_KEYS does not "
                "hold: put that key back (and run `flowline reencrypt-secrets` before removing it)"
            )
        try:
            data = base64.b64decode(str(stored["data"]), validate=True)
            plain = cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], _aad(key_id))
        except (binascii.Error, InvalidTag, ValueError) as error:
            raise SecretKeyError(
                f"a stored secret under key {key_id!r} does not open: wrong key for that id, or altered data"
            ) from error
        return json.loads(plain)

    def stale(self, stored: Any) -> bool:
        """Whether ``reencrypt-secrets`` would rewrite ``stored``: in clear, or under an older key."""
        if self.key_id is None or stored is None:
            return False
        return sealed_key(stored) != self.key_id

    def seal_fields(self, values: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
        """A copy of ``values`` with each named field that is set sealed."""
        sealed = dict(values)
        for name in names:
            if sealed.get(name) is not None:
                sealed[name] = self.seal(sealed[name])
        return sealed

    def open_fields(self, values: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
        """A copy of ``values`` with each named field that is set opened."""
        opened = dict(values)
        for name in names:
            if opened.get(name) is not None:
                opened[name] = self.open(opened[name])
        return opened


def _aad(key_id: str) -> bytes:
    # The key id is authenticated: a sealed value cannot be relabelled to another key.
    return b"flowline-secret:" + key_id.encode()


PLAIN = SecretBox({})
# What the API and the worker log at startup when they have no key to seal with.
NO_KEYS_WARNING = (
    "FLOWLINE_PAYLOAD_KEYS is empty: channel and destination secrets are stored in clear "
    "(set it, then run `flowline reencrypt-secrets`; docs/secrets.md)"
)
