"""SQL building blocks for conditions: JSON values inside a column, per dialect, and the
NULL-safe boolean every leaf is wrapped in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, case, cast, exists, false, func, literal, not_, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import Boolean, Numeric, String


def sure(expr: ColumnElement[Any]) -> ColumnElement[bool]:
    """Never NULL: unknown reads as false, so ``not`` means exactly not."""
    return func.coalesce(expr, false(), type_=Boolean)


class JsonValue:
    """A JSON value inside a column at a key path, per dialect: its type and its text."""

    def __init__(self, column: Any, path: list[str], dialect: str, json_path: Any = None) -> None:
        self.column, self.path, self.pg = column, path, dialect == "postgresql"
        if json_path is None:
            json_path = "$" + "".join('."' + part.replace('"', '\\"') + '"' for part in path)
        self.json_path: Any = json_path

    def has_element(self, test: Callable[[JsonValue], ColumnElement[bool]]) -> ColumnElement[bool]:
        """The value is an array with an element that passes ``test``."""
        if self.pg:
            value = self.column.op("#>")(literal(self.path, pg_text_array()))
            array = case((func.jsonb_typeof(value) == "array", value), else_=cast(literal("[]"), JSONB))
            each = func.jsonb_array_elements(array).table_valued("value").alias("element")
            element = JsonValue(each.c.value, [], "postgresql")
        else:
            raw = func.json_extract(self.column, self.json_path)
            array = case((func.json_type(self.column, self.json_path) == "array", raw), else_="[]")
            each = func.json_each(array).table_valued("key").alias("element")
            path = literal("$[", String) + cast(each.c.key, String) + "]"
            element = JsonValue(array, [], "sqlite", json_path=path)
        found = exists(select(literal(1)).select_from(each).where(sure(test(element))))
        return and_(self.kind() == "array", found)

    def kind(self) -> ColumnElement[Any]:
        """One of object, array, string, number, boolean-true, boolean-false, null (or NULL: missing)."""
        if self.pg:
            value = self.column.op("#>")(literal(self.path, pg_text_array()))
            # Paths go through objects only: ``#>`` would also index arrays by number.
            through = [
                func.jsonb_typeof(self.column.op("#>")(literal(self.path[:n], pg_text_array()))) == "object"
                for n in range(1, len(self.path))
            ]
            return case(
                (not_(and_(true(), *through)), None),
                (
                    func.jsonb_typeof(value) == "boolean",
                    func.concat("boolean-", value.op("#>>")(literal([], pg_text_array()))),
                ),
                else_=func.jsonb_typeof(value),
            )
        kind = func.json_type(self.column, self.json_path)
        return case(
            (kind.in_(("integer", "real")), "number"),
            (kind == "text", "string"),
            (kind == "true", "boolean-true"),
            (kind == "false", "boolean-false"),
            else_=kind,
        )

    def text(self) -> ColumnElement[Any]:
        """The string (for strings), or the JSON text of numbers."""
        if self.pg:
            text: ColumnElement[Any] = self.column.op("#>>")(literal(self.path, pg_text_array()))
            return text
        return cast(func.json_extract(self.column, self.json_path), String)

    def number(self) -> ColumnElement[Any]:
        """The value of a JSON number."""
        if self.pg:
            # CASE, not AND: PostgreSQL may evaluate AND's operands in any order.
            value = self.column.op("#>")(literal(self.path, pg_text_array()))
            return case((func.jsonb_typeof(value) == "number", cast(self.text(), Numeric)), else_=None)
        return func.json_extract(self.column, self.json_path)

    def empty(self) -> ColumnElement[bool]:
        kind = self.kind()
        if self.pg:
            raw = self.text()
            return or_(
                kind.is_(None),
                kind == "null",
                and_(kind == "string", raw == ""),
                and_(kind == "array", raw == "[]"),
                and_(kind == "object", raw == "{}"),
            )
        raw = func.json_extract(self.column, self.json_path)
        return or_(
            kind.is_(None),
            kind == "null",
            and_(kind == "string", cast(raw, String) == ""),
            and_(kind == "array", func.json_array_length(self.column, self.json_path) == 0),
            and_(kind == "object", cast(raw, String) == "{}"),
        )


def pg_text_array() -> Any:
    return ARRAY(String)
