"""The documentation stays whole and true: a page for every step type and trigger, whose YAML
examples the flow language accepts, and no link or source path anywhere that leads nowhere."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter

from flowline.flow.steps import Step
from flowline.flow.triggers import Trigger

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS.rglob("*.md")])
YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path into the repository's source, as docs and comments cite them.
SOURCE_PATH = re.compile(
    r"(?<![\w./-])((?:api|activities|bench|commands|flowline|launch|services|tests|workflows)/[\w/.-]*\w\.(?:py|json|md))"
)


def _models(union: Any) -> list[type[BaseModel]]:
    """The models of a (nested, annotated) discriminated union."""
    if isinstance(union, type) and issubclass(union, BaseModel):
        return [union]
    if get_origin(union) is Annotated:
        return _models(get_args(union)[0])
    if get_origin(union) in (Union, types.UnionType):
        return [model for member in get_args(union) for model in _models(member)]
    raise AssertionError(f"not a union of models: {union!r}")


def _type_names(union: Any) -> set[str]:
    names = set()
    for model in _models(union):
        annotation = model.model_fields["type"].annotation
        assert get_origin(annotation) is Literal
        names |= set(get_args(annotation))
    return names


STEP_TYPES = sorted(_type_names(Step))
TRIGGER_TYPES = sorted(_type_names(Trigger))


def _examples(page: Path) -> list[Any]:
    return [yaml.safe_load(block) for block in YAML_BLOCK.findall(page.read_text())]


def test_the_unions_are_read_whole() -> None:
    assert {"send", "pause", "branch", "exit", "wait_for_event", "call_api"} <= set(STEP_TYPES)
    assert {"event", "segment_entry", "audience"} <= set(TRIGGER_TYPES)


@pytest.mark.parametrize("step_type", STEP_TYPES)
def test_every_step_type_has_a_page_whose_examples_are_valid_steps(step_type: str) -> None:
    page = DOCS / "steps" / f"{step_type}.md"
    assert page.is_file(), f"docs/steps/{step_type}.md is missing"
    adapter: TypeAdapter[Any] = TypeAdapter(Step)
    steps = [
        step
        for example in _examples(page)
        for step in (example if isinstance(example, list) else example.get("steps", [example]))
    ]
    ours = [step for step in steps if isinstance(step, dict) and step.get("type") == step_type]
    assert ours, f"{page.name} has no YAML example of a {step_type} step"
    for step in ours:
        adapter.validate_python(step)


@pytest.mark.parametrize("trigger_type", TRIGGER_TYPES)
def test_every_trigger_type_has_a_page_whose_examples_are_valid_triggers(trigger_type: str) -> None:
    page = DOCS / "triggers" / f"{trigger_type}.md"
    assert page.is_file(), f"docs/triggers/{trigger_type}.md is missing"
    adapter: TypeAdapter[Any] = TypeAdapter(Trigger)
    triggers = [
        example["trigger"]
        for example in _examples(page)
        if isinstance(example, dict) and "trigger" in example
    ]
    ours = [trigger for trigger in triggers if trigger.get("type") == trigger_type]
    assert ours, f"{page.name} has no YAML example of a {trigger_type} trigger"
    for trigger in ours:
        adapter.validate_python(trigger)


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_a_page_leads_somewhere(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # an address outside the repository
        path, _, anchor = target.partition("#")
        found = (page.parent / path).resolve() if path else page
        if not found.exists() or (anchor and found.suffix == ".md" and anchor not in _anchors(found)):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


def _cited_paths(text: str) -> set[str]:
    return {path for path in SOURCE_PATH.findall(text) if "*" not in path}


def test_no_page_or_comment_cites_a_file_that_does_not_exist() -> None:
    sources = [
        *PAGES,
        *(
            p
            for d in (
                "api",
                "activities",
                "bench",
                "commands",
                "flowline",
                "launch",
                "services",
                "tests",
                "workflows",
            )
            for p in (ROOT / d).rglob("*.py")
        ),
    ]
    sources += [
        ROOT / name for name in ("Makefile", "pyproject.toml", "docker-compose.yml", "cli.py", "worker.py")
    ]
    stale = sorted(
        f"{source.relative_to(ROOT)}: {path}"
        for source in sources
        if source.name != "test_docs.py"  # its own example of a stale path
        for path in _cited_paths(source.read_text())
        if not (ROOT / path).exists()
    )
    assert not stale, "\n".join(stale)


def test_the_stale_check_finds_a_missing_file() -> None:
    assert _cited_paths("see workflows/routing.py and flowline/flow/steps/control.py") == {
        "workflows/routing.py",
        "flowline/flow/steps/control.py",
    }
    assert not (ROOT / "workflows/routing.py").exists()
