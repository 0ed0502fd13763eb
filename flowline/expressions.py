"""Expressions in CEL (Common Expression Language): sandboxed, side-effect free, well known.

They see ``profile``, ``event``, ``vars`` and ``flow`` (``has(profile.x)`` tests for a missing
attribute). Results are plain JSON values.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import celpy
from celpy.adapter import CELJSONEncoder, json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, base_functions

from flowline.json_values import non_finite_error

_ENV = celpy.Environment()


class ExpressionError(ValueError):
    pass


@lru_cache(maxsize=1024)
def _program(text: str) -> Any:
    try:
        return _ENV.program(_ENV.compile(text))
    except CELParseError as error:
        raise ExpressionError(f"not a valid expression: {' '.join(str(error).split())}") from None


# Names celpy's evaluator takes besides its functions: macros (has, dyn) and list/map macros, with
# its extensions reduce and min. Anything else called is unknown until evaluation fails on it.
_CALLS = frozenset(base_functions) | {"has", "dyn"}
_METHODS = frozenset(base_functions) | {"map", "filter", "all", "exists", "exists_one", "reduce", "min"}


def check(text: str, *, functions: bool = False) -> str:
    """``text`` if it compiles (and, with ``functions``, calls only functions CEL has); otherwise
    ExpressionError saying where it breaks."""
    _program(text)
    if functions:
        unknown = sorted(_unknown_calls(text))
        if unknown:
            raise ExpressionError(f"not a valid expression: unknown function {unknown[0]!r}")
    return text


@lru_cache(maxsize=1024)
def _unknown_calls(text: str) -> frozenset[str]:
    unknown = set()
    for node in _ENV.compile(text).iter_subtrees():
        if node.data == "ident_arg" and str(node.children[0]) not in _CALLS:
            unknown.add(str(node.children[0]))
        elif node.data == "member_dot_arg" and str(node.children[1]) not in _METHODS:
            unknown.add(str(node.children[1]))
    return frozenset(unknown)


def evaluate(text: str, context: dict[str, Any]) -> Any:
    """The JSON value of ``text`` with ``context``'s names bound; ExpressionError on failure."""
    program = _program(text)
    try:
        result = program.evaluate({name: json_to_cel(value) for name, value in context.items()})
    except CELEvalError as error:
        raise ExpressionError(f"{text!r} failed: {error.args[0] if error.args else error}") from None
    if isinstance(result, CELEvalError):
        raise ExpressionError(f"{text!r} failed: {result.args[0] if result.args else result}")
    value = json.loads(json.dumps(result, cls=CELJSONEncoder))
    # CEL doubles overflow to inf and 0.0/0.0 is NaN: no JSON number, so nothing a step may keep.
    why = non_finite_error(value)
    if why is not None:
        raise ExpressionError(f"{text!r} gave {why}")
    return value
