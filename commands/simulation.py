"""`flowline simulate` and `flowline test`: flows run offline on Temporal's time-skipping test
server with scenarios (docs/simulate.md). No server, no database of the user's."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from flowline.flow.document import FlowDocument
from flowline.flow.validation import FlowInvalid, load_document, parse_flow
from simulation.expectations import Check, check
from simulation.report import print_checks, print_simulation
from simulation.runner import Simulation, SimulationError, Simulator
from simulation.scenario import Scenario, ScenarioInvalid, load_scenario

TEST_PATTERN = "*.test.yaml"


class Unusable(Exception):
    """A file that cannot be simulated: its faults, one per line."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_flow(path: Path) -> FlowDocument:
    try:
        return parse_flow(load_document(path.read_text(encoding="utf-8")))
    except OSError as error:
        raise Unusable([f"{path}: cannot read: {error.strerror}"]) from None
    except FlowInvalid as error:
        raise Unusable([f"{path}: {f.path}: {f.message}" for f in error.faults]) from None


def read_scenario(path: Path) -> Scenario:
    try:
        scenario = load_scenario(path)
    except ScenarioInvalid as error:
        raise Unusable([f"{path}: {f.path}: {f.message}" for f in error.faults]) from None
    scenario.name = scenario.name or path.name
    return scenario


@dataclass
class TestOutcome:
    path: Path
    simulation: Simulation | None = None
    checks: list[Check] = field(default_factory=list)
    error: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.error and all(c.passed for c in self.checks)


def find_tests(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob(TEST_PATTERN) if p.is_file())


async def run_tests(paths: list[Path]) -> list[TestOutcome]:
    """Every scenario on one test server (started once for the run)."""
    outcomes = []
    async with Simulator() as simulator:
        for path in paths:
            outcome = TestOutcome(path)
            try:
                scenario = read_scenario(path)
                if scenario.flow is None:
                    raise Unusable([f"{path}: $.flow: a test scenario names its flow file"])
                flow = load_flow(path.parent / scenario.flow)
                outcome.simulation = await simulator.run(flow, scenario)
                outcome.checks = check(outcome.simulation)
                if not outcome.checks:
                    outcome.error = [f"{path}: $.expect: a test scenario states expectations"]
            except Unusable as error:
                outcome.error = error.lines
            except SimulationError as error:
                outcome.error = [f"{path}: {error}"]
            outcomes.append(outcome)
    return outcomes


async def simulate(flow_path: Path, scenario_path: Path) -> tuple[Simulation, list[Check]]:
    flow = load_flow(flow_path)
    scenario = read_scenario(scenario_path)
    async with Simulator() as simulator:
        simulation = await simulator.run(flow, scenario)
    return simulation, check(simulation)


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_command(
        flow: Path = typer.Argument(..., help="the flow file (YAML or JSON)"),
        scenario: Path = typer.Option(..., "--scenario", "-s", help="the scenario file (YAML)"),
    ) -> None:
        """Run a flow for one scenario on Temporal's time-skipping test server, offline: the path
        with the virtual time of each step and every captured message and request."""
        console = Console(soft_wrap=True)  # whole lines: greppable in CI logs
        try:
            simulation, checks = asyncio.run(simulate(flow, scenario))
        except Unusable as error:
            for line in error.lines:
                console.print(f"[red]{escape(line)}[/]")
            raise typer.Exit(1) from None
        except SimulationError as error:
            console.print(f"[red]{escape(str(error))}[/]")
            raise typer.Exit(1) from None
        print_simulation(console, simulation)
        console.print(f"  [dim]simulated in {simulation.wall_seconds:.2f} s[/]")
        if checks:
            print_checks(console, checks)
        if not all(c.passed for c in checks):
            raise typer.Exit(1)

    @app.command("test")
    def test_command(
        directory: Path = typer.Argument(Path("."), help="where to find *.test.yaml scenarios"),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="print each simulation's path"),
    ) -> None:
        """Run every scenario (*.test.yaml) under a directory and check its expectations."""
        console = Console(soft_wrap=True)  # whole lines: greppable in CI logs
        paths = find_tests(directory)
        if not paths:
            console.print(f"[red]no {TEST_PATTERN} scenarios under {escape(str(directory))}[/]")
            raise typer.Exit(1)
        try:
            outcomes = asyncio.run(run_tests(paths))
        except SimulationError as error:
            console.print(f"[red]{escape(str(error))}[/]")
            raise typer.Exit(1) from None
        for outcome in outcomes:
            mark = "[green]PASS[/]" if outcome.passed else "[red]FAIL[/]"
            took = f" [dim]({outcome.simulation.wall_seconds:.2f} s)[/]" if outcome.simulation else ""
            console.print(f"{mark} {escape(str(outcome.path))}{took}")
            for line in outcome.error:
                console.print(f"     [red]{escape(line)}[/]")
            if verbose and outcome.simulation is not None:
                print_simulation(console, outcome.simulation)
            print_checks(console, outcome.checks if verbose or not outcome.passed else [], indent="     ")
        failed = [o for o in outcomes if not o.passed]
        checks = sum(len(o.checks) for o in outcomes)
        failed_checks = sum(1 for o in outcomes for c in o.checks if not c.passed)
        color = "red" if failed else "green"
        console.print(
            f"[{color}]{len(outcomes) - len(failed)} passed, {len(failed)} failed[/] "
            f"({len(outcomes)} scenarios, {checks} expectations, {failed_checks} failed)"
        )
        if failed:
            raise typer.Exit(1)
