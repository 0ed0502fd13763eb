"""CleverTap's Upload API (events and profiles): the wire format, the answer's reading, retries.

``POST {host}/1/upload`` with the headers ``X-CleverTap-Account-Id``, ``X-CleverTap-Passcode`` and
``Content-Type: application/json; charset=utf-8`` and the body ``{"d": [record, ...]}``, at most
1,000 records a request (CleverTap's limit; longer lists are split). CleverTap answers HTTP 200
even when records fail: ``{"status": "success" | "partial" | "fail", "processed": <n>,
"unprocessed": [{"status": "fail", "code": <n>, "error": <text>, "record": <the record>}]}``.
``status`` is never trusted alone: each ``unprocessed`` entry is mapped back to the record it
names (see :func:`map_unprocessed`), and every record not named is delivered.

401/403 (bad account id or passcode) is permanent (:class:`CleverTapAuthError`); another 4xx
refuses the whole request (:class:`CleverTapRequestError`, permanent); 429 (more than 15
concurrent uploads per account), 5xx and transport errors are retried with exponential backoff,
then raised as :class:`CleverTapRetryableError`. The passcode never appears in an exception's
message, a repr or a log line. See docs/destinations/clevertap.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, JsonValue

log = logging.getLogger(__name__)

# CleverTap's data centres -> API host (developer.clevertap.com/docs/common-api-components):
# Europe, the default, has no prefix.
REGIONS: dict[str, str] = {
    "eu1": "https://api.clevertap.com",
    "in1": "https://in1.api.clevertap.com",
    "us1": "https://us1.api.clevertap.com",
    "sg1": "https://sg1.api.clevertap.com",
    "aps3": "https://aps3.api.clevertap.com",
    "mec1": "https://mec1.api.clevertap.com",
}
Region = Literal["eu1", "in1", "us1", "sg1", "aps3", "mec1"]
DEFAULT_REGION: Region = "eu1"
UPLOAD_PATH = "/1/upload"
MAX_RECORDS_PER_REQUEST = 1000
ACCOUNT_HEADER = "X-CleverTap-Account-Id"
PASSCODE_HEADER = "X-CleverTap-Passcode"
CONTENT_TYPE = "application/json; charset=utf-8"


def host_for(region: str = DEFAULT_REGION, base_url: str | None = None) -> str:
    """The API host of ``region``, or ``base_url`` (tests, proxies) when given, without a
    trailing slash."""
    if base_url:
        return base_url.rstrip("/")
    try:
        return REGIONS[region]
    except KeyError:
        raise ValueError(f"unknown CleverTap region {region!r}: one of {', '.join(REGIONS)}") from None


class EventRecord(BaseModel):
    """One event: ``{"type": "event", "identity", "ts" (epoch seconds), "evtName", "evtData"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["event"] = "event"
    identity: str
    ts: int = Field(strict=True)
    evtName: str  # CleverTap's field names
    evtData: dict[str, JsonValue] = Field(default_factory=dict)


class ProfileRecord(BaseModel):
    """One profile update: ``{"type": "profile", "identity", "ts", "profileData"}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["profile"] = "profile"
    identity: str
    ts: int = Field(strict=True)
    profileData: dict[str, JsonValue] = Field(default_factory=dict)


Record = EventRecord | ProfileRecord


def referral_event_names(event_name: str) -> tuple[str, str]:
    """The (referred, generated) event names CleverTap gets for ``event_name``, as GetSocial
    writes them: ``app_install`` -> ("Referred App Install", "Generated App Install")."""
    words = [w for w in re.split(r"[_\s]+", event_name.strip()) if w]
    if not words:
        raise ValueError("an event name is required")
    title = " ".join(w[:1].upper() + w[1:] for w in words)
    return f"Referred {title}", f"Generated {title}"


@dataclass(frozen=True)
class RecordOutcome:
    """What became of the record at ``index`` of the list given to :meth:`CleverTapClient.upload`.

    ``unknown``: CleverTap reported failures it did not tie to a record we can find, and more
    records remain than failures, so which ones failed cannot be told (see map_unprocessed)."""

    index: int
    status: Literal["delivered", "rejected", "unknown"]
    code: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class UploadResult:
    outcomes: list[RecordOutcome]
    requests: int

    @property
    def delivered(self) -> list[int]:
        return [o.index for o in self.outcomes if o.status == "delivered"]

    @property
    def rejected(self) -> list[RecordOutcome]:
        return [o for o in self.outcomes if o.status == "rejected"]


class CleverTapError(Exception):
    """A request CleverTap did not answer with per-record outcomes. ``completed`` holds the
    outcomes of the requests (chunks) answered before this one, so a caller loses none."""

    retryable = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.completed: list[RecordOutcome] = []


class CleverTapAuthError(CleverTapError):
    """401/403: the account id or passcode is wrong. Retrying cannot help."""


class CleverTapRequestError(CleverTapError):
    """Another 4xx: CleverTap refused the request as a whole."""


class CleverTapRetryableError(CleverTapError):
    """429, 5xx, a transport error or an unreadable answer, still failing after every attempt."""

    retryable = True


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per request and the exponential backoff between them (seconds)."""

    attempts: int = 5
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 30.0

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 = the second attempt)."""
        return float(min(self.max_delay, self.initial_delay * self.multiplier ** (retry - 1)))


@dataclass(frozen=True)
class CredentialCheck:
    ok: bool
    status: int | None
    message: str


def _canonical(record: Any) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parsed_record(value: Any) -> Any:
    """``record`` as CleverTap sent it: an object, or a string that is usually the record's JSON
    (clevertap-ruby's SuccessfulResponse#errors JSON-parses it) and otherwise left as text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def map_unprocessed(sent: Sequence[dict[str, Any]], unprocessed: Sequence[Any]) -> list[RecordOutcome]:
    """Each record's outcome, from the ``unprocessed`` entries of CleverTap's answer to ``sent``.

    An entry's ``record`` is the record CleverTap refused, as an object or as its JSON in a
    string. It is matched, in this order, to a record not yet matched:
    1. that is equal to it (same JSON; the first such record in ``sent`` for duplicates);
    2. with the same ``identity`` (and ``type`` and ``evtName`` when the entry has them): CleverTap
       may echo the record normalised; a plain non-JSON string is taken as an identity;
    3. failing both: when the entries left unmatched are as many as the records left, every
       record left is rejected with them in order (all failed); otherwise the records left are
       ``unknown`` (some of them failed, which ones cannot be told).
    """
    buckets: dict[str, list[int]] = {}
    for i, record in enumerate(sent):
        buckets.setdefault(_canonical(record), []).append(i)
    assigned: dict[int, tuple[int | None, str]] = {}
    unmatched: list[tuple[int | None, str]] = []
    for entry in unprocessed:
        entry = entry if isinstance(entry, dict) else {"record": entry}
        raw_code = entry.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        message = str(entry.get("error") or entry.get("status") or "unprocessed")
        record = _parsed_record(entry.get("record"))
        index = _match(sent, buckets, assigned, record)
        if index is None:
            unmatched.append((code, message))
        else:
            assigned[index] = (code, message)
    left = [i for i in range(len(sent)) if i not in assigned]
    if unmatched and len(unmatched) == len(left):
        assigned.update(zip(left, unmatched, strict=True))
        left, unmatched = [], []
    outcomes: list[RecordOutcome] = []
    for i in range(len(sent)):
        if i in assigned:
            code, message = assigned[i]
            outcomes.append(RecordOutcome(i, "rejected", code, message))
        elif unmatched:
            summary = "; ".join(f"{c}: {m}" for c, m in unmatched)
            outcomes.append(RecordOutcome(i, "unknown", None, f"unmatched failures: {summary}"))
        else:
            outcomes.append(RecordOutcome(i, "delivered"))
    return outcomes


def _match(
    sent: Sequence[dict[str, Any]],
    buckets: dict[str, list[int]],
    assigned: dict[int, tuple[int | None, str]],
    record: Any,
) -> int | None:
    if isinstance(record, dict):
        for index in buckets.get(_canonical(record), []):
            if index not in assigned:
                return index
        keys = [k for k in ("identity", "type", "evtName") if k in record]
        if "identity" not in keys:
            return None
        for index, candidate in enumerate(sent):
            if index not in assigned and all(candidate.get(k) == record[k] for k in keys):
                return index
        return None
    if isinstance(record, str | int) and not isinstance(record, bool):
        for index, candidate in enumerate(sent):
            if index not in assigned and str(candidate.get("identity")) == str(record):
                return index
    return None


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class CleverTapClient:
    """Uploads records to one CleverTap account. ``http`` is the caller's client (its pool and
    timeouts); ``sleep`` is awaited between attempts (tests pass one that records the delays)."""

    account_id: str
    passcode: str = field(repr=False)
    http: httpx.AsyncClient = field(repr=False)
    region: str = DEFAULT_REGION
    base_url: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = field(default=asyncio.sleep, repr=False)

    @property
    def url(self) -> str:
        return host_for(self.region, self.base_url) + UPLOAD_PATH

    def _headers(self) -> dict[str, str]:
        return {
            ACCOUNT_HEADER: self.account_id,
            PASSCODE_HEADER: self.passcode,
            "Content-Type": CONTENT_TYPE,
        }

    def _scrub(self, text: str) -> str:
        return text.replace(self.passcode, "***") if self.passcode else text

    async def upload(self, records: Sequence[Record]) -> UploadResult:
        """Every record's outcome, in ``records``' order (indexes into ``records``), sending at most
        1,000 records a request. A request that fails raises, with the earlier chunks' outcomes in
        the exception's ``completed``."""
        outcomes: list[RecordOutcome] = []
        requests = 0
        for start in range(0, len(records), MAX_RECORDS_PER_REQUEST):
            chunk = [r.model_dump(mode="json") for r in records[start : start + MAX_RECORDS_PER_REQUEST]]
            try:
                chunk_outcomes = await self.upload_chunk(chunk)
            except CleverTapError as error:
                error.completed = outcomes
                raise
            requests += 1
            outcomes.extend(
                RecordOutcome(o.index + start, o.status, o.code, o.message) for o in chunk_outcomes
            )
        return UploadResult(outcomes, requests)

    async def upload_chunk(self, chunk: list[dict[str, Any]]) -> list[RecordOutcome]:
        """One request (with its retries) of at most 1,000 records already in wire form."""
        if len(chunk) > MAX_RECORDS_PER_REQUEST:
            raise ValueError(f"at most {MAX_RECORDS_PER_REQUEST} records a request, got {len(chunk)}")
        body = json.dumps({"d": chunk}, ensure_ascii=False).encode()
        last: CleverTapRetryableError | None = None
        for attempt in range(1, max(1, self.retry.attempts) + 1):
            if attempt > 1:
                await self.sleep(self.retry.delay(attempt - 1))
            try:
                response = await self.http.post(self.url, content=body, headers=self._headers())
            except httpx.TransportError as error:
                last = CleverTapRetryableError(
                    self._scrub(f"CleverTap unreachable: {type(error).__name__}: {error}")
                )
                log.warning("clevertap upload attempt %d: %s", attempt, last)
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                last = CleverTapRetryableError(self._describe(response), status)
                log.warning("clevertap upload attempt %d: %s", attempt, last)
                continue
            if status in (401, 403):
                raise CleverTapAuthError(self._describe(response), status)
            if status >= 400:
                raise CleverTapRequestError(self._describe(response), status)
            return self._outcomes(chunk, response)
        assert last is not None
        raise last

    def _outcomes(self, chunk: list[dict[str, Any]], response: httpx.Response) -> list[RecordOutcome]:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        unprocessed = answer.get("unprocessed", []) if isinstance(answer, dict) else None
        if not isinstance(unprocessed, list):
            # The records' fate is unknown: the caller may resend (CleverTap takes no idempotency
            # key, so a resend can duplicate what it did take).
            raise CleverTapRetryableError(self._describe(response, "unreadable answer"), response.status_code)
        assert isinstance(answer, dict)
        processed = answer.get("processed")
        if isinstance(processed, int) and processed + len(unprocessed) != len(chunk):
            log.warning(
                "clevertap answered processed=%s unprocessed=%d for %d records (status %r)",
                processed,
                len(unprocessed),
                len(chunk),
                answer.get("status"),
            )
        return map_unprocessed(chunk, unprocessed)

    def _describe(self, response: httpx.Response, what: str | None = None) -> str:
        text = response.text[:300]
        try:
            body = response.json()
            if isinstance(body, dict) and body.get("error"):
                text = str(body["error"])[:300]
        except ValueError:
            pass
        return self._scrub(f"CleverTap answered {response.status_code} ({what or 'refused'}): {text}")

    async def check_credentials(self) -> CredentialCheck:
        """Whether CleverTap accepts the account id and passcode: an upload of no record
        (``{"d": []}``), which changes nothing. One attempt, no retry: it answers a person
        pressing "test"."""
        body = json.dumps({"d": []}).encode()
        try:
            response = await self.http.post(self.url, content=body, headers=self._headers())
        except httpx.TransportError as error:
            return CredentialCheck(False, None, self._scrub(f"CleverTap unreachable: {type(error).__name__}"))
        status = response.status_code
        if status < 300:
            return CredentialCheck(True, status, "credentials accepted")
        if status in (401, 403):
            return CredentialCheck(False, status, self._describe(response, "credentials refused"))
        if status < 500 and status != 429:
            # Credentials are checked before the body: a refused empty batch still means the
            # account id and passcode were accepted.
            return CredentialCheck(True, status, self._describe(response, "credentials accepted"))
        return CredentialCheck(False, status, self._describe(response, "not checked, try again"))
