"""`flowline import profiles FILE` and `flowline import events FILE`: the command line of
commands/importing.py (the engine), with a Rich progress bar and the report at the end."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from commands.importing import ImportFailed, ImportOptions, ImportReport, Kind, run_import

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_KEY_FILE = Path(".data/dev-api-key")

err = Console(stderr=True)
out = Console()


def connection(ctx: typer.Context, url: str | None, key: str | None) -> tuple[str, str]:
    """--url / --key given here, else the global options of the `flowline` command (its context's
    object: url, key and a default_key() as commands/client.py's Connection has them, or a dict,
    or the root command's own parameters), else FLOWLINE_URL / FLOWLINE_KEY, else the `make run`
    stack and its .data/dev-api-key."""
    root = ctx.find_root()
    found: dict[str, Any] = dict(root.params or {})
    for obj in (root.obj, ctx.obj):
        if isinstance(obj, dict):
            found |= {k: v for k, v in obj.items() if v is not None}
        elif obj is not None and hasattr(obj, "url"):
            found["url"] = found.get("url") or obj.url
            own_key = getattr(obj, "key", None)
            default_key = getattr(obj, "default_key", None)
            found["key"] = found.get("key") or own_key or (default_key() if callable(default_key) else None)
    url = url or found.get("url") or os.environ.get("FLOWLINE_URL") or DEFAULT_URL
    key = key or found.get("key") or os.environ.get("FLOWLINE_KEY")
    if not key:
        if not DEFAULT_KEY_FILE.is_file():
            hint = f"give --key, set FLOWLINE_KEY, or run `make run` ({DEFAULT_KEY_FILE})"
            raise ImportFailed(f"no API key: {hint}")
        key = DEFAULT_KEY_FILE.read_text().strip()
    return str(url), str(key)


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, target = pair.partition("=")
        if not sep or not column or not target:
            raise typer.BadParameter(f"{pair!r}: expected COLUMN=ATTRIBUTE (or COLUMN=- to leave it out)")
        mapping[column] = target
    return mapping


def print_report(report: ImportReport, kind: Kind) -> None:
    table = Table(title=f"import of {kind}" + (" (dry run: nothing written)" if report.dry_run else ""))
    for name in ("read", "created", "updated", "unchanged", "rejected"):
        table.add_column(name, justify="right")
    table.add_row(*(str(getattr(report, n)) for n in ("read", "created", "updated", "unchanged", "rejected")))
    out.print(table)
    if report.resumed_after_row is not None:
        out.print(f"resumed after row {report.resumed_after_row}")
    out.print(f"{report.rows_per_second:,.0f} rows/s over {report.seconds:.1f} s")
    if report.rejected and report.rejected_file is not None:
        out.print(f"rejected rows and why: {report.rejected_file}")


def _run(options: ImportOptions, quiet: bool) -> ImportReport:
    size = options.file.stat().st_size if options.file.is_file() else 0
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, disable=quiet, transient=False) as bar:
        task = bar.add_task(f"import {options.kind}", total=size or None, rows=0, rate=0.0)
        started = [0.0, 0]

        def progress(done_bytes: int, rows: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            if not started[0]:
                started[0], started[1] = elapsed, rows
            rate = (rows - started[1]) / (elapsed - started[0]) if elapsed > started[0] else 0.0
            bar.update(task, completed=done_bytes, rows=rows, rate=rate)

        return asyncio.run(run_import(options, progress))


def _command(kind: Kind) -> Any:
    def command(
        ctx: typer.Context,
        file: Annotated[Path, typer.Argument(help="a CSV (header row) or JSON Lines file")],
        mapping: Annotated[
            list[str] | None,
            typer.Option("--map", help="COLUMN=ATTRIBUTE (events: COLUMN=FIELD); COLUMN=- leaves it out"),
        ] = None,
        fmt: Annotated[
            Literal["csv", "jsonl"] | None,
            typer.Option("--format", help="csv or jsonl (default: by extension)"),
        ] = None,
        id_column: Annotated[str, typer.Option(help="the column holding the profile's id")] = "id",
        match: Annotated[
            Literal["id", "email"], typer.Option(help="find each person by the id column, or by email")
        ] = "id",
        blank: Annotated[
            Literal["ignore", "clear"],
            typer.Option(help="blank cells keep (ignore) or erase (clear) the value"),
        ] = "ignore",
        dry_run: Annotated[bool, typer.Option("--dry-run", help="check every row, write nothing")] = False,
        triggers: Annotated[
            bool, typer.Option("--triggers/--no-triggers", help="changes start profile_change flows")
        ] = True,
        batch_size: Annotated[int, typer.Option(min=1, max=1000, help="rows per request")] = 500,
        quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
        url: Annotated[str | None, typer.Option(help="the Flowline API (FLOWLINE_URL)")] = None,
        key: Annotated[str | None, typer.Option(help="an API key (FLOWLINE_KEY)")] = None,
    ) -> None:
        try:
            base, api_key = connection(ctx, url, key)
            options = ImportOptions(
                kind=kind,
                file=file,
                url=base,
                key=api_key,
                format=fmt,
                mapping=parse_mapping(mapping or []),
                id_column=id_column,
                match=match,
                blank=blank,
                dry_run=dry_run,
                triggers=triggers,
                batch_size=batch_size,
            )
            report = _run(options, quiet)
        except ImportFailed as error:
            err.print(f"[red]error:[/red] {error}", highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print(f"interrupted: run the same command again to resume ({file}.checkpoint)")
            raise typer.Exit(130) from None
        print_report(report, kind)
        if report.rejected:
            raise typer.Exit(1)

    command.__doc__ = (
        "Import people (profiles) from CSV or JSON Lines: merged by id or email, typed by the "
        "declared attributes."
        if kind == "profiles"
        else "Import events from CSV or JSON Lines through POST /v1/events (stored once per id)."
    )
    return command


def register(app: typer.Typer) -> None:
    """Adds `import profiles` and `import events` to the `flowline` command."""
    group = typer.Typer(help="Import people and events from CSV or JSON Lines.", no_args_is_help=True)
    group.command("profiles")(_command("profiles"))
    group.command("events")(_command("events"))
    app.add_typer(group, name="import")


def main() -> None:
    """The import commands on their own, as the `flowline` command has them (`import profiles
    FILE ...`): ``python -c "from commands.imports import main; main()" import profiles FILE``."""
    app = typer.Typer(no_args_is_help=True)
    register(app)
    app(prog_name="flowline")
