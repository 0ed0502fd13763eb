"""A fake CleverTap: a real HTTP server on 127.0.0.1 speaking the Upload API
(``POST /1/upload``) as flowline/destinations/clevertap.py expects CleverTap to.

It checks the headers and the account id / passcode (401 otherwise), refuses a body that is not
``{"d": [...]}`` of at most 1,000 records (400), validates each record with CleverTap's codes
(developer.clevertap.com/docs/api-errors: 509 event name mandatory, 512 invalid structure, 513
restricted system event, 522 too many properties, 523 missing identity, 524 neither event nor
profile, 525 timestamp not epoch) and answers 200 with ``status``, ``processed`` and
``unprocessed``: partial failures included. ``fail_next`` answers given statuses first (429,
500 ...); ``record_as`` chooses whether an unprocessed entry's ``record`` is the record's JSON
in a string (as clevertap-ruby expects) or the object itself; ``reject_identities`` refuses
records of given identities (555). ``requests`` records every request, ``accepted`` the records
taken.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.providers import Answer, FakeProvider, serving

# Events CleverTap raises itself: an upload may not raise them (513).
RESTRICTED_EVENTS = {
    "App Launched",
    "App Installed",
    "App Uninstalled",
    "Notification Sent",
    "Notification Viewed",
    "Notification Clicked",
    "UTM Visited",
    "Stayed",
}
MAX_PROPERTIES = 256
MAX_KEY_LENGTH = 120


@dataclass
class FakeCleverTap(FakeProvider):
    """Answers POST /1/upload (tests/providers.py serves it, as the other providers' fakes);
    ``fail_next``, ``requests`` and ``accepted`` as there."""

    account_id: str = "TEST-ACC-123"
    passcode: str = "fake-passcode-s3cret"
    record_as: Literal["string", "object"] = "string"
    reject_identities: set[str] = field(default_factory=set)
    # When set, the answer's top-level ``status`` (a lie the client must not trust).
    status_override: str | None = None

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for path, _, body in self.requests if path == "/1/upload"]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if path != "/1/upload":
            return 404, {"status": "fail", "error": "Not found", "code": 404}
        if (
            headers.get("x-clevertap-account-id") != self.account_id
            or headers.get("x-clevertap-passcode") != self.passcode
        ):
            return 401, {"status": "fail", "error": "Invalid Credentials", "code": 401}
        if self.fail_next:
            status = self.fail_next.pop(0)
            error = "Too many concurrent requests" if status == 429 else "Server error"
            return status, {"status": "fail", "error": error, "code": status}
        if headers.get("content-type", "").replace(" ", "").lower() != "application/json;charset=utf-8":
            return 400, {"status": "fail", "error": "Content-Type must be application/json", "code": 400}
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, {"status": "fail", "error": "Invalid JSON", "code": 400}
        if not isinstance(payload, dict) or not isinstance(payload.get("d"), list):
            return 400, {"status": "fail", "error": "Payload must be an object keyed with d", "code": 400}
        records = payload["d"]
        if len(records) > 1000:
            return 400, {"status": "fail", "error": "At most 1000 records per request", "code": 400}
        unprocessed = []
        for record in records:
            refusal = self.refusal(record)
            if refusal is None:
                self.accepted.append(record)
                continue
            code, error = refusal
            echoed = json.dumps(record) if self.record_as == "string" else record
            unprocessed.append({"status": "fail", "code": code, "error": error, "record": echoed})
        processed = len(records) - len(unprocessed)
        outcome = "success" if not unprocessed else "partial" if processed else "fail"
        answer: dict[str, Any] = {"status": self.status_override or outcome, "processed": processed}
        answer["unprocessed"] = unprocessed
        return 200, answer

    def refusal(self, record: Any) -> tuple[int, str] | None:
        if not isinstance(record, dict):
            return 512, "Invalid event structure"
        kind = record.get("type")
        if kind not in ("event", "profile"):
            return 524, "Data neither event nor profile"
        identity = record.get("identity")
        if not isinstance(identity, str | int) or isinstance(identity, bool) or identity == "":
            return 523, "Missing identity"
        ts = record.get("ts")
        if "ts" in record and (not isinstance(ts, int) or isinstance(ts, bool) or ts < 0):
            return 525, "Timestamp not in UNIX epoch format"
        if str(identity) in self.reject_identities:
            return 555, "Miscellaneous server error"
        if kind == "event":
            name = record.get("evtName")
            if not isinstance(name, str) or not name.strip():
                return 509, "Event name mandatory"
            if name in RESTRICTED_EVENTS:
                return 513, "Raised a restricted system event"
            data = record.get("evtData", {})
            if not isinstance(data, dict) or len(name) > MAX_KEY_LENGTH:
                return 512, "Invalid event structure"
            if len(data) > MAX_PROPERTIES:
                return 522, "Event properties limit exceeded"
            if set(record) - {"type", "identity", "ts", "evtName", "evtData"}:
                return 512, "Invalid event structure"
        else:
            data = record.get("profileData", {})
            if not isinstance(data, dict):
                return 512, "Invalid event structure"
            if set(record) - {"type", "identity", "ts", "profileData"}:
                return 512, "Invalid event structure"
        return None


@contextmanager
def fake_clevertap(**options: Any) -> Iterator[FakeCleverTap]:
    with serving(FakeCleverTap(**options)) as fake:
        assert isinstance(fake, FakeCleverTap)
        yield fake
