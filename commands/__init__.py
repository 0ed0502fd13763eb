"""Placeholder for the `flowline` console script (issue 15 item 1 builds it on another branch):
a Typer app and the register functions of its command groups. The import branch keeps only
what commands/imports.py needs to be run and tested."""

from __future__ import annotations

from collections.abc import Callable

import typer

from commands import imports

app = typer.Typer(no_args_is_help=True)
REGISTERS: list[Callable[[typer.Typer], None]] = [imports.register]
for _register in REGISTERS:
    _register(app)
