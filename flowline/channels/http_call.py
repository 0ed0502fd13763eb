"""call_api steps over HTTP, apart from Temporal: the request a step makes for one person, the
sending (waiting for the answer or not), and what the answer means (branch, saved variables)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import httpx
from liquid.exceptions import LiquidError

from flowline import jsonpath
from flowline.channels.outbound import OutboundRefused
from flowline.channels.webhook import IDEMPOTENCY_HEADER
from flowline.flow.steps.http import CallApiBody, CallApiStep
from flowline.journey import CallApiResult
from flowline.json_values import non_finite_error
from flowline.templates import map_strings, render

# Saved values travel in the workflow's history: a larger answer is refused, not truncated.
MAX_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "Flowline"
# ``{{ vars.total }}`` alone (no filters): the JSON value it names, not its text.
_WHOLE_VALUE = re.compile(r"^\{\{\s*([A-Za-z_]\w*(?:\.\w+)*)\s*\}\}$")


class CallRefused(ValueError):
    """The request cannot be made (a template fails, the URL is no http(s) URL): not retried."""


class CallFailed(Exception):
    """No answer: the connection failed or timed out (retried)."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    too_large: bool = False


def idempotency_key(journey_id: str, step_id: str, visit: int) -> str:
    """The same for every attempt of one visit of a step, different for every other visit."""
    raw = f"{journey_id}/{step_id}/{visit}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _lookup(context: dict[str, Any], dotted: str) -> Any:
    node: Any = context
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def render_json(value: Any, context: dict[str, Any]) -> Any:
    """A JSON body with its templates rendered; ``"{{ path }}"`` alone keeps its value's type."""

    def one(text: str) -> Any:
        whole = _WHOLE_VALUE.match(text)
        return _lookup(context, whole.group(1)) if whole else render(text, context)

    return map_strings(value, one)


def _form_text(value: Any, context: dict[str, Any]) -> str:
    if isinstance(value, str):
        return render(value, context)
    return json.dumps(value)  # true / false / numbers as JSON writes them


class RequestTemplate(Protocol):
    """What a request is made from: a call_api step, or a declarative element's request."""

    @property
    def method(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def body(self) -> CallApiBody | None: ...
    @property
    def wait_for_response(self) -> bool: ...
    @property
    def timeout(self) -> timedelta: ...


def build_request(
    client: httpx.AsyncClient, step: RequestTemplate, context: dict[str, Any], key: str
) -> httpx.Request:
    """The request ``step`` makes with ``context`` (profile, event, vars, flow, journey; an
    element's also ``params``)."""
    try:
        url = render(step.url, context).strip()
        headers = {name: render(value, context) for name, value in step.headers.items()}
        content: bytes | None = None
        form: dict[str, str] | None = None
        if step.body is not None and step.body.form is not None:
            form = {name: _form_text(value, context) for name, value in step.body.form.items()}
        elif step.body is not None:
            content = json.dumps(render_json(step.body.json_, context), separators=(",", ":")).encode()
    except LiquidError as error:
        raise CallRefused(f"a template failed: {str(error).splitlines()[0]}") from None
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise CallRefused(f"the URL is not valid: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise CallRefused(f"the URL renders to {url[:200]!r}, not an http(s) URL")
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise CallRefused(f"header {name} renders to a value with a line break")

    merged = httpx.Headers({"User-Agent": USER_AGENT, IDEMPOTENCY_HEADER: key})
    if step.wait_for_response:
        merged["Accept"] = "application/json"
    if content is not None:
        merged["Content-Type"] = "application/json"
    for name, value in headers.items():
        merged[name] = value  # the step's own win (names compare without case)
    seconds = step.timeout.total_seconds()
    return client.build_request(
        step.method, parsed, headers=merged, content=content, data=form, timeout=httpx.Timeout(seconds)
    )


def where(request: httpx.Request) -> str:
    """Method and URL without the query string (which may carry keys) for error messages."""
    return f"{request.method} {request.url.copy_with(query=None, fragment=None)}"


async def exchange(client: httpx.AsyncClient, request: httpx.Request, seconds: float) -> Answer:
    """Send ``request`` and read the answer (at most MAX_RESPONSE_BYTES) within ``seconds`` in all."""
    try:
        async with asyncio.timeout(seconds):
            response = await client.send(request, stream=True)
            try:
                body, too_large = bytearray(), False
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        too_large = True
                        break
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException):
        raise CallFailed(f"{where(request)} timed out after {seconds:g}s") from None
    except OutboundRefused as error:
        raise CallRefused(str(error)) from None
    except httpx.HTTPError as error:
        raise CallFailed(f"{where(request)} failed: {error!r}") from None
    return Answer(response.status_code, response.headers, bytes(body), too_large)


async def send_only(
    client: httpx.AsyncClient, request: httpx.Request, seconds: float, background: set[asyncio.Task[Any]]
) -> None:
    """Return once ``request`` is sent, without its answer. The connection stays open in the
    background until the answer comes or ``seconds`` pass: some servers drop the work of a
    client that hangs up."""
    sent = asyncio.Event()

    async def trace(event: str, _info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            sent.set()

    request.extensions = {**request.extensions, "trace": trace}
    call = asyncio.create_task(exchange(client, request, seconds))
    background.add(call)
    call.add_done_callback(background.discard)
    call.add_done_callback(lambda task: task.cancelled() or task.exception())  # retrieved: no warning
    waiter = asyncio.create_task(sent.wait())
    try:
        await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if sent.is_set():
        return
    await call  # it ended before the request was out: raises CallFailed


def snippet(body: bytes) -> str:
    """The start of a body for an error message."""
    return _snippet(body)


def classify(status: int) -> str:
    if 200 <= status < 300:
        return "success"
    if 400 <= status < 500:
        return "client_error"
    if 500 <= status < 600:
        return "server_error"
    return "error"  # 1xx left over, or 3xx: redirects are not followed


def _snippet(body: bytes) -> str:
    text = " ".join(body[:300].decode("utf-8", errors="replace").split())
    return f": {text}" if text else ""


def outcome(step: CallApiStep, request: httpx.Request, answer: Answer) -> CallApiResult:
    """Branch, error text and saved variables for an answer (the single-value rule for saves)."""
    branch = classify(answer.status)
    notes: list[str] = []
    if branch != "success":
        notes.append(f"{where(request)} answered {answer.status}{_snippet(answer.body)}")
    variables: dict[str, Any] = {}
    if step.save:
        document, unreadable = None, None
        if answer.too_large:
            unreadable = f"the response is larger than {MAX_RESPONSE_BYTES} bytes"
        else:
            try:
                document = json.loads(answer.body)
            except ValueError:
                unreadable = "the response is not JSON"
        if unreadable is not None:
            notes.append(unreadable)
            variables |= dict.fromkeys(step.save)
            if branch == "success":
                branch = "error"
        else:
            for name, path in step.save.items():
                variables[name], why = jsonpath.select_one(path, document)
                if why is not None:
                    notes.append(f"save {name}: {why}")
                elif (not_finite := non_finite_error(variables[name], path)) is not None:
                    # json.loads reads NaN, Infinity and 1e400: such a value is no JSON, never kept.
                    variables[name] = None
                    notes.append(f"save {name}: {path} selected {not_finite}")
                    if branch == "success":
                        branch = "error"
    for name, header in step.save_headers.items():
        values = answer.headers.get_list(header)
        variables[name] = ", ".join(values) if values else None
        if not values:
            notes.append(f"save_headers {name}: no {header} header")
    return CallApiResult(
        branch=branch, status_code=answer.status, error="; ".join(notes) or None, variables=variables
    )


def failure(step: CallApiStep, reason: str) -> CallApiResult:
    """No answer to go by: the ``error`` branch, every saved variable null."""
    return CallApiResult(branch="error", error=reason, variables=dict.fromkeys(step.saved_variables))
