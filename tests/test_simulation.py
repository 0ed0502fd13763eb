"""`flowline simulate` and `flowline test` (commands/simulation.py, simulation/): scenarios run
the real journey workflow on the time-skipping test server with every effect captured."""

from __future__ import annotations

import re
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from commands.simulation import load_flow, register
from simulation.runner import Simulator
from simulation.scenario import ScenarioInvalid, format_offset, parse_offset, parse_scenario

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "flows"


def invoke(*args: str) -> Result:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _main() -> None:  # two commands: Typer then takes the first word as the command
        pass

    return CliRunner().invoke(app, list(args), terminal_width=200)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


# ---------------------------------------------------------------- scenarios (no server)


def faults(document: object) -> dict[str, str]:
    with pytest.raises(ScenarioInvalid) as raised:
        parse_scenario(document)
    return {f.path: f.message for f in raised.value.faults}


def test_offsets_compound_units() -> None:
    assert parse_offset("2d3h").total_seconds() == 2 * 86400 + 3 * 3600
    assert parse_offset("0").total_seconds() == 0
    assert parse_offset("1w30m").total_seconds() == 7 * 86400 + 1800


def test_scenario_faults_name_their_paths() -> None:
    found = faults(
        {
            "profile": {"id": "p", "colour": "red"},
            "events": [{"at": "0s", "name": "a"}, {"at": "2x", "name": "b"}],
            "answers": [{"step": "s", "url": "https://x", "status": 200}, {"status": 999, "step": "t"}],
            "expect": {"sent": [{"channel": "fax"}]},
        }
    )
    assert found["$.profile.colour"] == "unknown field"
    assert "'2x' is not an offset" in found["$.events[1].at"]
    assert "exactly one of step and url" in found["$.answers[0]"]
    assert "$.answers[1].status" in found
    assert "$.expect.sent[0].channel" in found
    assert not any("Scenario" in path or "Scenario" in message for path, message in found.items())


def test_events_out_of_order_and_not_a_mapping() -> None:
    assert (
        "order of their offsets"
        in faults({"events": [{"at": "1d", "name": "a"}, {"at": "1h", "name": "b"}]})["$"]
    )
    assert faults(["a"]) == {"$": "a scenario is a mapping (object)"}


def test_simulate_reports_scenario_faults_with_file_and_path(tmp_path: Path) -> None:
    scenario = write(tmp_path, "bad.yaml", "events:\n  - {at: soon, name: x}\n")
    result = invoke("simulate", str(EXAMPLES / "cart_abandonment.yaml"), "--scenario", str(scenario))
    assert result.exit_code == 1
    assert "bad.yaml: $.events[0].at: 'soon' is not an offset" in result.output
    assert "Traceback" not in result.output


def test_simulate_reports_an_invalid_flow(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "flow.yaml",
        "id: f\nname: F\ntrigger: {type: event, event: e}\nsteps: [{id: a, type: pause}]\n",
    )
    scenario = write(tmp_path, "s.yaml", "events: [{name: e}]\n")
    result = invoke("simulate", str(flow), "--scenario", str(scenario))
    assert result.exit_code == 1
    assert "flow.yaml: $.steps[0]" in result.output


def test_the_examples_are_valid_flows_with_the_schema_comment() -> None:
    flows = sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.endswith(".test.yaml"))
    assert len(flows) == 7
    for path in flows:
        load_flow(path)
        assert path.read_text().startswith("# yaml-language-server: $schema=../../docs/flow.schema.json\n")
        assert (EXAMPLES / path.name.replace(".yaml", ".test.yaml")).exists()


def test_the_scenarios_in_the_docs_parse() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "simulate.md").read_text(), re.S)
    scenarios = [yaml.safe_load(b) for b in blocks]
    assert len(scenarios) >= 2
    for document in scenarios:
        parse_scenario(document)


# ---------------------------------------------------------------- on the test server


@pytest.mark.temporal
def test_every_example_passes_its_scenario() -> None:
    result = invoke("test", str(EXAMPLES))
    assert result.exit_code == 0, result.output
    assert "7 passed, 0 failed (7 scenarios" in result.output
    assert result.output.count("PASS") == 7


@pytest.mark.temporal
def test_simulate_prints_the_path_with_virtual_times_and_rendered_messages() -> None:
    result = invoke(
        "simulate",
        str(EXAMPLES / "cart_abandonment.yaml"),
        "--scenario",
        str(EXAMPLES / "cart_abandonment.test.yaml"),
    )
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "+0s  step wait_checkout (wait_for_event) → timeout" in lines
    assert "+1h  step remind (send) → sent" in lines
    assert (
        "+1h    sent push to ann <ann-phone>: Title: Still thinking? | Your cart of 42 € is waiting" in lines
    )
    assert "+5h  step sms (send) → sent" in lines
    assert "+5h    sent sms to ann <+33612345678>: Hi Ann, your cart expires soon" in lines
    assert "journey completed (exit_step) at +5h" in lines
    assert "PASS path" in lines


@pytest.mark.temporal
def test_an_event_at_an_offset_reaches_the_waiting_journey(tmp_path: Path) -> None:
    scenario = write(
        tmp_path,
        "opened.yaml",
        """\
        profile: {id: ann, attributes: {phone: "+33612345678"}, push_tokens: [{token: t}]}
        events:
          - {at: 0s, name: cart_updated, properties: {total: 5}}
          - {at: 2h, name: message_opened, properties: {step_id: remind}}
        expect: {path: [wait_checkout, remind, opened, done], sent: [remind]}
        """,
    )
    result = invoke("simulate", str(EXAMPLES / "cart_abandonment.yaml"), "--scenario", str(scenario))
    assert result.exit_code == 0, result.output
    assert "+2h  step done (exit) → exit" in [line.strip() for line in result.output.splitlines()]


@pytest.mark.temporal
def test_a_wrong_expectation_fails_with_the_difference(tmp_path: Path) -> None:
    text = (EXAMPLES / "cart_abandonment.test.yaml").read_text()
    text = text.replace("flow: cart_abandonment.yaml", f"flow: {EXAMPLES / 'cart_abandonment.yaml'}")
    text = text.replace('contains: "Hi Ann"', 'contains: "Hello Ann"').replace(
        "exit: exit_step", "exit: stopped"
    )
    write(tmp_path, "wrong.test.yaml", text)
    result = invoke("test", str(tmp_path))
    assert result.exit_code == 1
    out = result.output
    assert "FAIL " in out and "wrong.test.yaml" in out
    assert "FAIL sent" in out and "contains='Hello Ann'" in out and "sms (sms to ann): Hi Ann" in out
    assert "FAIL exit" in out and "expected: stopped" in out and "actual:   completed (exit_step)" in out
    assert "PASS path" in out  # a failed scenario shows each of its checks
    assert "0 passed, 1 failed (1 scenarios, 3 expectations, 2 failed)" in out


@pytest.mark.temporal
def test_simulate_exits_1_when_an_expectation_fails(tmp_path: Path) -> None:
    scenario = write(
        tmp_path,
        "s.yaml",
        """\
        profile: {id: ann, push_tokens: [{token: t}]}
        events: [{at: 0s, name: cart_updated, properties: {total: 5}}]
        expect: {path: [wait_checkout, done]}
        """,
    )
    result = invoke("simulate", str(EXAMPLES / "cart_abandonment.yaml"), "--scenario", str(scenario))
    assert result.exit_code == 1
    assert "FAIL path" in result.output
    assert "expected: wait_checkout → done" in result.output


@pytest.mark.temporal
async def test_a_scripted_answer_flows_into_variables_through_jsonpath() -> None:
    flow = load_flow(EXAMPLES / "webinar_registration.yaml")
    scenario = parse_scenario(
        {
            "profile": {"id": "gail", "attributes": {"email": "g@example.com", "phone": "+14155550100"}},
            "events": [{"name": "webinar_signup", "properties": {"webinar_id": "w-7"}}],
            "answers": [
                {
                    "step": "register",
                    "status": 200,
                    "body": {"registrant": {"id": "r-1", "join_url": "https://j/1"}},
                }
            ],
        }
    )
    async with Simulator() as simulator:
        simulation = await simulator.run(flow, scenario)
        assert simulation.variables == {"join_url": "https://j/1", "registrant_id": "r-1"}
        [call] = simulation.requests
        assert (call.kind, call.step, call.method, call.status) == ("call_api", "register", "POST", 200)
        assert call.url == "https://webinars.example.com/api/webinars/w-7/registrants"
        assert call.body == {"email": "g@example.com", "first_name": None}  # a bare {{ path }} keeps null
        confirm = next(m for m in simulation.messages if m.step == "confirm")
        assert (confirm.subject, confirm.body) == (
            "You are registered",
            "Join here: https://j/1 (registration r-1)",
        )

        # A 4xx takes the error branch (client_error has no target): the apology goes out instead.
        refused = scenario.model_copy(
            update={"answers": [scenario.answers[0].model_copy(update={"status": 404})]}
        )
        simulation = await simulator.run(flow, refused)
        assert [p.step for p in simulation.path] == ["register", "sorry", "done"]
        assert simulation.path[0].branch == "client_error"
        assert [m.subject for m in simulation.messages] == ["We could not register you"]


@pytest.mark.temporal
async def test_until_stops_looking_while_the_journey_waits_and_unmatched_events_start_nothing() -> None:
    flow = load_flow(EXAMPLES / "birthday.yaml")
    scenario = parse_scenario(
        {"profile": {"id": "finn", "attributes": {"email": "f@example.com"}}, "until": "3d"}
    )
    async with Simulator() as simulator:
        simulation = await simulator.run(flow, scenario)
        assert simulation.status == "running"
        assert [p.step for p in simulation.path] == ["greet", "wait_week"]
        assert simulation.ended is None

        cart = load_flow(EXAMPLES / "cart_abandonment.yaml")
        nothing = parse_scenario({"events": [{"name": "cart_updated", "properties": {"total": 0}}]})
        simulation = await simulator.run(cart, nothing)
        assert simulation.journey_id is None and simulation.path == []

        # The journey left waiting was ended: the next scenario's timers still fire.
        week = parse_scenario({"profile": {"id": "finn", "attributes": {"email": "f@example.com"}}})
        simulation = await simulator.run(flow, week)
        assert [p.step for p in simulation.path] == ["greet", "wait_week", "reminder"]
        assert simulation.status == "completed"


@pytest.mark.temporal
async def test_skipped_messages_show_their_reason() -> None:
    flow = load_flow(EXAMPLES / "cart_abandonment.yaml")
    # No push token and no phone: both sends are skipped, with why.
    scenario = parse_scenario({"events": [{"name": "cart_updated", "properties": {"total": 3}}]})
    async with Simulator() as simulator:
        simulation = await simulator.run(flow, scenario)
    assert [(m.step, m.status) for m in simulation.messages] == [("remind", "skipped"), ("sms", "skipped")]
    assert all(m.detail for m in simulation.messages)


@pytest.mark.temporal
def test_a_fixed_start_makes_quiet_hours_the_same_on_every_run(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "quiet.yaml",
        """\
        id: quiet
        name: Quiet
        trigger: {type: event, event: signed_up}
        settings: {quiet_hours: {from: "21:00", to: "08:00"}}
        steps:
          - {id: wait, type: pause, for: 1h}
          - {id: hello, type: send, channel: sms, content: {body: "Hello"}}
        """,
    )
    scenario = write(
        tmp_path,
        "quiet.test.yaml",
        """\
        flow: quiet.yaml
        start: {at: "20:30", weekday: friday, timezone: Europe/Paris}
        profile: {id: q, attributes: {phone: "+33612345678", timezone: Europe/Paris}}
        events: [{name: signed_up}]
        expect: {sent: [hello]}
        """,
    )
    result = invoke("simulate", str(flow), "--scenario", str(scenario))
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    # 21:30 Paris is inside the quiet hours: the sms waits for 08:00, 10h30m later.
    assert "+1h  step hello (send) → sent" in lines
    assert "+11h30m    sent sms to q <+33612345678>: Hello" in lines


def test_a_start_names_a_known_zone() -> None:
    assert (
        "unknown time zone 'Mars/Base'"
        in faults({"start": {"at": "09:00", "timezone": "Mars/Base"}})["$.start"]
    )
    assert "$.start.at" in faults({"start": {"at": "25:00"}})


@pytest.mark.temporal
def test_a_test_file_without_flow_or_expectations_fails(tmp_path: Path) -> None:
    write(tmp_path, "no_flow.test.yaml", "events: [{name: x}]\nexpect: {path: []}\n")
    write(tmp_path, "no_expect.test.yaml", f"flow: {EXAMPLES / 'birthday.yaml'}\n")
    write(tmp_path, "bad_yaml.test.yaml", "flow: [unclosed\n")
    result = invoke("test", str(tmp_path))
    assert result.exit_code == 1
    assert "no_flow.test.yaml: $.flow: a test scenario names its flow file" in result.output
    assert "no_expect.test.yaml: $.expect: a test scenario states expectations" in result.output
    assert "bad_yaml.test.yaml: $: not valid YAML or JSON" in result.output
    assert "0 passed, 3 failed" in result.output


def test_test_without_scenarios_says_so(tmp_path: Path) -> None:
    result = invoke("test", str(tmp_path))
    assert result.exit_code == 1
    assert "no *.test.yaml scenarios under" in result.output


@pytest.mark.temporal
def test_entry_variables_that_do_not_fit_are_one_line(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "vars.yaml",
        """\
        id: vars
        name: Vars
        trigger: {type: flow}
        settings: {variables: {score: {type: number}}}
        steps: [{id: done, type: exit}]
        """,
    )
    scenario = write(tmp_path, "s.yaml", "entry: {variables: {score: high}}\n")
    result = invoke("simulate", str(flow), "--scenario", str(scenario))
    assert result.exit_code == 1
    assert result.output.startswith("the journey could not start: $.entry.variables.score: must be a number")
    assert "Traceback" not in result.output


def test_offsets_print_to_the_minute_from_an_hour_on() -> None:
    assert format_offset(parse_offset("1h") + timedelta(seconds=1.2)) == "+1h"
    assert format_offset(parse_offset("11h29m59s") + timedelta(milliseconds=900)) == "+11h30m"
    assert format_offset(parse_offset("2d3h")) == "+2d3h"
    assert format_offset(timedelta(seconds=90.4)) == "+1m30s"
    assert format_offset(timedelta(milliseconds=30)) == "+0s"
