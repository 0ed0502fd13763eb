"""Repair of JSON stored before non-finite numbers were refused (migration 0018, ``cli.py repair-json``).

Python's json wrote NaN / Infinity / -Infinity as bare tokens, and SQLite kept that text: its JSON
functions then call the row malformed, and every segment query of the workspace failed. This
finds such documents and makes each non-finite number null, keeping the rest of the document.

Only rows whose text names ``NaN`` or ``Infinity`` (case-sensitive ``instr``, no JSON parsing) and
that SQLite's ``json_valid`` refuses are read into Python, so a large table costs one scan of its
text, and a string that merely contains "NaN" (valid JSON) is never touched. PostgreSQL's jsonb
cannot hold these numbers (it refuses them on write): nothing to do there.

Tables and columns are named here as they were at migration 0018, not through tables.py, so the
migration keeps meaning the same when the schema moves on.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from flowline.json_values import dumps, without_non_finite

log = logging.getLogger(__name__)

# (table, JSON column, primary key columns): every JSON column holding client or flow values.
# Journey variables live in Temporal's histories, not in these tables.
COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("profiles", "attributes", ("workspace_id", "id")),
    ("profiles", "tags", ("workspace_id", "id")),
    ("profiles", "do_not_contact", ("workspace_id", "id")),
    ("events", "properties", ("workspace_id", "id")),
    ("flows", "draft", ("workspace_id", "id")),
    ("flow_versions", "document", ("workspace_id", "flow_id", "version")),
    ("segments", "rule", ("workspace_id", "id")),
    ("inbox_messages", "data", ("id",)),
    ("workspaces", "channels", ("id",)),
)
_PAGE = 500


@dataclass(frozen=True)
class ColumnRepair:
    table: str
    column: str
    # Rows rewritten, and the numbers made null in them.
    rows: int = 0
    values: int = 0
    # Rows found malformed that Python's json cannot read either: left as they are, logged.
    unreadable: int = 0

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


def repair_non_finite(conn: Connection) -> list[ColumnRepair]:
    """Make every stored NaN / ±Infinity null, in the caller's transaction; one entry per column."""
    if conn.dialect.name != "sqlite":
        log.info("JSON repair: %s cannot hold NaN or Infinity, nothing to repair", conn.dialect.name)
        return [ColumnRepair(table, column) for table, column, _key in COLUMNS]
    repairs = [_repair_column(conn, table, column, key) for table, column, key in COLUMNS]
    for repair in repairs:
        if repair.rows or repair.unreadable:
            log.warning(
                "JSON repair: %s: %d non-finite numbers made null in %d rows (%d rows unreadable, left)",
                repair.name,
                repair.values,
                repair.rows,
                repair.unreadable,
            )
    log.info("JSON repair: %d non-finite numbers made null", sum(r.values for r in repairs))
    return repairs


def _repair_column(conn: Connection, table: str, column: str, key: tuple[str, ...]) -> ColumnRepair:
    keys = ", ".join(f'"{k}"' for k in key)
    # rowid pages: each page resumes the scan where the last one stopped.
    candidates = text(
        f'SELECT rowid, {keys}, "{column}" FROM "{table}" WHERE rowid > :after '
        f"AND (instr(\"{column}\", 'NaN') > 0 OR instr(\"{column}\", 'Infinity') > 0) "
        f'AND NOT json_valid("{column}") ORDER BY rowid LIMIT :page'
    )
    update = text(f'UPDATE "{table}" SET "{column}" = :document WHERE rowid = :rowid')
    rows = values = unreadable = 0
    after = -(2**63)
    while True:
        page = conn.execute(candidates, {"after": after, "page": _PAGE}).all()
        for row in page:
            rowid, identity, raw = row[0], tuple(row[1:-1]), row[-1]
            repaired, found = _repaired(raw)
            if repaired is None:
                unreadable += 1
                log.warning(
                    "JSON repair: %s.%s of %s is malformed beyond NaN/Infinity: left", table, column, identity
                )
                continue
            if found:
                conn.execute(update, {"document": repaired, "rowid": rowid})
                rows += 1
                values += found
                log.info("JSON repair: %s.%s of %s: %d values made null", table, column, identity, found)
        if len(page) < _PAGE:
            return ColumnRepair(table, column, rows=rows, values=values, unreadable=unreadable)
        after = page[-1][0]


def _repaired(raw: Any) -> tuple[str | None, int]:
    """The document's text with non-finite numbers made null and how many; (None, 0) if unreadable."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        document = json.loads(raw)  # reads NaN, Infinity and -Infinity as floats
    except (ValueError, RecursionError):
        return None, 0
    repaired, found = without_non_finite(document)
    return dumps(repaired), found
