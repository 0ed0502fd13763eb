"""CleverTap's Upload API client against the fake CleverTap (tests/fake_clevertap.py): the wire
format, chunking, partial failures mapped to their records, retries and the passcode's secrecy."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from flowline.destinations.clevertap import (
    CleverTapAuthError,
    CleverTapClient,
    CleverTapRetryableError,
    EventRecord,
    ProfileRecord,
    Record,
    RetryPolicy,
    host_for,
    map_unprocessed,
    referral_event_names,
)
from tests.fake_clevertap import FakeCleverTap, fake_clevertap
from tests.servers import closed_port_url

PASSCODE = "fake-passcode-s3cret"


@pytest.fixture
def fake() -> Iterator[FakeCleverTap]:
    with fake_clevertap(passcode=PASSCODE) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


class Sleeps:
    """Records the backoff delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def client(
    fake: FakeCleverTap, http: httpx.AsyncClient, *, passcode: str = PASSCODE, **options: Any
) -> CleverTapClient:
    options.setdefault("retry", RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.02))
    options.setdefault("sleep", Sleeps())
    return CleverTapClient(fake.account_id, passcode, http, base_url=fake.url, **options)


def event(identity: str, name: str = "Purchase", ts: int = 1_700_000_000, **data: Any) -> EventRecord:
    return EventRecord(identity=identity, ts=ts, evtName=name, evtData=data)


def test_hosts_per_region_and_base_url_override() -> None:
    assert host_for() == "https://api.clevertap.com"
    assert host_for("eu1") == "https://api.clevertap.com"
    for region in ("in1", "us1", "sg1", "aps3", "mec1"):
        assert host_for(region) == f"https://{region}.api.clevertap.com"
    assert host_for("in1", "http://127.0.0.1:9/") == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="unknown CleverTap region"):
        host_for("xx9")


def test_referral_event_names() -> None:
    assert referral_event_names("app_install") == ("Referred App Install", "Generated App Install")
    assert referral_event_names("subscription_started") == (
        "Referred Subscription Started",
        "Generated Subscription Started",
    )
    assert referral_event_names("web_sign_up") == ("Referred Web Sign Up", "Generated Web Sign Up")
    with pytest.raises(ValueError):
        referral_event_names(" _ ")


def test_records_are_exactly_clevertaps_shape() -> None:
    assert event("u1", amount=3).model_dump(mode="json") == {
        "type": "event",
        "identity": "u1",
        "ts": 1_700_000_000,
        "evtName": "Purchase",
        "evtData": {"amount": 3},
    }
    profile = ProfileRecord(identity="u1", ts=5, profileData={"Name": "Ada"})
    assert profile.model_dump(mode="json") == {
        "type": "profile",
        "identity": "u1",
        "ts": 5,
        "profileData": {"Name": "Ada"},
    }
    with pytest.raises(ValueError):
        EventRecord(identity="u1", ts="1700000000", evtName="x")  # type: ignore[arg-type]


async def test_wire_format_headers_and_body(fake: FakeCleverTap, http: httpx.AsyncClient) -> None:
    records: list[Record] = [
        event("u1", amount=3),
        ProfileRecord(identity="u2", ts=7, profileData={"Plan": "pro"}),
    ]
    result = await client(fake, http).upload(records)
    assert result.delivered == [0, 1] and result.requests == 1
    [(path, headers, body)] = fake.requests
    assert path == "/1/upload"
    assert headers["x-clevertap-account-id"] == fake.account_id
    assert headers["x-clevertap-passcode"] == PASSCODE
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body) == {"d": [r.model_dump(mode="json") for r in records]}
    assert fake.accepted == json.loads(body)["d"]


async def test_1500_records_go_in_two_requests(fake: FakeCleverTap, http: httpx.AsyncClient) -> None:
    records = [event(f"u{i}") for i in range(1500)]
    result = await client(fake, http).upload(records)
    assert [len(b["d"]) for b in fake.bodies()] == [1000, 500]
    assert result.requests == 2 and result.delivered == list(range(1500))
    assert [r["identity"] for r in fake.accepted] == [f"u{i}" for i in range(1500)]


@pytest.mark.parametrize("record_as", ["string", "object"])
async def test_partial_failures_map_to_their_records(record_as: str, http: httpx.AsyncClient) -> None:
    # A failing record in each chunk; the answer's status lies ("success"): only unprocessed counts.
    records = [event(f"u{i}") for i in range(1200)]
    records[3] = event("u3", name="App Launched")
    records[10] = EventRecord(identity="", ts=1, evtName="Purchase")
    records[1100] = event("bad")
    with fake_clevertap(
        passcode=PASSCODE, record_as=record_as, reject_identities={"bad"}, status_override="success"
    ) as fake:
        result = await client(fake, http).upload(records)
        bodies = fake.bodies()
    assert [len(b["d"]) for b in bodies] == [1000, 200]
    rejected = {o.index: (o.code, o.message) for o in result.rejected}
    assert rejected == {
        3: (513, "Raised a restricted system event"),
        10: (523, "Missing identity"),
        1100: (555, "Miscellaneous server error"),
    }
    assert len(result.delivered) == 1197
    assert all(o.status != "unknown" for o in result.outcomes)


def test_mapping_fallbacks() -> None:
    sent = [
        {"type": "event", "identity": "a", "ts": 1, "evtName": "X", "evtData": {}},
        {"type": "event", "identity": "a", "ts": 1, "evtName": "X", "evtData": {}},
        {"type": "event", "identity": "b", "ts": 1, "evtName": "Y", "evtData": {"k": 1}},
        {"type": "profile", "identity": "c", "ts": 1, "profileData": {}},
    ]
    # Duplicates: the second identical entry names the second record.
    twice = {"code": 512, "error": "dup", "record": json.dumps(sent[0])}
    outcomes = map_unprocessed(sent, [twice, twice])
    assert [o.status for o in outcomes] == ["rejected", "rejected", "delivered", "delivered"]
    # Echoed normalised (a property dropped): matched by identity, type and evtName.
    changed = {"code": 522, "error": "limit", "record": {"type": "event", "identity": "b", "evtName": "Y"}}
    # A plain string that is not JSON: an identity.
    plain = {"code": 523, "error": "who", "record": "c"}
    outcomes = map_unprocessed(sent, [changed, plain])
    assert [(o.status, o.code) for o in outcomes] == [
        ("delivered", None),
        ("delivered", None),
        ("rejected", 522),
        ("rejected", 523),
    ]
    # Unmatchable and fewer than the records left: which ones failed is unknown.
    lost = {"code": 555, "error": "?", "record": {"foo": 1}}
    outcomes = map_unprocessed(sent, [lost])
    assert {o.status for o in outcomes} == {"unknown"}
    # As many unmatchable entries as records: all of them failed.
    outcomes = map_unprocessed(sent[:2], [lost, lost])
    assert [(o.status, o.code) for o in outcomes] == [("rejected", 555), ("rejected", 555)]


async def test_bad_credentials_are_permanent_and_never_show_the_passcode(
    fake: FakeCleverTap, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-passcode-0xDEADBEEF"
    sleeps = Sleeps()
    ct = client(fake, http, passcode=wrong, sleep=sleeps)
    with caplog.at_level(logging.DEBUG), pytest.raises(CleverTapAuthError) as caught:
        await ct.upload([event("u1")])
    assert caught.value.status == 401 and not caught.value.retryable
    assert len(fake.requests) == 1 and sleeps.delays == []
    for text in (str(caught.value), repr(caught.value), repr(ct), caplog.text):
        assert wrong not in text and PASSCODE not in text
    check = await ct.check_credentials()
    assert (check.ok, check.status) == (False, 401)
    assert wrong not in check.message


async def test_check_credentials_accepted_changes_nothing(
    fake: FakeCleverTap, http: httpx.AsyncClient
) -> None:
    check = await client(fake, http).check_credentials()
    assert (check.ok, check.status) == (True, 200)
    assert fake.bodies() == [{"d": []}] and fake.accepted == []
    async with httpx.AsyncClient() as other:
        down = CleverTapClient("a", PASSCODE, other, base_url=closed_port_url())
        check = await down.check_credentials()
    assert not check.ok and check.status is None and PASSCODE not in check.message


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_429_and_5xx_are_retried_with_backoff_then_succeed(
    status: int, fake: FakeCleverTap, http: httpx.AsyncClient
) -> None:
    fake.fail_next = [status, status]
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=4, initial_delay=0.25, multiplier=2, max_delay=0.75)
    result = await client(fake, http, retry=policy, sleep=sleeps).upload([event("u1")])
    assert result.delivered == [0]
    assert len(fake.requests) == 3 and sleeps.delays == [0.25, 0.5]
    assert [r["identity"] for r in fake.accepted] == ["u1"]


async def test_retries_exhausted_raise_a_retryable_error(
    fake: FakeCleverTap, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_next = [429] * 10
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=4, initial_delay=1, multiplier=3, max_delay=5)
    with caplog.at_level(logging.DEBUG), pytest.raises(CleverTapRetryableError) as caught:
        await client(fake, http, retry=policy, sleep=sleeps).upload([event("u1")])
    assert caught.value.retryable and caught.value.status == 429
    assert len(fake.requests) == 4 and sleeps.delays == [1, 3, 5]
    assert PASSCODE not in str(caught.value) and PASSCODE not in caplog.text


async def test_a_failing_second_chunk_keeps_the_first_chunks_outcomes(
    fake: FakeCleverTap, http: httpx.AsyncClient
) -> None:
    ct = client(fake, http, retry=RetryPolicy(attempts=1))
    fake.fail_next = []
    records = [event(f"u{i}") for i in range(1001)]

    original = ct.upload_chunk
    calls = 0

    async def second_fails(chunk: list[dict[str, Any]]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            fake.fail_next = [500]
        return await original(chunk)

    ct.upload_chunk = second_fails  # type: ignore[method-assign]
    with pytest.raises(CleverTapRetryableError) as caught:
        await ct.upload(records)
    assert [o.index for o in caught.value.completed] == list(range(1000))


async def test_connection_errors_are_retryable(http: httpx.AsyncClient) -> None:
    sleeps = Sleeps()
    ct = CleverTapClient(
        "acc",
        PASSCODE,
        http,
        base_url=closed_port_url(),
        retry=RetryPolicy(attempts=2, initial_delay=0.01),
        sleep=sleeps,
    )
    with pytest.raises(CleverTapRetryableError) as caught:
        await ct.upload([event("u1")])
    assert caught.value.status is None and sleeps.delays == [0.01]
    assert PASSCODE not in str(caught.value)
