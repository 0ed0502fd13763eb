"""The `make run` stack for benchmarks: ``cli.py run`` on free ports, and a webhook receiver."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- the receiver


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 (its own threads) noting when each event's webhook arrived."""

    url: str = ""
    arrivals: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    sink = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the worker's httpx client expects

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            now = time.time()
            event_id = str(json.loads(body)["data"]["event_id"])
            with sink.lock:
                if event_id in sink.arrivals:
                    sink.duplicates += 1
                else:
                    sink.arrivals[event_id] = now
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- the stack (`make run`)


@dataclass
class Stack:
    api: str
    temporal_address: str
    key: str
    process: subprocess.Popen[bytes]
    log: Path

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) so far of each process `cli.py run` started."""
        found: dict[str, float] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) != self.process.pid:
                    continue
                cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
            except (OSError, ValueError):
                continue
            name = "api" if "uvicorn" in cmdline else "worker" if "worker.py" in cmdline else "temporal"
            found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
        return found


@contextlib.contextmanager
def flowline_run(data_dir: Path, database_url: str) -> Iterator[Stack]:
    """``python cli.py run`` on free ports, as `make run` starts it; Ctrl-C (SIGINT) stops it."""
    import httpx

    api_port, temporal_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        FLOWLINE_DATA_DIR=str(data_dir),
        FLOWLINE_DATABASE_URL=database_url,
        FLOWLINE_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        FLOWLINE_TEMPORAL_UI_PORT=str(free_port()),
        FLOWLINE_API_PORT=str(api_port),
        FLOWLINE_TASK_QUEUE="bench-latency",
    )
    api = f"http://127.0.0.1:{api_port}"
    log = data_dir / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "cli.py", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"cli.py run exited:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{api}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the stack was not ready in 120 s:\n{log.read_text()}")
            time.sleep(0.5)
        key = (data_dir / "dev-api-key").read_text().strip()
        yield Stack(api, f"127.0.0.1:{temporal_port}", key, process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
