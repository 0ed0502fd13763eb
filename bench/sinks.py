"""The receivers of bench/sends.py: a real SMTP server (aiosmtpd) and an HTTP sink on 127.0.0.1.

They run in a process of their own, as a mail server or a webhook receiver would: their CPU is
not taken from the worker's event loop (and is measured apart). Each counts what it received and
the distinct keys among it (an email's Message-ID, a POST's Idempotency-Key), so duplicates show,
and when each message arrived (bench/herd.py's lateness). The parent asks over a pipe.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Tally:
    received: int = 0
    keys: set[bytes] = field(default_factory=set)
    # time.time() of each arrival, in order (the parent's clock: same machine).
    arrivals: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, key: bytes) -> None:
        now = time.time()
        with self.lock:
            self.arrivals.append(now)
            self.received += 1
            self.keys.add(key)

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return self.received, len(self.keys)


class _MailHandler:
    """aiosmtpd handler: accepts every message and notes its Message-ID."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content: bytes = envelope.original_content or b""
        found = _MESSAGE_ID.search(content)
        self.tally.note(found.group(1) if found else b"")
        return "250 Message accepted for delivery"


def _http_server(tally: Tally) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the worker's httpx client expects

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            tally.note(self.headers.get("Idempotency-Key", "").encode())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def serve(conn: Connection, smtp_port: int) -> None:
    """The child process: both servers, then answer "counts" until "stop"."""
    from aiosmtpd.controller import Controller

    mail, posts = Tally(), Tally()
    controller = Controller(_MailHandler(mail), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    http = _http_server(posts)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    conn.send(http.server_address[1])
    try:
        while (request := conn.recv()) != "stop":
            if request == "arrivals":
                with posts.lock:
                    conn.send(list(posts.arrivals))
                continue
            assert request == "counts"
            conn.send({"email": mail.counts(), "http": posts.counts()})
    finally:
        http.shutdown()
        controller.stop()


@dataclass
class Sinks:
    smtp_port: int
    http_url: str
    pid: int
    _conn: Connection

    def counts(self, kind: str) -> tuple[int, int]:
        """(messages received, distinct keys among them) of ``kind`` ("email" or "http")."""
        self._conn.send("counts")
        received, distinct = self._conn.recv()[kind]
        return int(received), int(distinct)

    def http_arrivals(self) -> list[float]:
        """time.time() of each POST's arrival at the HTTP sink, in order."""
        self._conn.send("arrivals")
        return [float(t) for t in self._conn.recv()]


@contextmanager
def sinks() -> Iterator[Sinks]:
    from tests.servers import free_port

    # spawn, not fork: the parent runs an event loop and Temporal's threads.
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    smtp_port = free_port()
    process = context.Process(target=serve, args=(theirs, smtp_port), daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 60
        while not ours.poll(0.2):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sinks did not start (see the error above)")
        http_port = ours.recv()
        assert process.pid is not None
        yield Sinks(smtp_port, f"http://127.0.0.1:{http_port}/hook", process.pid, ours)
    finally:
        if process.is_alive():
            ours.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()
