"""The connection of the API commands to a Flowline API: the global ``--url`` / ``--key``, and
one place that turns an unreachable server or an error answer into one clear line and exit 1.

A command module uses it so::

    def status(ctx: typer.Context, flow_id: str) -> None:
        with api_client(ctx) as api:                        # Api: .call / .json, .http (httpx)
            row = api.json("GET", f"/v1/flows/{flow_id}")   # a non-2xx answer: one line, exit 1
            answer = api.call("GET", "/v1/x", allow=(404,)) # statuses the command handles itself

``connection(ctx)`` gives the url and key (e.g. for an httpx.AsyncClient of its own, with
``answer_error`` and ``fail`` for its errors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx
import typer

from flowline.settings import get_settings

DEV_API_KEY = "dev-api-key"  # in the data directory (written by `flowline run`)
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


def default_url() -> str:
    """The API of the `flowline run` (`make run`) stack these settings describe."""
    settings = get_settings()
    host = "127.0.0.1" if settings.api_host in ("", "0.0.0.0", "::") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def default_key() -> str | None:
    """The key `flowline run` wrote into the data directory, if there is one."""
    path = get_settings().data_dir / DEV_API_KEY
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def fail(message: str) -> NoReturn:
    """One line on stderr, exit status 1: what every command does on an error."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@dataclass
class Connection:
    url: str
    key: str | None
    default_key: Callable[[], str | None] = default_key

    def api_key(self) -> str:
        key = self.key or self.default_key()
        if not key:
            fail("no API key: pass --key, set FLOWLINE_KEY, or `flowline run` (it writes .data/dev-api-key)")
        return key

    @contextmanager
    def client(self) -> Iterator[Api]:
        headers = {"Authorization": f"Bearer {self.api_key()}"}
        with httpx.Client(base_url=self.url.rstrip("/"), headers=headers, timeout=TIMEOUT) as http:
            yield Api(http, self.url)


def connection(ctx: typer.Context) -> Connection:
    """The global options (commands/__init__.py) as the command's context holds them."""
    found = ctx.find_object(Connection)
    return found if found is not None else Connection(url=default_url(), key=None)


@contextmanager
def api_client(ctx: typer.Context) -> Iterator[Api]:
    with connection(ctx).client() as api:
        yield api


class Api:
    """Calls that answer the JSON body of a 2xx answer, or fail with one line (``allow``: statuses
    returned to the caller as they are, e.g. 404 to tell a new flow)."""

    def __init__(self, http: httpx.Client, url: str) -> None:
        self.http = http
        self.url = url

    def call(self, method: str, path: str, *, allow: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            fail(f"cannot reach Flowline at {self.url}: {error or type(error).__name__}")
        if answer.is_success or answer.status_code in allow:
            return answer
        fail(answer_error(method, path, answer))

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.call(method, path, **kwargs).json()


def answer_error(method: str, path: str, answer: httpx.Response) -> str:
    """``METHOD path: status message``, then each fault of a document on a line of its own."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    line = f"{method} {path}: {answer.status_code} {message or answer.reason_phrase}"
    if answer.status_code == 401:
        line += " (check --key / FLOWLINE_KEY)"
    faults = body.get("faults") if isinstance(body, dict) else None
    for fault in faults if isinstance(faults, list) else []:
        if isinstance(fault, dict):
            line += f"\n  {fault.get('path')}: {fault.get('message')}"
    return line
