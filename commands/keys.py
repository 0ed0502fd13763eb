"""``flowline keys create|list|revoke``: the workspace's API keys through the API (/v1/keys, an
admin key's calls; docs/keys.md). ``flowline create-key`` (commands/stack.py) makes a key in the
database itself, for the first admin key or to get back in."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from commands.client import api_client
from commands.flows import console


class KeyScope(StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


keys_app = typer.Typer(
    no_args_is_help=True,
    help="The workspace's API keys: create, list, revoke (through the API, with an admin key).",
)


def _moment(value: Any) -> str:
    """An ISO timestamp to the second, in UTC as the API gives it ("-" for none)."""
    if not isinstance(value, str) or not value:
        return "-"
    return value.replace("T", " ")[:19]


@keys_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="what the key is for, or who holds it")],
    scope: Annotated[
        KeyScope,
        typer.Option(help="read: GET only; write: everything but keys; admin: keys too", show_default=False),
    ],
) -> None:
    """Create a key and print its secret on stdout (shown this once: keep it now)."""
    with api_client(ctx) as api:
        created = api.json("POST", "/v1/keys", json={"name": name, "scope": scope.value})
    typer.echo(f"created key {created['id']} {created['name']!r} (scope {created['scope']})", err=True)
    typer.echo(created["key"])


@keys_app.command("list")
def list_keys(ctx: typer.Context) -> None:
    """The workspace's keys, revoked ones too, with their last use (written once a minute)."""
    with api_client(ctx) as api:
        found = api.json("GET", "/v1/keys")["keys"]
    table = Table("id", "name", "scope", "created", "last used", "revoked", box=None, pad_edge=False)
    for key in found:
        table.add_row(
            key["id"],
            key["name"],
            key["scope"],
            _moment(key["created_at"]),
            _moment(key["last_used_at"]),
            _moment(key["revoked_at"]),
        )
    console().print(table)


@keys_app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(metavar="ID", help="the key's id (from `flowline keys list`)")],
) -> None:
    """Revoke a key: every API process refuses it from its next request."""
    with api_client(ctx) as api:
        revoked = api.json("DELETE", f"/v1/keys/{quote(key_id, safe='')}")
    typer.echo(f"revoked key {revoked['id']} {revoked['name']!r} at {_moment(revoked['revoked_at'])} UTC")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
