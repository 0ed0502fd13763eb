"""JSONPath (jsonpath-ng, with filters) for picking values out of JSON documents.

The single-value rule: a path saves a value only when it selects exactly one; selecting none or
several is not a value (the caller stores null and says why).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JSONPathError
from jsonpath_ng.ext.parser import parse


class PathError(ValueError):
    pass


@lru_cache(maxsize=1024)
def compile_path(text: str) -> JSONPath:
    """The parsed path; PathError if ``text`` is not a JSONPath starting at the root ``$``."""
    if not text.strip().startswith("$"):
        raise PathError("a JSONPath starts at the root: '$' or '$.field'")
    try:
        return parse(text)
    except (JSONPathError, ValueError, TypeError, AttributeError) as error:
        raise PathError(f"not a valid JSONPath: {error}") from None


def check(text: str) -> str:
    """``text`` if it compiles; otherwise PathError saying why."""
    compile_path(text)
    return text


def select_one(text: str, document: Any) -> tuple[Any, str | None]:
    """(the one value ``text`` selects, None), or (None, why not) when it selects none or several."""
    try:
        found = [match.value for match in compile_path(text).find(document)]
    except PathError as error:
        return None, str(error)
    except Exception as error:  # a filter comparing mismatched types raises from inside jsonpath-ng
        return None, f"{text} could not be applied: {error}"
    if len(found) == 1:
        return found[0], None
    return None, f"{text} matched {len(found)} values, not one"
