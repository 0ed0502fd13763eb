"""The ``FLOWLINE_PAYLOAD_KEYS`` key ring: ``<key id>:<base64 32-byte key>,...``, the first key
encrypts and every key decrypts. Temporal payloads (launch/payload_codec.py) and the secrets in
channel and destination settings (flowline/secret_box.py) are encrypted under it, so one rotation
(a new key first, the old ones kept until nothing needs them) rotates both."""

from __future__ import annotations

import base64
import binascii
import os


class PayloadKeyError(ValueError):
    """A payload key setting that cannot be used, or a payload no configured key can decrypt."""


def parse_keys(setting: str) -> dict[str, bytes]:
    """``"<id>:<base64 key>,..."`` in setting order (the first encrypts). Empty: no keys."""
    keys: dict[str, bytes] = {}
    for item in (part.strip() for part in setting.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise PayloadKeyError(f"payload key {item[:20]!r}...: expected '<key id>:<base64 key>'")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error as error:
            raise PayloadKeyError(f"payload key {key_id!r}: not base64") from error
        if len(key) != 32:
            raise PayloadKeyError(f"payload key {key_id!r}: {len(key)} bytes, AES-256 needs 32")
        if key_id in keys:
            raise PayloadKeyError(f"payload key {key_id!r} is given twice")
        keys[key_id] = key
    return keys


def new_key_setting(key_id: str) -> str:
    """A fresh random key in the ``FLOWLINE_PAYLOAD_KEYS`` form."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"
