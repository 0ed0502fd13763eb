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
from celpy.evaluation import CELEvalError

_ENV = celpy.Environment()


class ExpressionError(ValueError):
    pass


@lru_cache(maxsize=1024)
def _program(text: str) -> Any:
    try:
        return _ENV.program(_ENV.compile(text))
    except CELParseError as error:
        raise ExpressionError(f"not a valid expression: {' '.join(str(error).split())}") from None


def check(text: str) -> str:
    """``text`` if it compiles; otherwise ExpressionError saying where it breaks."""
    _program(text)
    return text


def evaluate(text: str, context: dict[str, Any]) -> Any:
    """The JSON value of ``text`` with ``context``'s names bound; ExpressionError on failure."""
    program = _program(text)
    try:
        result = program.evaluate({name: json_to_cel(value) for name, value in context.items()})
    except CELEvalError as error:
        raise ExpressionError(f"{text!r} failed: {error.args[0] if error.args else error}") from None
    if isinstance(result, CELEvalError):
        raise ExpressionError(f"{text!r} failed: {result.args[0] if result.args else result}")
    return json.loads(json.dumps(result, cls=CELJSONEncoder))
