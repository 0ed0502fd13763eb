"""Flows as code (docs/cli.md): ``validate`` offline (``--remote``: the references too),
``schema``, ``apply`` (a plan, then the changes), ``pull``, ``flows``, ``status``, and the
lifecycle (``publish``, ``drain``, ``stop``)."""

from __future__ import annotations

import difflib
import json
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from commands.client import Api, api_client, fail
from flowline.flow.document import FlowDocument, flow_json_schema
from flowline.flow.source import CheckedFlow, SourceFault, check_flow_file
from flowline.settings import get_settings


def console() -> Console:
    """Rich output to today's stdout; piped or captured, lines are not cut at 80 columns (a
    table of flows read by grep or a CI log)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


FLOW_SUFFIXES = (".yaml", ".yml", ".json")
# Scenario files (`flowline test`) live beside flows; they are not flows.
SCENARIO_SUFFIXES = (".test.yaml", ".test.yml")


class Format(StrEnum):
    text = "text"
    github = "github"


# ------------------------------------------------------------------ files


def flow_files(paths: list[Path]) -> list[Path]:
    """The files named, and the flow files under the directories named (sorted, no scenarios)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in FLOW_SUFFIXES
                and not p.name.lower().endswith(SCENARIO_SUFFIXES)
            )
        elif path.exists():
            found.append(path)
        else:
            fail(f"{path}: no such file or directory")
    return list(dict.fromkeys(found))


def check_files(paths: list[Path]) -> list[tuple[Path, CheckedFlow]]:
    settings = get_settings()
    return [
        (path, check_flow_file(path, max_steps=settings.max_steps, limits=settings.json_limits()))
        for path in flow_files(paths)
    ]


def fault_line(path: Path, fault: SourceFault, output: Format = Format.text) -> str:
    if output is Format.github:
        # Annotation properties and messages escape %, CR, LF (and , : in properties).
        message = _escape(f"{fault.path}: {fault.message}")
        name = _escape(str(path)).replace(",", "%2C").replace(":", "%3A")
        return f"::error file={name},line={fault.line},col={fault.column}::{message}"
    return f"{path}:{fault.line}:{fault.column}: {fault.path}: {fault.message}"


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _print_faults(checked: list[tuple[Path, CheckedFlow]], output: Format) -> int:
    count = 0
    for path, result in checked:
        for fault in sorted(result.faults, key=lambda f: (f.line, f.column)):
            typer.echo(fault_line(path, fault, output))
            count += 1
    return count


def validate(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="flow files (YAML or JSON) or directories of them"),
    output: Format = typer.Option(Format.text, "--format", help="text, or github (Actions annotations)"),
    remote: bool = typer.Option(
        False, help="also check what the flows name (segments, destinations, elements) on the server"
    ),
) -> None:
    """Check flow files offline: every fault as file:line:column: path: message (exit status 1 on
    any)."""
    checked = check_files(paths)
    if remote:
        with api_client(ctx) as api:
            checked = [(path, _server_check(api, result, references=True)) for path, result in checked]
    faults = _print_faults(checked, output)
    invalid = sum(1 for _, result in checked if result.faults)
    if faults:
        typer.echo(f"{_count(faults, 'fault')} in {invalid} of {_count(len(checked), 'file')}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{_count(len(checked), 'flow')} valid", err=True)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _server_check(api: Api, result: CheckedFlow, *, references: bool) -> CheckedFlow:
    """A flow valid offline, checked by the server (``references``: also what it names there, as
    publishing does; without: what saving checks, custom steps against their elements), its
    faults placed in the file."""
    if result.flow is None or result.source is None:
        return result
    flow = result.flow
    params = {"references": "true"} if references else {}
    answer = api.call("POST", f"/v1/flows/{flow.id}/validate", params=params, json=flow.dump(), allow=(422,))
    if answer.is_success:
        return result
    faults = answer.json().get("faults") or [{"path": "$", "message": answer.json().get("message")}]
    located = [
        SourceFault(f["path"], f["message"], *result.source.locate(f["path"]))
        for f in faults
        if isinstance(f, dict)
    ]
    return CheckedFlow(result.source, None, located)


# ------------------------------------------------------------------ schema

SCHEMA_FILE = Path("docs/flow.schema.json")


def schema_text() -> str:
    return json.dumps(flow_json_schema(), indent=2, ensure_ascii=False) + "\n"


def schema(
    output: Path = typer.Option(None, "--output", "-o", help="write to this file instead of stdout"),
) -> None:
    """The flow document's JSON Schema (the OpenAPI's FlowDocument), for editors: put
    `# yaml-language-server: $schema=<path>` at the top of a flow file."""
    if output is None:
        typer.echo(schema_text(), nl=False)
        return
    output.write_text(schema_text(), encoding="utf-8")
    typer.echo(f"wrote {output}", err=True)


# ------------------------------------------------------------------ apply


def flow_yaml(document: dict[str, Any]) -> str:
    """A flow document as YAML, keys in the document's order (what `pull` writes and `apply` diffs)."""
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


@dataclass
class Change:
    path: Path
    flow: FlowDocument
    action: str  # created, changed, unchanged
    diff: list[str]
    never_published: bool


def _plan(api: Api, path: Path, flow: FlowDocument) -> Change:
    answer = api.call("GET", f"/v1/flows/{flow.id}", allow=(404,))
    local = flow.dump()
    if answer.status_code == 404:
        return Change(path, flow, "created", [], True)
    row = answer.json()
    # Both sides are canonical documents (the server stores FlowDocument.dump()): formatting,
    # comments and defaults written out or left out are no change.
    server = row["draft"]
    published = row.get("current_version") is not None
    if server == local:
        return Change(path, flow, "unchanged", [], not published)
    label = (
        f"{flow.id} (server draft)"
        if not published
        else f"{flow.id} (server draft; current version {row['current_version']})"
    )
    diff = list(
        difflib.unified_diff(
            flow_yaml(server).splitlines(), flow_yaml(local).splitlines(), label, str(path), lineterm=""
        )
    )
    return Change(path, flow, "changed", diff, not published)


def _show_diff(lines: list[str]) -> None:
    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        style = "cyan" if line.startswith("@@") else style
        console().print(f"    {line}", style=style, markup=False, soft_wrap=True)


def apply(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="flow files (YAML or JSON) or directories of them"),
    publish: bool = typer.Option(
        False, help="publish what is created or changed (and drafts never published)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the plan only"),
) -> None:
    """Save flow files as the server's drafts: first the plan (created, changed with a diff,
    unchanged), then the changes. The flow's id is its `id`, else the file's name."""
    checked = check_files(paths)
    if _print_faults(checked, Format.text):
        fail("nothing applied: fix the faults above (flowline validate)")
    flows = [(path, result.flow) for path, result in checked if result.flow is not None]
    seen: dict[str, Path] = {}
    for path, flow in flows:
        if flow.id in seen:
            fail(f"{path} and {seen[flow.id]} are both the flow {flow.id!r}")
        seen[flow.id] = path
    with api_client(ctx) as api:
        plan = [_plan(api, path, flow) for path, flow in flows]
        # What the server alone checks on saving, before anything is saved: all or nothing.
        results = dict(checked)
        refused = [
            (c.path, _server_check(api, results[c.path], references=False))
            for c in plan
            if c.action != "unchanged"
        ]
        if _print_faults(refused, Format.text):
            fail("nothing applied: the server refuses the faults above")
        marks = {"created": ("+", "green"), "changed": ("~", "yellow"), "unchanged": ("=", "dim")}
        for change in plan:
            mark, style = marks[change.action]
            console().print(
                f"{mark} {change.action:<9} {change.flow.id}  ({change.path})", style=style, markup=False
            )
            _show_diff(change.diff)
        counts = {a: sum(1 for c in plan if c.action == a) for a in marks}
        to_publish = [c for c in plan if publish and (c.action != "unchanged" or c.never_published)]
        summary = (
            f"Plan: {counts['created']} to create, {counts['changed']} to change, "
            f"{counts['unchanged']} unchanged"
        )
        if publish:
            summary += f", {len(to_publish)} to publish"
        console().print(summary + ".", markup=False)
        if dry_run:
            return
        if not counts["created"] and not counts["changed"] and not to_publish:
            console().print("Nothing to change.", markup=False)
            return
        for change in plan:
            if change.action != "unchanged":
                api.json("PUT", f"/v1/flows/{change.flow.id}", json=change.flow.dump())
                console().print(f"{change.action} {change.flow.id}", markup=False)
        for change in to_publish:
            published = api.json("POST", f"/v1/flows/{change.flow.id}/publish")
            console().print(f"published {change.flow.id} version {published['version']}", markup=False)


# ------------------------------------------------------------------ pull, list, status


def pull(
    ctx: typer.Context,
    ids: list[str] = typer.Argument(None, help="flow ids [default: every flow]"),
    directory: Path = typer.Option(Path("."), "--dir", help="where to write <id>.yaml"),
) -> None:
    """Write the server's flows (their drafts) as YAML files, one per flow."""
    with api_client(ctx) as api:
        if ids:
            rows = [api.json("GET", f"/v1/flows/{flow_id}") for flow_id in ids]
        else:
            rows = api.json("GET", "/v1/flows")["flows"]
    directory.mkdir(parents=True, exist_ok=True)
    for row in rows:
        target = directory / f"{row['id']}.yaml"
        target.write_text(flow_yaml(row["draft"]), encoding="utf-8")
        typer.echo(f"wrote {target}")


def list_flows(ctx: typer.Context) -> None:
    """The flows: id, name, status, current version, journeys in flight, last change."""
    with api_client(ctx) as api:
        rows = api.json("GET", "/v1/flows")["flows"]
    table = Table("id", "name", "status", "version", "in flight", "updated")
    for row in rows:
        version = row["current_version"]
        table.add_row(
            row["id"],
            row["name"],
            row["status"],
            "-" if version is None else str(version),
            str(row["in_flight"]),
            row["updated_at"][:19].replace("T", " "),
        )
    console().print(table)


def status(ctx: typer.Context, flow_id: str = typer.Argument(..., help="the flow's id")) -> None:
    """A flow's status, current version, journeys in flight, and per step of each version: visits,
    journeys there now, how visits left, errors."""
    with api_client(ctx) as api:
        row = api.json("GET", f"/v1/flows/{flow_id}")
        stats = api.json("GET", f"/v1/flows/{flow_id}/stats")
    version = row["current_version"]
    console().print(
        f"{row['id']}  {row['name']}\nstatus {row['status']}  version {'-' if version is None else version}"
        f"  in flight {row['in_flight']}",
        markup=False,
    )
    for version_stats in reversed(stats["versions"]):
        console().print(
            f"\nversion {version_stats['version']}: entered {version_stats['entered']}, "
            f"running {version_stats['running']}, conversions {version_stats['conversions']}",
            markup=False,
        )
        table = Table("step", "type", "entered", "at step", "left", "errors")
        for step in version_stats["steps"]:
            left = ", ".join(f"{branch} {n}" for branch, n in step["left"].items())
            table.add_row(
                step["id"],
                step["type"],
                str(step["entered"]),
                str(step["at_step"]),
                left,
                str(step["errors"]),
            )
        console().print(table)


# ------------------------------------------------------------------ lifecycle


def publish(
    ctx: typer.Context,
    flow_id: str = typer.Argument(..., help="the flow's id"),
    move_journeys: bool = typer.Option(
        False, help="move journeys of older versions to the same step of the new version (docs/flows.md)"
    ),
) -> None:
    """Publish the draft as a new version (also runs a draining or stopped flow again)."""
    body = {"move_journeys": True} if move_journeys else None
    with api_client(ctx) as api:
        answer = api.json("POST", f"/v1/flows/{flow_id}/publish", json=body)
    line = f"{flow_id} running version {answer['version']}"
    if answer.get("journeys_asked_to_move") is not None:
        line += f" ({answer['journeys_asked_to_move']} journeys asked to move)"
    typer.echo(line)


def drain(ctx: typer.Context, flow_id: str = typer.Argument(..., help="the flow's id")) -> None:
    """Take no new entries; journeys in flight finish."""
    with api_client(ctx) as api:
        api.json("POST", f"/v1/flows/{flow_id}/drain")
    typer.echo(f"{flow_id} draining")


def stop(ctx: typer.Context, flow_id: str = typer.Argument(..., help="the flow's id")) -> None:
    """Take no new entries and stop every journey in flight."""
    with api_client(ctx) as api:
        answer = api.json("POST", f"/v1/flows/{flow_id}/stop")
    typer.echo(f"{flow_id} stopped ({answer.get('journeys_stopped', 0)} journeys stopped)")


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(schema)
    app.command()(apply)
    app.command()(pull)
    app.command("flows")(list_flows)
    app.command()(status)
    app.command()(publish)
    app.command()(drain)
    app.command()(stop)
