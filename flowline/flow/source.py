"""A flow file as its author wrote it: the document, and where each of its nodes is in the text,
so that a fault's path (``$.steps[2].next``) becomes a line and a column (``flowline validate``;
the console's editor uses the same). Validation is that of the API (flowline/flow/validation.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowline.flow.document import FlowDocument
from flowline.flow.validation import DEFAULT_MAX_STEPS, FlowFault, FlowInvalid, parse_flow
from flowline.json_values import JsonLimits, value_faults

# One part of a fault's path: ``.name``, ``[3]``, or a quoted key ``["a b"]`` (json_values.member_path).
_PART = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


@dataclass(frozen=True)
class SourceFault:
    """A fault with the line and column (1-based) of the node its path names."""

    path: str
    message: str
    line: int
    column: int


@dataclass
class FlowSource:
    """A parsed flow file: the document and its YAML node tree (JSON is YAML), for the marks."""

    document: Any
    root: yaml.Node | None = field(default=None, repr=False)

    def locate(self, path: str) -> tuple[int, int]:
        """The line and column of the node ``path`` names; of the nearest enclosing node when it
        names what the document lacks (a missing field is reported at its mapping)."""
        node = self.root
        if node is None:
            return 1, 1
        shown = node
        for match in _PART.finditer(path):
            name, index, quoted = match.groups()
            found = _child(node, json.loads(quoted) if quoted else name, int(index) if index else None)
            if found is None:
                break
            node, shown = found
        return shown.start_mark.line + 1, shown.start_mark.column + 1


def _child(node: yaml.Node, key: str | None, index: int | None) -> tuple[yaml.Node, yaml.Node] | None:
    """The child node and the node to show for it: a mapping's scalar where its value is, a block
    (a step, a list) at its key's line."""
    if isinstance(node, yaml.SequenceNode) and index is not None:
        return (node.value[index], node.value[index]) if index < len(node.value) else None
    if isinstance(node, yaml.MappingNode) and key is not None:
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                return value_node, value_node if isinstance(value_node, yaml.ScalarNode) else key_node
    return None


class SourceInvalid(ValueError):
    """The file cannot be read as a document at all (a syntax error): one fault with its place."""

    def __init__(self, fault: SourceFault) -> None:
        super().__init__(f"{fault.line}:{fault.column}: {fault.message}")
        self.fault = fault


def read_source(text: str, *, json_only: bool = False) -> FlowSource:
    """Parse YAML or JSON (``json_only``: a .json file, read as JSON as the API reads JSON bodies:
    YAML 1.1 would take ``1e5`` for a string). Raises SourceInvalid with the error's place."""
    try:
        document = json.loads(text) if json_only else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise SourceInvalid(
            SourceFault("$", f"not valid JSON: {error.msg}", error.lineno, error.colno)
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = getattr(error, "problem", None) or str(error)
        raise SourceInvalid(SourceFault("$", f"not valid YAML: {problem}", line, column)) from None
    # Parsed again for the nodes' marks (safe_load keeps none); it parsed once, so it parses again.
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    return FlowSource(document, root)


@dataclass(frozen=True)
class CheckedFlow:
    """A flow file checked: the flow when it is valid, every fault otherwise."""

    source: FlowSource | None
    flow: FlowDocument | None
    faults: Sequence[SourceFault]


def check_flow_text(
    text: str,
    *,
    default_id: str | None = None,
    json_only: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    limits: JsonLimits | None = None,
) -> CheckedFlow:
    """Validate a flow file as the API validates a document (``default_id``: the id of a
    document without one, as the API takes the URL's)."""
    try:
        source = read_source(text, json_only=json_only)
    except SourceInvalid as invalid:
        return CheckedFlow(None, None, [invalid.fault])
    document = source.document
    if not isinstance(document, dict):
        kind = "empty" if document is None else _kind(document)
        return CheckedFlow(
            source,
            None,
            [
                SourceFault(
                    "$", f"not a flow: the file is {kind}, not a mapping with a trigger and steps", 1, 1
                )
            ],
        )
    if "steps" not in document and "trigger" not in document:
        line, column = source.locate("$")
        return CheckedFlow(
            source, None, [SourceFault("$", "not a flow: it has neither trigger nor steps", line, column)]
        )
    faults: list[FlowFault] = [
        FlowFault(f.path, f.message) for f in value_faults(document, limits or JsonLimits())
    ]
    flow = None
    if not faults:
        if default_id is not None:
            document = {"id": default_id, **document}
        try:
            flow = parse_flow(document, max_steps=max_steps)
        except FlowInvalid as invalid:
            faults = invalid.faults
    located = [SourceFault(f.path, f.message, *source.locate(f.path)) for f in faults]
    return CheckedFlow(source, flow, located)


def check_flow_file(path: Path, **options: Any) -> CheckedFlow:
    """``check_flow_text`` of a file; the id of a document without one is the file's stem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return CheckedFlow(None, None, [SourceFault("$", f"cannot read the file: {error}", 1, 1)])
    return check_flow_text(text, default_id=path.stem, json_only=path.suffix.lower() == ".json", **options)


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), "a scalar"
    )
