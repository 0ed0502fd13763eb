"""Servers and workers as separate OS processes, for tests that kill them for real (SIGKILL).

The Temporal dev server keeps its state in a SQLite file and listens on fixed ports, so a restart
finds every workflow where the killed process left it, at the same address.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from flowline.journey import SEARCH_ATTRIBUTES
from tests.servers import BIN, free_port

ROOT = Path(__file__).resolve().parent.parent


def _stop(process: subprocess.Popen[bytes] | None, sig: signal.Signals, patience: float = 30.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=patience)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``command`` with its output appended to ``log`` (a fast fork: fine in async code)."""
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


@dataclass
class DevServer:
    """``temporal server start-dev`` with its store in ``db_file`` (as ``cli.py run`` starts it)."""

    db_file: Path
    log: Path
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [
            str(BIN / "temporal"),
            "server",
            "start-dev",
            "--db-filename",
            str(self.db_file),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(self.http_port),
            "--metrics-port",
            str(self.metrics_port),
            "--headless",
            "--log-level",
            "error",
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ]
        for name, kind in SEARCH_ATTRIBUTES.items():
            command += ["--search-attribute", f"{name}={kind}"]
        return command

    async def start(self, patience: float = 60.0) -> float:
        """Start it and wait until it answers; returns the seconds that took."""
        began = time.monotonic()
        self.process = _spawn(self.command(), self.log)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the dev server exited:\n{self.log.read_text()[-3000:]}")
            try:
                await self.connect()  # connecting asks the server for its system info
                return time.monotonic() - began
            except Exception:
                if time.monotonic() - began > patience:
                    raise
                await asyncio.sleep(0.2)

    async def connect(self) -> Client:
        return await Client.connect(self.address, data_converter=pydantic_data_converter)

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)


@dataclass
class WorkerProcess:
    """``python worker.py`` configured through FLOWLINE_* variables, as in production."""

    database_url: str
    temporal_address: str
    task_queue: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            FLOWLINE_DATABASE_URL=self.database_url,
            FLOWLINE_TEMPORAL_ADDRESS=self.temporal_address,
            FLOWLINE_TASK_QUEUE=self.task_queue,
            # The receiver listens on 127.0.0.1, which production refuses (flowline/channels/outbound.py).
            FLOWLINE_ALLOW_PRIVATE_OUTBOUND="true",
        )
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
        self.process = _spawn([sys.executable, "worker.py"], self.log, env)

    async def wait_until_polling(self, patience: float = 60.0) -> float:
        """Wait for this start's "worker polling" log line; returns the seconds since the start."""
        began = time.monotonic()
        marker = f"--- start {self.starts}\n"
        while True:
            text = self.log.read_text(errors="replace")
            if "worker polling" in text.rsplit(marker, 1)[-1]:
                return time.monotonic() - began
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{text[-3000:]}")
            if time.monotonic() - began > patience:
                raise RuntimeError(f"the worker did not poll within {patience} s:\n{text[-3000:]}")
            await asyncio.sleep(0.05)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        _stop(self.process, signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.process, signal.SIGTERM)


@contextmanager
def api_process(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """``uvicorn --factory api.app:create_app`` on ``port``, as ``cli.py run`` starts it."""
    command = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--no-access-log"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def ready(url: str, patience: float = 60.0) -> None:
    began = time.monotonic()
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(f"{url}/readyz", timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() - began < patience, f"{url} did not become ready"
            await asyncio.sleep(0.1)
