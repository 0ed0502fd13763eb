"""The API boundary (issue 12, items 1 and 5): every body is read once, strictly.

Numbers that are not finite JSON (NaN, Infinity, -Infinity, and 1e400, which Python's json reads
as inf) are 422 with the path of each, for every kind of body, and nothing of the request is
written; limits on size (413 before parsing, with and without Content-Length, on a real HTTP
server), nesting, strings, keys, attributes and properties hold.
"""

# Over 400 lines on purpose: one boundary, every kind of body against every limit, side by side.

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import APIRouter
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app, unchecked_routes
from flowline.json_values import JsonLimits, JsonUnreadable, loads, value_faults
from flowline.settings import Settings
from flowline.store.database import Store
from flowline.store.tables import events
from tests.conftest import Tenant
from tests.flows import send_then_exit_flow
from tests.servers import free_port

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
JSON = {"Content-Type": "application/json"}
LIMITS = Settings().json_limits()


def with_literal(template: Any, literal: str) -> str:
    """``template`` as JSON text with each ``"@"`` string replaced by the bare ``literal``."""
    return json.dumps(template).replace('"@"', literal)


def faults(response: httpx.Response) -> list[dict[str, str]]:
    body: dict[str, Any] = response.json()
    return list(body["faults"])


def paths(response: httpx.Response) -> list[str]:
    return [f["path"] for f in faults(response)]


async def refused(api: httpx.AsyncClient, method: str, url: str, text: str, *expected: str) -> None:
    response = await api.request(method, url, content=text, headers=JSON)
    assert response.status_code == 422, (url, text[:200], response.text)
    assert paths(response) == list(expected), (url, text[:200], response.text)
    assert "Route" not in response.text and "Attribute." not in response.text


@pytest.mark.parametrize("literal", NON_FINITE)
async def test_profiles_refuse_non_finite_numbers_and_write_nothing(
    api: httpx.AsyncClient, literal: str
) -> None:
    body = {"attributes": {"score": "@", "nested": {"list": [1, "@"]}, "ok": 1}}
    await refused(
        api,
        "PUT",
        "/v1/profiles/p",
        with_literal(body, literal),
        "$.attributes.score",
        "$.attributes.nested.list[1]",
    )
    assert (await api.get("/v1/profiles/p")).status_code == 404
    # A profile that exists keeps what it had.
    assert (await api.put("/v1/profiles/q", json={"attributes": {"score": 1}})).status_code == 200
    await refused(
        api,
        "PUT",
        "/v1/profiles/q",
        with_literal({"attributes": {"score": "@"}}, literal),
        "$.attributes.score",
    )
    assert (await api.get("/v1/profiles/q")).json()["attributes"] == {"score": 1}
    # Keys that are not plain names are quoted in the path.
    await refused(
        api,
        "PUT",
        "/v1/profiles/q",
        with_literal({"attributes": {"a b": "@"}}, literal),
        '$.attributes["a b"]',
    )


@pytest.mark.parametrize("literal", NON_FINITE)
async def test_an_event_batch_refuses_the_non_finite_entries_and_keeps_the_others(
    api: httpx.AsyncClient, store: Store, tenant: Tenant, literal: str
) -> None:
    batch = [
        {"id": "good-1", "profile_id": "p", "name": "viewed", "properties": {"x": 1}},
        {"id": "bad-1", "profile_id": "p", "name": "viewed", "properties": {"x": "@"}},
        {"id": "good-2", "profile_id": "p", "name": "viewed", "properties": {"deep": [{"y": 2.5}]}},
        {"id": "bad-2", "profile_id": "p", "name": "viewed", "properties": {"deep": [{"y": "@"}]}},
    ]
    for body, at in ((batch, "$"), ({"events": batch}, "$.events")):
        response = await api.post("/v1/events", content=with_literal(body, literal), headers=JSON)
        assert response.status_code == 202, response.text
        result = response.json()
        assert result["accepted"] + result["duplicates"] == 2
        assert [(r["index"], r["id"], [f["path"] for f in r["faults"]]) for r in result["rejected"]] == [
            (1, "bad-1", [f"{at}[1].properties.x"]),
            (3, "bad-2", [f"{at}[3].properties.deep[0].y"]),
        ]
    one = await api.post("/v1/events", content=with_literal(batch[1], literal), headers=JSON)
    assert one.status_code == 422
    assert [f["path"] for f in one.json()["rejected"][0]["faults"]] == ["$.properties.x"]
    async with store.connect() as conn:
        stored = (await conn.execute(select(events.c.id).where(events.c.workspace_id == tenant.id))).scalars()
        assert sorted(stored) == ["good-1", "good-2"]


@pytest.mark.parametrize("literal", NON_FINITE)
async def test_flow_documents_refuse_non_finite_numbers_as_json_and_as_yaml(
    api: httpx.AsyncClient, literal: str
) -> None:
    flow = send_then_exit_flow()
    flow["trigger"]["where"] = [{"property": "n", "op": "greater_than", "value": "@"}]
    text = with_literal(flow, literal)
    await refused(api, "PUT", "/v1/flows/short", text, "$.trigger.where[0].value")
    await refused(api, "POST", "/v1/flows/short/validate", text, "$.trigger.where[0].value")
    yaml_literal = {"NaN": ".nan", "Infinity": ".inf", "-Infinity": "-.inf"}.get(literal, "1.0e+400")
    yaml_text = text.replace(literal, yaml_literal)  # JSON is YAML: the same document
    response = await api.put(
        "/v1/flows/short", content=yaml_text, headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 422, response.text
    assert paths(response) == ["$.trigger.where[0].value"]
    assert (await api.get("/v1/flows/short")).status_code == 404


@pytest.mark.parametrize("literal", NON_FINITE)
async def test_every_other_body_refuses_non_finite_numbers_and_changes_nothing(
    api: httpx.AsyncClient, literal: str
) -> None:
    channels_before = (await api.get("/v1/workspace/channels")).json()
    workspace_before = (await api.get("/v1/workspace")).json()
    cases: list[tuple[str, str, Any, list[str]]] = [
        (
            "POST",
            "/v1/flows/short/journeys",
            {"profile_id": "p", "variables": {"v": ["@"]}},
            ["$.variables.v[0]"],
        ),
        (
            "PUT",
            "/v1/segments/s",
            {"name": "s", "rule": {"attribute": "n", "op": "greater_than", "value": "@"}},
            ["$.rule.value"],
        ),
        (
            "PUT",
            "/v1/workspace/channels",
            {"email": {"provider": "smtp", "host": "h", "from_address": "a@b.c", "timeout_seconds": "@"}},
            ["$.email.timeout_seconds"],
        ),
        ("PUT", "/v1/workspace", {"timezone": "@"}, ["$.timezone"]),
        ("PUT", "/v1/attributes/score", {"type": "@"}, ["$.type"]),
        (
            "POST",
            "/v1/reports/email",
            {"delivery_id": "d", "status": "delivered", "reason": "@"},
            ["$.reason"],
        ),
        (
            "PUT",
            "/v1/profiles/p/push_tokens",
            {"tokens": [{"token": "@", "platform": "ios"}]},
            ["$.tokens[0].token"],
        ),
    ]
    for method, url, body, expected in cases:
        await refused(api, method, url, with_literal(body, literal), *expected)
    assert (await api.get("/v1/profiles/p")).status_code == 404  # an API start creates its profile
    assert (await api.get("/v1/segments")).json() == {"segments": [], "unreadable": []}
    assert (await api.get("/v1/workspace/channels")).json() == channels_before
    assert (await api.get("/v1/workspace")).json() == workspace_before
    assert (await api.get("/v1/attributes")).json()["attributes"] == []


async def test_nesting_deeper_than_the_limit_is_refused_at_its_path(api: httpx.AsyncClient) -> None:
    depth = LIMITS.max_depth

    def nested(levels: int) -> Any:
        value: Any = 1
        for _ in range(levels):
            value = [value]
        return value

    # {"attributes": {"v": [...]}}: two levels before the lists.
    fits = {"attributes": {"v": nested(depth - 2)}}
    assert (await api.put("/v1/profiles/p", json=fits)).status_code == 200
    too_deep = f"$.attributes.v{'[0]' * (depth - 2)}"
    await refused(
        api, "PUT", "/v1/profiles/p", json.dumps({"attributes": {"v": nested(depth - 1)}}), too_deep
    )
    # Far deeper than Python's parser goes (it raises RecursionError): the same path, never a 500.
    text = '{"attributes": {"v": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    await refused(api, "PUT", "/v1/profiles/p", text, too_deep)
    text = (
        '[{"id": "e", "profile_id": "p", "name": "n", "properties": '
        + '{"k": ' * 50_000
        + "1"
        + "}" * 50_002
        + "]"
    )
    response = await api.post("/v1/events", content=text, headers=JSON)
    assert response.status_code == 422
    assert paths(response) == ["$[0].properties" + ".k" * (depth - 2)]
    assert (await api.get("/v1/profiles/p")).json()["attributes"] == fits["attributes"]


async def test_strings_keys_and_numbers_beyond_the_limits_are_refused(api: httpx.AsyncClient) -> None:
    long_string = "x" * (LIMITS.max_string + 1)
    long_key = "k" * (LIMITS.max_key + 1)
    body = {
        "attributes": {"s": long_string, "ok": "x" * LIMITS.max_string, long_key: 1, "k" * LIMITS.max_key: 1}
    }
    response = await api.put("/v1/profiles/p", json=body)
    assert response.status_code == 422
    assert paths(response) == ["$.attributes.s", f"$.attributes.{long_key}"]
    # Integers: any a double holds (SQLite reads larger ones as Infinity); 5,000 digits (Python's
    # int() refuses more than 4,300) is refused at its path, not a 400 or 500.
    await refused(
        api, "PUT", "/v1/profiles/p", '{"attributes": {"big": 1' + "0" * 5000 + "}}", "$.attributes.big"
    )
    await refused(
        api, "PUT", "/v1/profiles/p", json.dumps({"attributes": {"big": -(2**1024)}}), "$.attributes.big"
    )
    assert (await api.get("/v1/profiles/p")).status_code == 404
    fine = {"attributes": {"big": 10**30, "neg": -(2**70), "edge": 2**1023}}
    response = await api.put("/v1/profiles/p", json=fine)
    assert response.status_code == 200, response.text
    assert (await api.get("/v1/profiles/p")).json()["attributes"] == fine["attributes"]


async def test_attribute_and_property_counts_are_limited(api: httpx.AsyncClient) -> None:
    limit = Settings().max_profile_attributes
    many = {f"a{i}": i for i in range(limit + 1)}
    await refused(api, "PUT", "/v1/profiles/p", json.dumps({"attributes": many}), "$.attributes")
    assert (await api.get("/v1/profiles/p")).status_code == 404
    # Counted after the merge: a profile at the limit takes changes, not one attribute more.
    at_limit = {f"a{i}": i for i in range(limit)}
    assert (await api.put("/v1/profiles/p", json={"attributes": at_limit})).status_code == 200
    assert (
        await api.put("/v1/profiles/p", json={"attributes": {"a0": "new", "a1": None}})
    ).status_code == 200
    assert (await api.put("/v1/profiles/p", json={"attributes": {"a1": 1}})).status_code == 200
    await refused(api, "PUT", "/v1/profiles/p", json.dumps({"attributes": {"one_more": 1}}), "$.attributes")
    assert "one_more" not in (await api.get("/v1/profiles/p")).json()["attributes"]

    properties = {f"p{i}": i for i in range(Settings().max_event_properties + 1)}
    batch = [
        {"id": "many", "profile_id": "q", "name": "n", "properties": properties},
        {"id": "few", "profile_id": "q", "name": "n", "properties": {"p": 1}},
    ]
    result = (await api.post("/v1/events", json=batch)).json()
    assert result["accepted"] == 1
    assert [(r["index"], [f["path"] for f in r["faults"]]) for r in result["rejected"]] == [
        (0, ["$[0].properties"])
    ]


async def test_parameters_with_text_the_store_cannot_keep_are_422(api: httpx.AsyncClient) -> None:
    # PostgreSQL refuses U+0000 in text: these were 500s there (SQLite kept the id).
    response = await api.put("/v1/profiles/a%00b", json={"attributes": {}})
    assert response.status_code == 422, response.text
    assert paths(response) == ["path.profile_id"]
    response = await api.get("/v1/journeys", params={"flow": "a\x00", "profile": "b"})
    assert response.status_code == 422, response.text
    assert paths(response) == ["query.flow"]
    assert (await api.get("/v1/profiles/a%00b")).status_code == 422
    assert (await api.get("/v1/journeys", params={"flow": "a", "profile": "b"})).status_code == 200


async def test_unparsable_bodies_keep_their_answer(api: httpx.AsyncClient) -> None:
    for url, method in (("/v1/profiles/p", "PUT"), ("/v1/events", "POST")):
        response = await api.request(method, url, content='{"attributes": ', headers=JSON)
        assert response.status_code == 422
        [fault] = faults(response)  # as every route reports it (api/errors.py)
        assert fault == {"path": "$", "message": "JSON decode error: Expecting value at character 15"}
    response = await api.put("/v1/flows/f", content="a: [", headers={"Content-Type": "application/yaml"})
    assert response.status_code == 422 and paths(response) == ["$"]


def test_every_route_reads_its_body_through_the_checks() -> None:
    app = create_app(Settings(codec_endpoint=True))
    assert unchecked_routes(app) == []
    # A router made without the route class is found (create_app refuses to start with one).
    plain = APIRouter(prefix="/v1/forgotten")
    plain.add_api_route("/route", lambda: None, methods=["POST"])
    app.include_router(plain)
    assert unchecked_routes(app) == ["/v1/forgotten/route"]


def test_yaml_aliases_cannot_make_the_walk_unbounded() -> None:
    # Nine levels of nine aliases: 387 million values from a few hundred bytes.
    document: Any = [1] * 9
    for _ in range(9):
        document = [document] * 9
    limits = JsonLimits(max_depth=64, max_values=10_000)
    assert value_faults(document, limits) == [("$", "more than 10000 values")]


def test_a_huge_integer_literal_is_read_with_a_path_not_a_value_error() -> None:
    value = loads('{"a": [1, 1' + "0" * 5000 + "]}")
    assert [f.path for f in value_faults(value)] == ["$.a[1]"]
    # The number stops the first reading; nesting past the parser's stack after it, the second.
    with pytest.raises(JsonUnreadable) as raised:
        loads('{"a": 1' + "0" * 5000 + ', "b": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert raised.value.faults == [
        ("$.b" + "[0]" * (LIMITS.max_depth - 1), f"nested deeper than {LIMITS.max_depth} levels")
    ]


@contextlib.asynccontextmanager
async def served(
    store: Store, temporal: WorkflowEnvironment, tmp_path: Path, limit: int
) -> AsyncIterator[str]:
    """The app on a real HTTP server (uvicorn) on 127.0.0.1 with a body limit of ``limit`` bytes."""
    settings = Settings(database_url=str(store.url), data_dir=tmp_path, sweep_seconds=0, max_body_bytes=limit)
    app = create_app(settings, store=store, temporal=temporal.client)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def put_chunked(url: str, key: str, total: int) -> tuple[bytes, bytes, int]:
    """PUT a profile whose body (``total`` bytes, made as it goes) is sent chunked, without
    Content-Length, reading the answer while sending; returns the status line, the answer's body
    and how many bytes were sent when the answer came."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"PUT /v1/profiles/p HTTP/1.1\r\nHost: flowline\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    sent = 0

    def chunk(data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def pump() -> None:
        nonlocal sent
        chunk(b'{"attributes": {"a": "')
        while sent < total:
            chunk(b" " * 4096)
            sent += 4096
            await writer.drain()
        chunk(b'"}}')
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    pumping = asyncio.create_task(pump())
    try:
        status = await asyncio.wait_for(reader.readline(), 60)
        at = sent
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        body = await reader.readexactly(length)
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await pumping
        writer.close()
    return status, body, at


async def test_bodies_over_the_limit_are_413_before_they_are_read(
    store: Store, temporal: WorkflowEnvironment, tenant: Tenant, tmp_path: Path
) -> None:
    limit = 64 * 1024
    too_large = {"message": f"the request body is larger than {limit} bytes"}
    headers = {"Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"}
    async with (
        served(store, temporal, tmp_path, limit) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as client,
    ):
        # With Content-Length: refused on the header, before a byte of the body is read.
        big = b'{"attributes": {"a": "' + b"x" * limit + b'"}}'
        response = await client.put("/v1/profiles/p", content=big)
        assert response.status_code == 413 and response.json() == too_large
        # Chunked, without Content-Length: counted as it streams and refused at the limit. The
        # body would be a gigabyte: the answer comes while the client is still sending, after
        # little more than the limit (plus what socket buffers hold).
        status, body, sent = await put_chunked(url, tenant.key, 1024**3)
        assert status.startswith(b"HTTP/1.1 413"), status
        assert json.loads(body) == too_large
        assert sent < 16 * 1024**2, sent
        # Just under the limit, chunked too: taken.
        status, body, sent = await put_chunked(url, tenant.key, limit - 8192)
        assert status.startswith(b"HTTP/1.1 200"), (status, body[:200])
        assert (await client.get("/v1/profiles/p")).json()["attributes"]["a"].strip() == ""
        assert (await client.put("/v1/profiles/p", content=big[: limit - 10] + b'"}}')).status_code == 200
