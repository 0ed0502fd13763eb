"""What `flowline simulate` and `flowline test` print (Rich)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from simulation.expectations import Check
from simulation.runner import Message, Request, Simulation
from simulation.scenario import format_offset


def _json(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def _message(m: Message) -> str:
    where = f"{m.channel} to {m.to}" + (f" <{m.address}>" if m.address else "")
    if m.status != "sent":
        return f"[yellow]{m.status}[/] {escape(where)}: {escape(m.detail or '')}"
    parts = [
        f"Subject: {m.subject}" if m.subject else "",
        f"Title: {m.title}" if m.title else "",
        m.body or "",
    ]
    text = " | ".join(p for p in parts if p)
    data = f" data={_json(m.data)}" if m.data else ""
    return f"[green]sent[/] {escape(where)}: {escape(text)}{escape(data)}"


def _request(r: Request) -> str:
    body = f" {_json(r.body)}" if r.body is not None else ""
    return f"{r.kind} {r.method} {escape(r.url)}{escape(body)} → {r.status} {escape(_json(r.answer, 200))}"


def print_simulation(console: Console, simulation: Simulation) -> None:
    """The path with the virtual time of each step, and the effects each step had."""
    name = simulation.scenario.name or "scenario"
    console.print(f"[bold]{escape(simulation.flow_id)}[/] · {escape(name)}")
    if simulation.journey_id is None:
        console.print("  [yellow]no journey started[/] (no event matched the trigger)")
        return
    lines: list[tuple[Any, int, str]] = []
    for offset, event in simulation.events:
        lines.append((offset, 0, f"[dim]event {escape(event)}[/]"))
    for step in simulation.path:
        branch = f" → {escape(step.branch)}" if step.branch else ""
        error = f" [red]{escape(step.error)}[/]" if step.error else ""
        lines.append((step.offset, 1, f"step [bold]{escape(step.step)}[/] ({step.type}){branch}{error}"))
    for message in simulation.messages:
        lines.append((message.offset, 2, f"  {_message(message)}"))
    for request in simulation.requests:
        lines.append((request.offset, 2, f"  {_request(request)}"))
    for offset, _, text in sorted(lines, key=lambda line: (line[0], line[1])):
        console.print(f"  [cyan]{format_offset(offset):>10}[/]  {text}")
    end = simulation.exit_reason or ""
    at = f" at {format_offset(simulation.ended)}" if simulation.ended is not None else ""
    console.print(f"  journey {simulation.status} ({escape(end)}){at}")
    if simulation.variables:
        console.print(f"  variables: {escape(_json(simulation.variables))}")


def print_checks(console: Console, checks: list[Check], indent: str = "  ") -> None:
    for c in checks:
        if c.passed:
            console.print(f"{indent}[green]PASS[/] {escape(c.name)}")
        else:
            console.print(f"{indent}[red]FAIL[/] {escape(c.name)}")
            console.print(f"{indent}     expected: {escape(c.expected)}")
            console.print(f"{indent}     actual:   {escape(c.actual)}")
