"""Every outbound effect of a simulated journey, captured instead of sent.

The worker's activities are the production ones; only what they are handed differs:
- their HTTP client's transport (``CaptureTransport``) records each request (webhooks, call_api,
  custom elements, and the SMS and push providers, whose base URLs point at names that never
  resolve) and answers it: by the scenario's scripted answers, else as the real service would;
- the email provider is an SMTP server on 127.0.0.1 (``SmtpCapture``) that keeps each message;
- each activity runs with its request in ``CURRENT_REQUEST`` (``RequestTracing``), so a captured request
  knows the step that made it.
In-app messages need no capture: they are written to the throwaway store's inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl

import httpx
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from simulation.scenario import Answer

SMS_BASE_URL = "http://sms.simulation.invalid"
PUSH_BASE_URL = "http://push.simulation.invalid"
CURRENT_REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "simulated_activity_request", default=None
)


class RequestTracing(Interceptor):
    """A worker interceptor (Temporal's public API) that runs each activity with its request in
    ``CURRENT_REQUEST``: the activities themselves stay the production ones, untouched."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TracedActivity(next)


class _TracedActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        token = CURRENT_REQUEST.set(input.args[0] if input.args else None)
        try:
            return await self.next.execute_activity(input)
        finally:
            CURRENT_REQUEST.reset(token)


@dataclass
class HttpEffect:
    """One HTTP request a journey made, and what it was answered."""

    kind: str  # sms | push | webhook | call_api | custom | http
    at: datetime | None
    step: str | None
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    status: int
    answer: Any


@dataclass
class EmailEffect:
    message_id: str
    to: str
    sender: str
    subject: str
    text: str | None
    html: str | None


_KINDS = {"call_api": "call_api", "deliver_webhook": "webhook", "run_custom_element": "custom"}


def _decoded(request: httpx.Request, raw: bytes) -> Any:
    content_type = request.headers.get("content-type", "")
    if not raw:
        return None
    if "json" in content_type:
        with contextlib.suppress(ValueError):
            return json.loads(raw)
    if "x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(raw.decode("utf-8", "replace")))
    return raw.decode("utf-8", "replace")


@dataclass
class CaptureTransport(httpx.AsyncBaseTransport):
    answers: list[Answer] = field(default_factory=list)
    effects: list[HttpEffect] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = await request.aread()
        url = str(request.url)
        visit = CURRENT_REQUEST.get()
        step = getattr(getattr(visit, "step", None), "id", None)
        at = None
        kind = "http"
        if activity.in_activity():
            info = activity.info()
            at = info.current_attempt_scheduled_time
            kind = _KINDS.get(info.activity_type, "http")
        if url.startswith(SMS_BASE_URL):
            kind = "sms"
        elif url.startswith(PUSH_BASE_URL):
            kind = "push"
        status, body, headers = self._answer(kind, step, url)
        content = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        if body is not None and not isinstance(body, bytes):
            headers = {"content-type": "application/json", **headers}
        effect = HttpEffect(
            kind, at, step, request.method, url, dict(request.headers), _decoded(request, raw), status, body
        )
        self.effects.append(effect)
        return httpx.Response(status, headers=headers, content=content, request=request)

    def _answer(self, kind: str, step: str | None, url: str) -> tuple[int, Any, dict[str, str]]:
        for answer in self.answers:
            if (answer.step is not None and answer.step == step) or (
                answer.url is not None and url.startswith(answer.url)
            ):
                return answer.status, answer.body, answer.headers
        n = len(self.effects) + 1
        if kind == "sms":
            return 201, {"sid": f"SMsimulated{n}", "status": "queued"}, {}
        if kind == "push":
            return 200, {"name": f"projects/simulation/messages/{n}"}, {}
        # A service nobody scripted answers 200 with an empty object.
        return 200, {}, {}


class SmtpCapture:
    """Just enough SMTP (RFC 5321, no TLS, no auth) on 127.0.0.1 to receive and keep messages."""

    def __init__(self) -> None:
        self.messages: list[EmailEffect] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[SmtpCapture]:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 simulation ESMTP")
        try:
            while line := await reader.readline():
                verb = line.decode("utf-8", "replace").strip().split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    say("250-simulation")
                    say("250-8BITMIME")
                    say("250 SMTPUTF8")
                elif verb == "DATA":
                    say("354 end with <CRLF>.<CRLF>")
                    await writer.drain()
                    self._keep(await _data(reader))
                    say("250 OK")
                elif verb == "QUIT":
                    say("221 bye")
                    break
                else:  # MAIL, RCPT, RSET, NOOP
                    say("250 OK")
                await writer.drain()
        finally:
            writer.close()

    def _keep(self, raw: bytes) -> None:
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        self.messages.append(
            EmailEffect(
                message_id=str(message.get("Message-ID", "")),
                to=str(message.get("To", "")),
                sender=str(message.get("From", "")),
                subject=str(message.get("Subject", "")),
                text=None if text is None else str(text.get_content()),
                html=None if html is None else str(html.get_content()),
            )
        )


async def _data(reader: asyncio.StreamReader) -> bytes:
    lines = []
    while (line := await reader.readline()) not in (b".\r\n", b".\n", b""):
        lines.append(line[1:] if line.startswith(b"..") else line)
    return b"".join(lines)
