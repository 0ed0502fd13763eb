"""Fixed payload keys for tests and for recording histories (never used outside tests)."""

from __future__ import annotations

import base64

OLD_KEY = base64.b64encode(bytes(range(32))).decode()
NEW_KEY = base64.b64encode(bytes(range(32, 64))).decode()
# What tests/record_histories.py encrypts with and tests/test_replay.py decrypts with.
TEST_PAYLOAD_KEYS = f"test-1:{OLD_KEY}"
