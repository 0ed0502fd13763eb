"""Log lines of the API, the worker and the export batcher: JSON objects (one a line) or plain
text (docs/metrics.md#logs).

A line carries the journey, flow and workspace ids of the work it is about, when known: the
worker sets them around each activity (activities/log_context.py), the API the workspace of the
caller (api/deps.py). Only the fields below are written, never a record's other attributes, so
what callers pass as ``extra`` (or what a library attaches) does not reach the log; messages
name ids and counts, never an email, a phone number, profile attributes or event properties.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

IDS = ("journey_id", "flow_id", "workspace_id")
_context: ContextVar[dict[str, str] | None] = ContextVar("flowline_log_context", default=None)


def current_ids() -> dict[str, str]:
    return dict(_context.get() or {})


def set_ids(**ids: str | None) -> None:
    """Add ids to the current context (the rest of this request or task)."""
    _context.set({**(_context.get() or {}), **{k: v for k, v in ids.items() if v}})


def request_ids() -> Token[dict[str, str] | None]:
    """A fresh context for one request (api/metrics.py), ended by ``end_request``."""
    return _context.set({})


def end_request(token: Token[dict[str, str] | None]) -> None:
    _context.reset(token)


@contextlib.contextmanager
def log_ids(**ids: str | None) -> Iterator[None]:
    """Ids on every line logged inside the block (in this task and the tasks it starts)."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


class _Ids(logging.Filter):
    """Puts the context's ids on the record (``record.ids``), and the journey id of a Temporal
    activity logger's line (its ``temporal_activity`` extra) when the context has none."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        temporal = getattr(record, "temporal_activity", None)
        if "journey_id" not in ids and isinstance(temporal, dict):
            workflow_id = temporal.get("workflow_id")
            if isinstance(workflow_id, str) and temporal.get("workflow_type") == "Journey":
                ids["journey_id"] = workflow_id
        record.ids = ids
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "ids", None) or {})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    def __init__(self, process: str) -> None:
        super().__init__(f"%(asctime)s {process} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = getattr(record, "ids", None) or {}
        return text + "".join(f" {key}={ids[key]}" for key in IDS if key in ids)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (a test's capture, or the process's)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def handler(process: str, log_format: Literal["json", "plain"]) -> logging.Handler:
    out = _Stderr()
    out.setFormatter(JsonFormatter(process) if log_format == "json" else PlainFormatter(process))
    out.addFilter(_Ids())
    return out


def configure(process: str, log_format: Literal["json", "plain"] = "json", level: str = "INFO") -> None:
    """The process's logging: one handler on the root logger (replacing one set before), uvicorn's
    server lines through it, uvicorn's access lines off (a client's address and ids in paths; the
    request metrics count requests: docs/metrics.md)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "flowline", False)]:
        root.removeHandler(old)
    ours = handler(process, log_format)
    ours.flowline = True  # type: ignore[attr-defined]
    root.addHandler(ours)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        server = logging.getLogger(name)
        server.handlers = []
        server.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every outbound request (URLs with whatever they carry) at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
