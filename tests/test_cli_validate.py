"""`flowline validate` offline (no server, no database) and `flowline schema`: every fault of every
file at the line and column of the node its path names, syntax errors at theirs, files that are
not flows said so, GitHub annotations, directories; the committed JSON Schema is the generated
one, and every example flow points editors at it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from commands import get_app
from commands.flows import schema_text
from flowline.flow.document import flow_json_schema
from flowline.flow.source import check_flow_text

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_COMMENT = "# yaml-language-server: $schema="

# Faults at known places: an unknown trigger operator (nested in a list), a bad duration, a
# dangling branch target (nested in a mapping), an unknown field, a step without its content.
BAD_FLOW = textwrap.dedent(
    """\
    # a comment, so that lines are not just indexes
    name: Nested faults
    trigger:
      type: event
      event: cart_updated
      where:
        - {property: total, op: greater_than, value: 0}
        - property: currency
          op: bigger
          value: EUR
    steps:
      - id: wait
        type: wait_for_event
        conditions: [{event: checkout_completed}]
        timeout: 3x
        next: {happened: done, timeout: nowhere}
      - id: push
        type: send
        channel: push
        colour: blue
      - id: done
        type: exit
    """
)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(get_app(), list(args))
    return result.exit_code, result.stdout, result.stderr


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def faults_of(output: str) -> dict[str, str]:
    """``file:line:column: path: message`` lines as {path: "line:column"}."""
    found = {}
    for line in output.splitlines():
        _file, line_no, column, rest = line.split(":", 3)
        found[rest.strip().split(": ", 1)[0]] = f"{line_no}:{column}"
    return found


def test_every_fault_of_a_file_at_the_line_and_column_of_its_node(tmp_path: Path) -> None:
    path = write(tmp_path, "nested.yaml", BAD_FLOW)
    code, out, err = run("validate", str(path))
    assert code == 1
    assert all(line.startswith(f"{path}:") for line in out.splitlines())
    assert faults_of(out) == {
        "$.trigger.where[1].op": "9:11",  # the value `bigger`
        "$.steps[0].timeout": "15:14",  # the value `3x`
        "$.steps[1].colour": "20:13",  # an unknown field: its value's place
        "$.steps[1].content": "17:5",  # missing: the step that lacks it
    }
    assert "unknown field" in out and "Field required" in out
    assert "4 faults in 1 of 1 file" in err


def test_a_graph_fault_inside_a_mapping_points_at_its_value(tmp_path: Path) -> None:
    text = BAD_FLOW.replace("op: bigger", "op: is").replace("3x", "1h").replace("    colour: blue\n", "")
    text = text.replace("channel: push\n", "channel: push\n    content: {title: T, body: B}\n")
    code, out, _ = run("validate", str(write(tmp_path, "graph.yaml", text)))
    assert code == 1
    assert faults_of(out) == {"$.steps[0].next.timeout": "16:37"}
    assert "no step has the id 'nowhere'" in out


def test_a_valid_file_and_its_id_from_the_file_name(tmp_path: Path) -> None:
    text = BAD_FLOW.replace("op: bigger", "op: is").replace("3x", "1h").replace("    colour: blue\n", "")
    text = text.replace("nowhere", "push").replace(
        "channel: push\n", "channel: push\n    content: {body: B}\n"
    )
    path = write(tmp_path, "cart-abandonment.yaml", text)
    assert run("validate", str(path))[0] == 0
    checked = check_flow_text(text, default_id="cart-abandonment")
    assert checked.faults == [] and checked.flow is not None and checked.flow.id == "cart-abandonment"
    # A file name that is no flow id: the fault is the id's, at the document's mapping (line 2:
    # line 1 is a comment).
    bad_name = write(tmp_path, "not an id!.yaml", text)
    code, out, _ = run("validate", str(bad_name))
    assert code == 1 and ":2:1: $.id: 'not an id!' is not an id" in out


def test_a_yaml_syntax_error_names_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", "name: Broken\ntrigger: {type: event, event: a\nsteps: []\n")
    code, out, _ = run("validate", str(path))
    assert code == 1
    assert out.startswith(f"{path}:3:6: $: not valid YAML: ")
    assert len(out.splitlines()) == 1
    tabs = write(tmp_path, "tabs.yaml", "name: T\nsteps:\n\t- id: a\n")
    assert run("validate", str(tabs))[1].startswith(f"{tabs}:3:1: $: not valid YAML: ")


def test_a_json_file_is_read_as_json_with_its_places(tmp_path: Path) -> None:
    document = {
        "name": "J",
        "trigger": {"type": "event", "event": "a"},
        "steps": [{"id": "a", "type": "pause", "for": "1e5"}, {"id": "b", "type": "exit"}],
    }
    path = write(tmp_path, "j.json", json.dumps(document, indent=2))
    code, out, _ = run("validate", str(path))
    assert code == 1 and faults_of(out) == {"$.steps[0].for": "11:14"}
    broken = write(tmp_path, "broken.json", '{\n  "name": "J",,\n}')
    code, out, _ = run("validate", str(broken))
    assert code == 1 and out.startswith(f"{broken}:2:15: $: not valid JSON: ")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("- id: a\n  type: exit\n", "not a flow: the file is a list"),
        ("", "not a flow: the file is empty"),
        ("just words\n", "not a flow: the file is text"),
        ("title: Release notes\nversion: 3\n", "not a flow: it has neither trigger nor steps"),
    ],
)
def test_a_file_that_is_not_a_flow_says_so(tmp_path: Path, text: str, said: str) -> None:
    path = write(tmp_path, "other.yaml", text)
    code, out, _ = run("validate", str(path))
    assert code == 1
    assert out.startswith(f"{path}:1:1: $: {said}")
    assert len(out.splitlines()) == 1


def test_several_files_and_directories(tmp_path: Path) -> None:
    good = (ROOT / "examples" / "welcome.yaml").read_text()
    write(tmp_path, "flows/good.yaml", good)
    write(tmp_path, "flows/nested/bad.yml", BAD_FLOW)
    write(tmp_path, "flows/nested/cart.test.yaml", "scenario: not a flow\n")  # a scenario: skipped
    write(tmp_path, "flows/notes.txt", "not yaml at all: [")  # not a flow file: skipped
    list_file = write(tmp_path, "list.yaml", "[1, 2]\n")
    code, out, err = run("validate", str(tmp_path / "flows"), str(list_file))
    assert code == 1
    files = {line.split(":", 1)[0] for line in out.splitlines()}
    assert files == {str(tmp_path / "flows/nested/bad.yml"), str(list_file)}
    assert "5 faults in 2 of 3 files" in err
    assert run("validate", str(tmp_path / "flows" / "good.yaml"))[0] == 0
    code, _, err = run("validate", str(tmp_path / "missing.yaml"))
    assert code == 1 and "missing.yaml: no such file or directory" in err


def test_github_annotations(tmp_path: Path) -> None:
    path = write(tmp_path, "nested.yaml", BAD_FLOW)
    code, out, _ = run("validate", "--format", "github", str(path))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 4
    assert f"::error file={path},line=9,col=11::$.trigger.where[1].op: " in lines[0]
    assert all(line.startswith("::error file=") for line in lines)


def test_the_examples_are_valid() -> None:
    code, _, err = run("validate", str(ROOT / "examples"))
    assert code == 0, err


def test_validate_as_a_process() -> None:
    """The console script (when installed beside this Python) and ``python -m commands``."""
    commands = [[sys.executable, "-m", "commands"]]
    script = Path(sys.executable).parent / "flowline"
    if script.exists():
        commands.append([str(script)])
    for command in commands:
        bad = subprocess.run(
            [*command, "validate", "--format", "github", "tests/test_cli_validate.py", "examples"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 1, bad.stderr
        assert bad.stdout.startswith(
            "::error file=tests/test_cli_validate.py,line=1,col=3::$: not valid YAML"
        )
        assert "Traceback" not in bad.stderr
        good = subprocess.run(
            [*command, "validate", "examples"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert good.returncode == 0 and good.stdout == "", good.stderr


# ------------------------------------------------------------------ schema


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "flow.schema.json").read_text()
    assert committed == schema_text(), "run: flowline schema --output docs/flow.schema.json"
    assert json.loads(committed)["properties"]["steps"]["items"]["discriminator"]["propertyName"] == "type"


def test_the_schema_command_writes_the_openapi_flow_document(tmp_path: Path) -> None:
    code, out, _ = run("schema")
    assert code == 0 and json.loads(out) == flow_json_schema()
    target = tmp_path / "flow.schema.json"
    assert run("schema", "--output", str(target))[0] == 0
    written = json.loads(target.read_text())
    # The OpenAPI's component is the same schema, its definitions moved to the components.
    from api.app import create_app
    from flowline.settings import Settings

    components = create_app(Settings(sweep_seconds=0)).openapi()["components"]["schemas"]
    component = json.dumps(components["FlowDocument"]).replace("#/components/schemas/", "#/$defs/")
    assert json.loads(component) == {k: v for k, v in written.items() if k not in ("$defs", "$schema")}
    assert set(written["$defs"]) <= set(components)


def example_flows() -> list[Path]:
    """Every flow file of the repository's examples (scenario files are not flows)."""
    found = []
    for path in sorted((ROOT / "examples").rglob("*.y*ml")):
        if path.name.endswith((".test.yaml", ".test.yml")):
            continue
        document = yaml.safe_load(path.read_text())
        if isinstance(document, dict) and "steps" in document:
            found.append(path)
    return found


@pytest.mark.parametrize("path", example_flows(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_flow_points_editors_at_the_schema(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith(SCHEMA_COMMENT), f"{path.name}: put `{SCHEMA_COMMENT}...` on its first line"
    target = (path.parent / first.removeprefix(SCHEMA_COMMENT).strip()).resolve()
    assert target == ROOT / "docs" / "flow.schema.json"
