"""Liquid templates (python-liquid): sandboxed by design, no access to Python objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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


def strings_in(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside a JSON-like value, with where it is (``.key``, ``[0]``, ``.a[1].b``):
    the one walk over templated values, for checking, rendering and reading them."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{where}[{index}]")


def map_strings(value: Any, change: Callable[[str], Any]) -> Any:
    """``value`` with ``change`` applied to every string inside it, keeping its structure."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: map_strings(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [map_strings(item, change) for item in value]
    return value


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render every string inside a JSON-like value, keeping its structure; a Liquid failure is a
    TemplateError (callers record it: a template failing on the journey's data will not heal)."""
    return map_strings(value, lambda text: render_checked(text, context))


_PROFILE_ATTRIBUTE = re.compile(r"\bprofile\b(?!\.id\b)")


def uses_profile_attributes(value: Any) -> bool:
    """Whether templates in ``value`` read the profile beyond its id (which callers know already)."""
    return any("{" in text and _PROFILE_ATTRIBUTE.search(text) is not None for _, text in strings_in(value))
