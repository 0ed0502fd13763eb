"""The ``flowline`` command (docs/cli.md): the stack on this machine (run, migrate, create-key,
...), flows as code against a Flowline API (validate offline, schema, apply, pull, publish, ...),
flows simulated and tested offline (simulate, test), people and events imported (import), and
the workspace's API keys (keys create|list|revoke).

Each command module provides ``register(app)``; main() registers those of REGISTERS. The global
``--url`` / ``--key`` reach the API commands through commands/client.py.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from commands import flows, imports, keys, simulation, stack
from commands.client import Connection, default_url

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Flowline: automated customer journeys. Flows as code, and the stack on this machine.",
)

REGISTERS: list[Callable[[typer.Typer], None]] = [
    stack.register,
    flows.register,
    simulation.register,
    imports.register,
    keys.register,
]


@app.callback()
def connection(
    ctx: typer.Context,
    url: str = typer.Option(
        None, envvar="FLOWLINE_URL", help="the Flowline API [default: the `flowline run` stack's]"
    ),
    key: str = typer.Option(
        None, envvar="FLOWLINE_KEY", help="an API key [default: the one in <data dir>/dev-api-key]"
    ),
) -> None:
    """Flowline: automated customer journeys. Flows as code, and the stack on this machine."""
    # Defaults are read lazily: offline commands must not need a readable key file.
    ctx.obj = Connection(url=url or default_url(), key=key)


_registered: list[Callable[[typer.Typer], None]] = []


def get_app() -> typer.Typer:
    """The app with the commands of every module of REGISTERS (once)."""
    for register in REGISTERS:
        if register not in _registered:
            register(app)
            _registered.append(register)
    return app


def main() -> None:
    get_app()()
