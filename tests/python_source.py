"""Parsing the project's Python source in tests that check its structure."""

from __future__ import annotations

import ast

# CPython 3.11.7's AST constructor can raise a spurious "AST constructor recursion depth mismatch"
# SystemError (python/cpython#106905, fixed in later releases): seen once in CI, in a test that
# followed one whose SDK threads were still running. Parsing again gives the real tree.
_ATTEMPTS = 3


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    for attempt in range(_ATTEMPTS):
        try:
            return ast.parse(source, filename=filename)
        except SystemError:
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")
