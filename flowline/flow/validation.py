"""Turn a flow document (parsed YAML/JSON) into a ``FlowDocument`` or a list of faults with paths.

Faults use JSON paths into the document as the user wrote it (``$.steps[2].next``), both for
schema errors reported by pydantic and for the graph rules checked here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from flowline import jsonpath
from flowline.document_paths import error_path
from flowline.engine_events import filter_faults, property_fault
from flowline.flow.base import PATTERN_MEANINGS, STRICT_TEMPLATES
from flowline.flow.document import FlowDocument
from flowline.flow.graph import branch_targets, edges, target_field
from flowline.flow.steps import (
    CallApiStep,
    PauseStep,
    Step,
    WaitForChangeStep,
    WaitForDateStep,
    WaitForEventStep,
)
from flowline.flow.steps.waiting import WeekdayTime
from flowline.json_values import member_path

DEFAULT_MAX_STEPS = 100


@dataclass(frozen=True)
class FlowFault:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class FlowInvalid(ValueError):
    def __init__(self, faults: Sequence[FlowFault]) -> None:
        super().__init__("; ".join(f"{f.path}: {f.message}" for f in faults))
        self.faults = list(faults)


def load_document(text: str | bytes) -> Any:
    """Parse YAML or JSON text (JSON is YAML); a syntax error is a fault at ``$``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FlowInvalid([FlowFault("$", f"not valid YAML or JSON: {exc}")]) from exc


def _schema_faults(document: Any, error: ValidationError) -> list[FlowFault]:
    faults = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "union_tag_not_found":
            message = f"{item.get('ctx', {}).get('discriminator', 'the type')} is missing"
        elif (meaning := PATTERN_MEANINGS.get(item.get("ctx", {}).get("pattern", ""))) is not None:
            message = f"{item['input']!r} is not {meaning}"
        elif item["type"] == "union_tag_invalid":
            message = (
                f"unknown type {item.get('input', {}).get('type')!r}"
                if isinstance(item.get("input"), dict)
                else message
            )
        faults.append(FlowFault(error_path(document, item), message))
    # A union such as ``next: step-id | {sent, skipped, failed}`` reports a fault per member;
    # the fault of the member the input plainly is not (a mapping is no string, a string no
    # mapping) is noise when the other member said what is wrong.
    paths = [f.path for f in faults]
    faults = [
        f
        for f in faults
        if not (
            f.message == "Input should be a valid string" and any(p.startswith(f.path + ".") for p in paths)
        )
        and not (f.message.startswith("Input should be a valid dictionary") and paths.count(f.path) > 1)
    ]
    return list(dict.fromkeys(faults))


def _graph_faults(flow: FlowDocument, max_steps: int) -> list[FlowFault]:
    faults: list[FlowFault] = []
    if len(flow.steps) > max_steps:
        faults.append(FlowFault("$.steps", f"{len(flow.steps)} steps; a flow may have at most {max_steps}"))

    positions: dict[str, list[int]] = defaultdict(list)
    for index, step in enumerate(flow.steps):
        positions[step.id].append(index)
    for step_id, where in positions.items():
        for index in where[1:]:
            faults.append(FlowFault(f"$.steps[{index}].id", f"duplicate step id {step_id!r}"))

    for index, step in enumerate(flow.steps):
        for branch, target in branch_targets(step).items():
            if target is not None and target not in positions:
                written = getattr(step, "next", None)
                if isinstance(written, BaseModel) and getattr(written, branch, target) != target:
                    continue  # a fallback to another branch (call_api): reported where it is written
                path = f"$.steps[{index}].{target_field(step, branch)}"
                faults.append(FlowFault(path, f"no step has the id {target!r}"))
    if faults:
        return faults

    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges(flow):
        graph[source].add(target)

    reachable, frontier = {flow.steps[0].id}, [flow.steps[0].id]
    while frontier:
        for target in graph[frontier.pop()]:
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    for index, step in enumerate(flow.steps):
        if step.id not in reachable:
            faults.append(FlowFault(f"$.steps[{index}]", f"step {step.id!r} can never be reached"))

    faults.extend(_spinning_loops(flow, graph))
    return faults


def always_waits(step: Step) -> bool:
    """Whether every visit of ``step`` waits for time to pass or for a new event. A pause until
    a date-time, a date wait that is not every year, and an event wait that counts events from
    before it (``include_since_entry``) go on at once the second time round."""
    match step:
        case PauseStep():
            return step.for_ is not None or isinstance(step.until, WeekdayTime)
        case WaitForDateStep():
            return step.every_year
        case WaitForEventStep():
            return not step.include_since_entry
        case WaitForChangeStep():
            return True
    return False


def _spinning_loops(flow: FlowDocument, graph: dict[str, set[str]]) -> list[FlowFault]:
    """A cycle through steps none of which always waits would spin forever without yielding."""
    waiting = {s.id for s in flow.steps if always_waits(s)}
    quick = {s.id: {t for t in graph[s.id] if t not in waiting} for s in flow.steps if s.id not in waiting}
    index_of = {s.id: i for i, s in enumerate(flow.steps)}
    reported: set[str] = set()
    faults = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(quick.get(node, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :]
                first = min(cycle, key=index_of.__getitem__)
                if first not in reported:
                    reported.add(first)
                    faults.append(
                        FlowFault(
                            f"$.steps[{index_of[first]}]",
                            "loop without a wait: " + " -> ".join([*cycle, target]),
                        )
                    )
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for step in flow.steps:
        if step.id in quick and step.id not in state:
            visit(step.id, [])
    return faults


def _jsonpath_faults(flow: FlowDocument) -> list[FlowFault]:
    faults = []
    for index, step in enumerate(flow.steps):
        if isinstance(step, CallApiStep):
            for name, path in step.save.items():
                try:
                    jsonpath.check(path)
                except jsonpath.PathError as error:
                    faults.append(FlowFault(member_path(f"$.steps[{index}].save", name), str(error)))
    return faults


def _save_faults(flow: FlowDocument) -> list[FlowFault]:
    """A wait's ``save`` reading a property that none of the engine events it hears carries would
    save null every time (a client's event may carry anything: not checked)."""
    faults = []
    for index, step in enumerate(flow.steps):
        if not isinstance(step, WaitForEventStep):
            continue
        heard = [c.event for c in step.conditions if c.happened]
        for name, dotted in step.save.items():
            reasons = [property_fault(event, dotted) for event in heard]
            if all(reasons):
                message = "; ".join(dict.fromkeys(str(r) for r in reasons))
                faults.append(FlowFault(member_path(f"$.steps[{index}].save", name), message))
    return faults


def parse_flow(document: Any, *, max_steps: int = DEFAULT_MAX_STEPS) -> FlowDocument:
    """Validate a parsed document; raise ``FlowInvalid`` listing every fault with its path."""
    if not isinstance(document, dict):
        raise FlowInvalid([FlowFault("$", "a flow document is a mapping (object)")])
    try:
        flow = FlowDocument.model_validate(document, context={STRICT_TEMPLATES: True})
    except ValidationError as error:
        raise FlowInvalid(_schema_faults(document, error)) from None
    # Filters on the engine's own events that can never match (new documents only: stored
    # versions load with model_validate, unchecked, so journeys in flight keep running).
    engine = [FlowFault(path, message) for path, message in filter_faults(flow)] + _save_faults(flow)
    faults = list(dict.fromkeys([*_jsonpath_faults(flow), *_graph_faults(flow, max_steps), *engine]))
    if faults:
        raise FlowInvalid(faults)
    return flow
