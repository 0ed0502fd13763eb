"""The journey workflow runs outside the sandbox (for speed), so the sandbox does not stop it
from reading the clock or doing I/O: this test does, by reading its source and that of the
interpreter modules it runs."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pytest

import workflows.interpreter.calls
import workflows.interpreter.handover
import workflows.interpreter.interpreter
import workflows.interpreter.moves
import workflows.interpreter.path_records
import workflows.interpreter.run_state
import workflows.interpreter.sends
import workflows.interpreter.signals
import workflows.interpreter.step_activities
import workflows.interpreter.waits
import workflows.journey

WORKFLOW_MODULES = [
    workflows.journey,
    workflows.interpreter.interpreter,
    workflows.interpreter.calls,
    workflows.interpreter.sends,
    workflows.interpreter.waits,
    workflows.interpreter.path_records,
    workflows.interpreter.moves,
    workflows.interpreter.handover,
    workflows.interpreter.signals,
    workflows.interpreter.run_state,
    workflows.interpreter.step_activities,
]

ALLOWED_IMPORTS = {
    "__future__",
    "asyncio",
    "contextlib",
    "collections.abc",
    "collections",
    "dataclasses",
    "datetime",
    "typing",
    "temporalio",
    "temporalio.common",
    "temporalio.exceptions",
    "flowline.clock",
    "flowline.durations",
    "flowline.flow.timing",
    "flowline.flow.experiments",
    "flowline.flow.event_waits",
    "flowline.flow.graph",
    "flowline.flow.document",
    "flowline.flow.flow_settings",
    "flowline.flow.windows",
    "flowline.flow.steps",
    "flowline.flow.steps.control",
    "flowline.flow.steps.messaging",
    "flowline.flow.steps.waiting",
    "flowline.conditions.events",
    "flowline.journey",
    "workflows.interpreter",
    "workflows.interpreter.interpreter",
    "workflows.interpreter.calls",
    "workflows.interpreter.sends",
    "workflows.interpreter.waits",
    "workflows.interpreter.path_records",
    "workflows.interpreter.moves",
    "workflows.interpreter.handover",
    "workflows.interpreter.signals",
    "workflows.interpreter.run_state",
    "workflows.interpreter.step_activities",
    "workflows.search_attributes",
    "zoneinfo",
}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "time", "monotonic", "random", "uuid4", "open", "sleep"}


def _tree(module: ModuleType) -> ast.Module:
    assert module.__file__ is not None
    return ast.parse(Path(module.__file__).read_text())


@pytest.mark.parametrize("module", WORKFLOW_MODULES, ids=lambda m: m.__name__)
def test_interpreter_imports_only_deterministic_modules(module: ModuleType) -> None:
    imported = set()
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    assert "flowline.journey" in imported  # the scan sees the real imports


@pytest.mark.parametrize("module", WORKFLOW_MODULES, ids=lambda m: m.__name__)
def test_interpreter_reads_time_and_waits_only_through_temporal(module: ModuleType) -> None:
    offenders = []
    for node in ast.walk(_tree(module)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in FORBIDDEN_CALLS
        ):
            owner = node.func.value
            if not (isinstance(owner, ast.Name) and owner.id == "workflow"):
                offenders.append(f"line {node.lineno}: {ast.unparse(node.func)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            offenders.append(f"line {node.lineno}: {node.func.id}()")
    assert offenders == []
