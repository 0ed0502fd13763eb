"""Personal data in Temporal histories, encrypted: an AES-256-GCM payload codec
(docs/architecture.md#payload-codec).

Every payload a Flowline client or worker sends to Temporal (the flow document, the trigger
event's properties, variables, profile data passed to activities, their results, signals) is
encrypted before it leaves the process and decrypted when it comes back, and so are failure
messages. Temporal stores only ciphertext. Search attributes are not payloads and stay as they
are (ids only).

Keys: ``FLOWLINE_PAYLOAD_KEYS`` = ``<key id>:<base64 32-byte key>,...``. The first key encrypts,
every key decrypts, so a new key goes first and the old ones stay until no history needs them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

# The key ring is shared with the secrets at rest (flowline/secret_box.py); imported from here too.
from flowline.key_ring import PayloadKeyError, new_key_setting, parse_keys

__all__ = [
    "EncryptionCodec",
    "PayloadKeyError",
    "codec_from_setting",
    "data_converter",
    "new_key_setting",
    "parse_keys",
]

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE_BYTES = 12  # AES-GCM's standard nonce; random per payload


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM under the first key; decodes with any key, and passes plain payloads through
    (histories from before the codec, and payloads Temporal itself wrote)."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        if not keys:
            raise PayloadKeyError("an encryption codec needs at least one key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._key_id = next(iter(keys))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE_BYTES)
        key_id = self._key_id.encode()
        # The key id is authenticated too: a payload cannot be relabelled to another key.
        sealed = self._ciphers[self._key_id].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"payload encrypted with key {key_id!r}, which FLOWLINE_PAYLOAD_KEYS does not hold"
            )
        nonce, sealed = payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag as error:
            raise PayloadKeyError(
                f"payload under key {key_id!r} does not decrypt: wrong key for that id, or altered data"
            ) from error
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def codec_from_setting(setting: str) -> EncryptionCodec | None:
    """The codec for ``FLOWLINE_PAYLOAD_KEYS``; None when it is empty (payloads stay plain)."""
    keys = parse_keys(setting)
    return EncryptionCodec(keys) if keys else None


def data_converter(payload_keys: str) -> DataConverter:
    """Flowline's data converter: pydantic JSON, encrypted when keys are configured. Failure
    messages and stack traces are then encrypted too (an error text may quote a person's data);
    the SDK restores them on decoding, so workflow code sees the same errors."""
    codec = codec_from_setting(payload_keys)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
