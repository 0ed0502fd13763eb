"""Liquid templates (python-liquid): sandboxed by design, no access to Python objects."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from liquid import Environment
from liquid.exceptions import LiquidError

_ENV = Environment()


def _reason(error: LiquidError) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


@lru_cache(maxsize=1024)
def _compile(source: str) -> Any:
    return _ENV.from_string(source)


class TemplateError(ValueError):
    pass


def check(source: str, *, filters: bool = False) -> str:
    """``source`` if it parses as Liquid (and, with ``filters``, names only filters that exist);
    otherwise TemplateError with the first line of the reason."""
    if "{" in source:
        try:
            template = _compile(source)
        except LiquidError as error:
            raise TemplateError(f"not a valid template: {_reason(error)}") from None
        if filters:
            unknown = sorted(set(template.filter_names()) - set(_ENV.filters))
            if unknown:
                raise TemplateError(f"not a valid template: unknown filter {unknown[0]!r}")
    return source


def render(source: str, context: dict[str, Any]) -> str:
    if "{" not in source:
        return source
    return str(_compile(source).render(**context))


def render_checked(source: str, context: dict[str, Any]) -> str:
    """Like ``render``, but any Liquid failure (say, an unknown filter) is a TemplateError."""
    try:
        return render(source, context)
    except LiquidError as error:
        raise TemplateError(_reason(error)) from None


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a JSON-like value, keeping its structure; a Liquid failure is a
    TemplateError (callers record it: a template failing on the journey's data will not heal)."""
    if isinstance(value, str):
        return render_checked(value, context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


_PROFILE_ATTRIBUTE = re.compile(r"\bprofile\b(?!\.id\b)")


def uses_profile_attributes(value: Any) -> bool:
    """Whether templates in ``value`` read the profile beyond its id (which callers know already)."""
    if isinstance(value, str):
        return "{" in value and _PROFILE_ATTRIBUTE.search(value) is not None
    if isinstance(value, dict):
        return any(uses_profile_attributes(v) for v in value.values())
    if isinstance(value, list):
        return any(uses_profile_attributes(v) for v in value)
    return False
