"""Wall time of `flowline simulate` on a month-long flow: a 30-day pause, then a 7-day wait for
an event that never comes (target: under 5 s, from the command's start to its exit).

python bench/simulate.py [--runs 5]

Each run is one `simulate` command through Typer's runner, in this process: the test server
starts (0.3 s), a template database is migrated, the journey runs to its end on the
time-skipping server, and the report is printed. Last line: `simulate_wall_s=<median>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from commands.simulation import register

FLOW = """\
id: month
name: A month of waiting
trigger: {type: event, event: signed_up}
steps:
  - {id: welcome, type: send, channel: email, content: {subject: "Welcome", text: "Hi"}}
  - {id: month_pause, type: pause, for: 30d}
  - id: week_wait
    type: wait_for_event
    conditions: [{event: purchased}]
    timeout: 7d
    next: {happened: done, timeout: nudge}
  - {id: nudge, type: send, channel: email, content: {subject: "Still there?", text: "A month on"}}
  - {id: done, type: exit}
"""
SCENARIO = """\
profile: {id: p, attributes: {email: p@example.com}}
events: [{at: 0s, name: signed_up}]
expect: {path: [welcome, month_pause, week_wait, nudge, done], sent: [welcome, nudge]}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    app = typer.Typer()
    register(app)

    @app.callback()
    def _main() -> None:
        pass

    with tempfile.TemporaryDirectory() as directory:
        flow, scenario = Path(directory) / "flow.yaml", Path(directory) / "scenario.yaml"
        flow.write_text(FLOW)
        scenario.write_text(SCENARIO)
        walls = []
        for run in range(args.runs):
            started = time.perf_counter()
            result = CliRunner().invoke(app, ["simulate", str(flow), "--scenario", str(scenario)])
            walls.append(time.perf_counter() - started)
            if result.exit_code != 0:
                raise SystemExit(result.output)
            if run == 0:
                print(result.output)
            print(f"run {run + 1}: {walls[-1]:.2f} s")
    print(f"simulate_wall_s={statistics.median(walls):.2f}")


if __name__ == "__main__":
    main()
