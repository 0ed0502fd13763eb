"""The journey workflow runs outside the sandbox (for speed), so the sandbox does not stop it
from reading the clock or doing I/O: this test does, by reading the source of every module of
``workflows/`` and of every project module they import, found by walking the imports.

A module of this project is walked; any other import (the standard library, a third-party
package) must be on ``DETERMINISTIC_LIBRARIES``. So a workflow that imported the store, a channel
or Temporal's client would fail here, however many modules lie in between.
"""

from __future__ import annotations

import ast
import builtins
import importlib.util
import pkgutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import workflows
from tests.python_source import parse

ROOT = Path(__file__).resolve().parent.parent

# Libraries a workflow may import: no clock, randomness or I/O behind what the workflows use.
# A name covers its submodules, except Temporal's, which are listed one by one (its client does I/O).
DETERMINISTIC_LIBRARIES = {
    "__future__",
    "abc",
    # Temporal runs a workflow on its own deterministic event loop.
    "asyncio",
    "base64",
    "collections",
    "contextlib",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "functools",
    "hashlib",
    "itertools",
    "json",
    "math",
    "operator",
    "re",
    "string",
    "types",
    "typing",
    # Reads the zone database, the same files on every worker of a deployment.
    "zoneinfo",
    # Third-party: parsing, validation, expressions and templates over values given to them.
    "celpy",
    "jsonpath_ng",
    "liquid",
    "pydantic",
    "pydantic_core",
    "yaml",
}
TEMPORAL_MODULES = {"temporalio", "temporalio.workflow", "temporalio.common", "temporalio.exceptions"}
# activity.defn only: the activity contracts workflows call by reference (flowline/journey/contracts.py).
TEMPORAL_MODULES |= {"temporalio.activity"}

# Calls by what they name, wherever the name was imported from.
FORBIDDEN_CALLS = {
    "asyncio.sleep",
    "builtins.__import__",
    "builtins.input",
    "builtins.open",
    "datetime.date.today",
    "datetime.datetime.now",
    "datetime.datetime.today",
    "datetime.datetime.utcnow",
    "importlib.import_module",
}
# Methods of something not imported (``self.clock.now()``, ``path.open()``): refused by name,
# except on Temporal's ``workflow``, whose clock and randomness are deterministic.
FORBIDDEN_METHODS = {"now", "utcnow", "today", "monotonic", "random", "uuid4", "open", "sleep"}


def project_file(name: str) -> Path | None:
    """The source of a module of this project; None for anything else (or no module)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    path = Path(spec.origin).resolve()
    return path if ROOT in path.parents and ".venv" not in path.relative_to(ROOT).parts else None


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _with_parents(name: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` too."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@dataclass
class Source:
    name: str
    tree: ast.Module
    # local name -> the dotted name it was imported as (``workflow`` -> ``temporalio.workflow``)
    names: dict[str, str] = field(default_factory=dict)
    # every module it imports, anywhere in it (functions, TYPE_CHECKING blocks included)
    imports: set[str] = field(default_factory=set)


def read(name: str, path: Path) -> Source:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return scan(name, parse(path.read_text(), filename=str(path)), package)


def scan(name: str, tree: ast.Module, package: str) -> Source:
    source = Source(name, tree)
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                source.imports |= _with_parents(alias.name)
                local = alias.asname or alias.name.partition(".")[0]
                source.names[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            source.imports |= _with_parents(base)
            for alias in node.names:
                qualified = f"{base}.{alias.name}"
                if _is_module(qualified):
                    source.imports.add(qualified)
                source.names[alias.asname or alias.name] = qualified
    return source


@dataclass
class Walk:
    # module name -> its source, for every project module reached
    sources: dict[str, Source] = field(default_factory=dict)
    # module name -> the chain of imports that reached it from a workflow module
    chains: dict[str, list[str]] = field(default_factory=dict)
    # (the library module, the chain that imports it) for every import off the allow-list
    refused: list[tuple[str, list[str]]] = field(default_factory=list)


def allowed_library(name: str) -> bool:
    if name.partition(".")[0] == "temporalio":
        return name in TEMPORAL_MODULES
    return any(name == lib or name.startswith(f"{lib}.") for lib in DETERMINISTIC_LIBRARIES)


def walk(start: Iterable[str]) -> Walk:
    found = Walk()
    pending = [(name, [name]) for name in start]
    while pending:
        name, chain = pending.pop()
        if name in found.sources:
            continue
        path = project_file(name)
        assert path is not None, f"{name} is not a module of this project"
        source = read(name, path)
        found.sources[name] = source
        found.chains[name] = chain
        for imported in sorted(source.imports):
            if project_file(imported) is not None:
                pending.append((imported, [*chain, imported]))
            elif not allowed_library(imported):
                found.refused.append((imported, chain))
    return found


def workflow_modules() -> list[str]:
    """Every module of the ``workflows`` package, subpackages included."""
    listed = pkgutil.walk_packages(workflows.__path__, prefix="workflows.")
    return ["workflows", *sorted(module.name for module in listed)]


WALK = walk(workflow_modules())


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    """``datetime.datetime.now`` for ``datetime.now`` after ``from datetime import datetime``;
    None when the call's owner is not an imported name (a local, ``self``...)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    head = names.get(node.id)
    if head is None:
        head = f"builtins.{node.id}" if hasattr(builtins, node.id) and not parts else None
    return None if head is None else ".".join([head, *parts])


def forbidden_calls(source: Source) -> list[str]:
    offenders = []
    for node in ast.walk(source.tree):
        if not isinstance(node, ast.Call):
            continue
        called = _dotted(node.func, source.names)
        if called is not None:
            refused = called in FORBIDDEN_CALLS or called.split(".")[0] in {"random", "secrets", "time"}
        else:
            refused = (
                isinstance(node.func, ast.Attribute)
                and node.func.attr in FORBIDDEN_METHODS
                and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "workflow")
            )
        if refused:
            offenders.append(f"line {node.lineno}: {ast.unparse(node.func)}")
    return offenders


def test_the_walk_reaches_every_workflow_module_and_what_they_import() -> None:
    assert set(workflow_modules()) <= WALK.sources.keys()
    # The scan sees the real imports: the interpreter and the journey contracts are reached.
    assert {"workflows.journey", "workflows.interpreter", "flowline.journey"} <= WALK.sources.keys()
    assert all(name.partition(".")[0] in {"workflows", "flowline"} for name in WALK.sources)


def test_workflows_import_only_deterministic_libraries() -> None:
    refused = [f"{library} (through {' -> '.join(chain)})" for library, chain in WALK.refused]
    assert refused == []


@pytest.mark.parametrize("name", sorted(WALK.sources))
def test_workflow_code_reads_time_and_waits_only_through_temporal(name: str) -> None:
    assert forbidden_calls(WALK.sources[name]) == [], " -> ".join(WALK.chains[name])


def test_the_walk_refuses_a_workflow_that_imports_the_store() -> None:
    # As if a workflow module imported flowline.store: the walk goes through it to its driver.
    found = walk(["flowline.store.journeys"])
    assert any(library.startswith("sqlalchemy") for library, _ in found.refused)


def test_the_call_check_sees_clocks_however_imported() -> None:
    code = """
import asyncio
import datetime as dt
from datetime import datetime
from temporalio import workflow
datetime.now()
dt.date.today()
asyncio.sleep(1)
open("f")
self.clock.utcnow()
workflow.now()
workflow.random()
moment.time()
datetime.fromisoformat("2026-01-01")
"""
    assert forbidden_calls(scan("example", parse(code), "")) == [
        "line 6: datetime.now",
        "line 7: dt.date.today",
        "line 8: asyncio.sleep",
        "line 9: open",
        "line 10: self.clock.utcnow",
    ]


# The interpreter and its parts: every module of the package.
INTERPRETER_PARTS = "workflows.interpreter"


def test_the_api_process_does_not_import_the_interpreter() -> None:
    """The API signals journeys by typed references to JourneyWorkflow's handlers; the interpreter
    behind them is imported by the worker only (workflows/journey.py imports it when it runs)."""
    script = "import sys, api.app; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "workflows.journey" in loaded  # the check sees the modules the API loads
    assert [m for m in loaded if m.startswith(INTERPRETER_PARTS)] == []
