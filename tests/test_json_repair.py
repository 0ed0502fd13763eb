"""Repairing NaN / Infinity stored before they were refused (issue 12): migration 0018 and
``cli.py repair-json`` make each such number null and keep the rest of the document, on a real
SQLite file written the way the old code wrote it (bare tokens), and change nothing on PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text

from flowline.json_values import without_non_finite
from flowline.store.database import sync_url
from flowline.store.migrate import upgrade
from tests.databases import postgres_database, postgres_unavailable, sqlite_database

ROOT = Path(__file__).resolve().parent.parent
PROFILE_COLUMNS = "workspace_id, id, attributes, tags, do_not_contact, created_at, updated_at"
NOW = "2026-12-01 00:00:00"

# Every JSON column the repair reads: (table, column) -> the text stored, the text expected after.
# The stored texts are compact (no spaces): a document the repair rewrites comes back in the
# store's own format, so an untouched one is recognisable by its text.
POISONED: dict[tuple[str, str], tuple[str, str]] = {
    ("workspaces", "channels"): (
        '{"email":{"rate":NaN,"from":"a@b.c"}}',
        '{"email": {"rate": null, "from": "a@b.c"}}',
    ),
    ("profiles", "attributes"): (
        '{"score":Infinity,"name":"NaN","deep":{"list":[1,NaN,-Infinity,"Infinity"]},"ok":1.5}',
        '{"score": null, "name": "NaN", "deep": {"list": [1, null, null, "Infinity"]}, "ok": 1.5}',
    ),
    ("profiles", "tags"): ('["vip",NaN]', '["vip", null]'),
    ("profiles", "do_not_contact"): (
        '[{"channel":"email","sender":-Infinity}]',
        '[{"channel": "email", "sender": null}]',
    ),
    ("events", "properties"): (
        '{"total":NaN,"items":[{"price":Infinity}]}',
        '{"total": null, "items": [{"price": null}]}',
    ),
    ("flows", "draft"): (
        '{"id":"f","variables":{"x":{"default":NaN}}}',
        '{"id": "f", "variables": {"x": {"default": null}}}',
    ),
    ("flow_versions", "document"): ('{"id":"f","weight":Infinity}', '{"id": "f", "weight": null}'),
    ("segments", "rule"): (
        '{"attribute":"a","op":"is","value":NaN}',
        '{"attribute": "a", "op": "is", "value": null}',
    ),
    ("inbox_messages", "data"): ('{"n":-Infinity,"s":"-Infinity"}', '{"n": null, "s": "-Infinity"}'),
}
# Valid JSON whose strings say NaN / Infinity: candidates by their text, never rewritten.
CLEAN_PROFILE = '{"note":"NaN and Infinity are words here","n":-1e5}'
CLEAN_EVENT = '{"label":"Infinity"}'


def _doc(conn: Connection, placeholder: str) -> str:
    return f"CAST(:{placeholder} AS jsonb)" if conn.dialect.name == "postgresql" else f":{placeholder}"


def insert_rows(
    conn: Connection, docs: dict[tuple[str, str], str], clean_profile: str, clean_event: str
) -> None:
    """One row of every table the repair reads, plus clean rows, written with plain SQL (no guard)."""
    d = {k: v for k, v in docs.items()}

    def run(sql: str, **params: Any) -> None:
        conn.execute(text(sql), params)

    run(
        "INSERT INTO workspaces (id, name, webhook_secret, created_at, channels) "
        f"VALUES ('ws', 'ws', 's', :now, {_doc(conn, 'doc')})",
        now=NOW,
        doc=d["workspaces", "channels"],
    )
    run(
        "INSERT INTO profiles (workspace_id, id, attributes, tags, do_not_contact, created_at, updated_at) "
        f"VALUES ('ws', 'bad', {_doc(conn, 'a')}, {_doc(conn, 't')}, {_doc(conn, 'd')}, :now, :now)",
        a=d["profiles", "attributes"],
        t=d["profiles", "tags"],
        d=d["profiles", "do_not_contact"],
        now=NOW,
    )
    run(
        "INSERT INTO profiles (workspace_id, id, attributes, tags, do_not_contact, created_at, updated_at) "
        f"VALUES ('ws', 'clean', {_doc(conn, 'a')}, '[]', '[]', :now, :now)",
        a=clean_profile,
        now=NOW,
    )
    for event_id, doc in (("e-bad", d["events", "properties"]), ("e-clean", clean_event)):
        run(
            "INSERT INTO events (workspace_id, id, profile_id, name, timestamp, properties, received_at) "
            f"VALUES ('ws', :id, 'bad', 'order', :now, {_doc(conn, 'p')}, :now)",
            id=event_id,
            p=doc,
            now=NOW,
        )
    run(
        "INSERT INTO flows (workspace_id, id, name, status, draft, created_at, updated_at) "
        f"VALUES ('ws', 'f', 'f', 'running', {_doc(conn, 'doc')}, :now, :now)",
        doc=d["flows", "draft"],
        now=NOW,
    )
    run(
        "INSERT INTO flow_versions (workspace_id, flow_id, version, document, trigger_type, published_at) "
        f"VALUES ('ws', 'f', 1, {_doc(conn, 'doc')}, 'event', :now)",
        doc=d["flow_versions", "document"],
        now=NOW,
    )
    run(
        "INSERT INTO segments (workspace_id, id, name, rule, created_at, updated_at) "
        f"VALUES ('ws', 's', 's', {_doc(conn, 'doc')}, :now, :now)",
        doc=d["segments", "rule"],
        now=NOW,
    )
    run(
        "INSERT INTO inbox_messages (id, workspace_id, profile_id, title, body, data, created_at) "
        f"VALUES ('m', 'ws', 'bad', 't', 'b', {_doc(conn, 'doc')}, :now)",
        doc=d["inbox_messages", "data"],
        now=NOW,
    )


def stored(conn: Connection) -> dict[tuple[str, str], str]:
    """The text of every column of POISONED, and of the clean rows."""
    cast = "::text" if conn.dialect.name == "postgresql" else ""
    where = {
        "workspaces": "id = 'ws'",
        "profiles": "id = 'bad'",
        "events": "id = 'e-bad'",
        "flows": "id = 'f'",
        "flow_versions": "flow_id = 'f'",
        "segments": "id = 's'",
        "inbox_messages": "id = 'm'",
    }
    found = {
        (table, column): conn.execute(
            text(f"SELECT {column}{cast} FROM {table} WHERE {where[table]}")
        ).scalar_one()
        for table, column in POISONED
    }
    found["profiles", "clean"] = conn.execute(
        text(f"SELECT attributes{cast} FROM profiles WHERE id = 'clean'")
    ).scalar_one()
    found["events", "clean"] = conn.execute(
        text(f"SELECT properties{cast} FROM events WHERE id = 'e-clean'")
    ).scalar_one()
    return found


@pytest.fixture
def sqlite_at_0017(tmp_path: Path) -> Iterator[str]:
    with sqlite_database(tmp_path, revision="0017") as url:
        yield url


def repair_command(url: str) -> str:
    env = dict(os.environ, FLOWLINE_DATABASE_URL=url)
    done = subprocess.run(
        [sys.executable, "cli.py", "repair-json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_walker_makes_non_finite_numbers_null_and_counts_them() -> None:
    value = {"a": float("nan"), "b": [1, float("inf"), {"c": -float("inf")}], "d": "NaN", "e": 2.5, "f": None}
    repaired, count = without_non_finite(value)
    assert (repaired, count) == ({"a": None, "b": [1, None, {"c": None}], "d": "NaN", "e": 2.5, "f": None}, 3)
    assert list(repaired) == ["a", "b", "d", "e", "f"]
    assert without_non_finite([True, 0, "x"]) == ([True, 0, "x"], 0)


def test_migration_0018_repairs_sqlite_and_counts(
    sqlite_at_0017: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(sync_url(sqlite_at_0017))
    with engine.begin() as conn:
        insert_rows(conn, {k: v[0] for k, v in POISONED.items()}, CLEAN_PROFILE, CLEAN_EVENT)
        # The damage as the issue found it: SQLite's JSON functions refuse the row.
        with pytest.raises(Exception, match="malformed JSON"):
            conn.execute(text("SELECT json_extract(attributes, '$.ok') FROM profiles WHERE id = 'bad'")).all()

    with caplog.at_level(logging.INFO, logger="flowline.store.json_repair"):
        upgrade(sqlite_at_0017)

    with engine.connect() as conn:
        after = stored(conn)
        assert conn.execute(
            text("SELECT json_extract(attributes, '$.ok') FROM profiles WHERE id = 'bad'")
        ).all()
    engine.dispose()
    assert {k: after[k] for k in POISONED} == {k: v[1] for k, v in POISONED.items()}
    # Valid documents that only say NaN / Infinity in strings are left byte for byte.
    assert (after["profiles", "clean"], after["events", "clean"]) == (CLEAN_PROFILE, CLEAN_EVENT)
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "JSON repair: profiles.attributes: 3 non-finite numbers made null in 1 rows (0 rows unreadable, left)"
        in messages
    )
    assert "JSON repair: 12 non-finite numbers made null" in messages
    assert any("('ws', 'bad')" in m and "events.properties" not in m for m in messages)


def test_the_repair_command_prints_counts_per_column_and_finds_nothing_twice(sqlite_at_0017: str) -> None:
    upgrade(sqlite_at_0017)  # at head: damage written after the migration (as by an old process)
    engine = create_engine(sync_url(sqlite_at_0017))
    with engine.begin() as conn:
        docs = {k: v[0] for k, v in POISONED.items()}
        # A document malformed in another way as well: read by neither, left and reported.
        docs["segments", "rule"] = '{"value":NaN,'
        insert_rows(conn, docs, CLEAN_PROFILE, CLEAN_EVENT)
    printed = repair_command(sqlite_at_0017).splitlines()
    assert printed == [
        "profiles.attributes: 3 values made null in 1 rows",
        "profiles.tags: 1 values made null in 1 rows",
        "profiles.do_not_contact: 1 values made null in 1 rows",
        "events.properties: 2 values made null in 1 rows",
        "flows.draft: 1 values made null in 1 rows",
        "flow_versions.document: 1 values made null in 1 rows",
        "segments.rule: 0 values made null in 0 rows, 1 rows unreadable (left as they are)",
        "inbox_messages.data: 1 values made null in 1 rows",
        "workspaces.channels: 1 values made null in 1 rows",
    ]
    with engine.connect() as conn:
        after = stored(conn)
    engine.dispose()
    assert after["segments", "rule"] == '{"value":NaN,'
    assert after["profiles", "attributes"] == POISONED["profiles", "attributes"][1]
    again = repair_command(sqlite_at_0017).splitlines()
    assert again[0] == "profiles.attributes: 0 values made null in 0 rows"
    assert sum(" 0 values made null in 0 rows" in line for line in again) == len(POISONED)


def test_the_repair_reads_only_candidate_rows_on_a_large_table(sqlite_at_0017: str) -> None:
    """Many clean rows, a few poisoned ones spread among them (across several pages of candidates):
    all of those repaired, none of the others rewritten."""
    upgrade(sqlite_at_0017)
    engine = create_engine(sync_url(sqlite_at_0017))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO workspaces (id, name, webhook_secret, created_at) VALUES ('ws', 'ws', 's', :n)"
            ),
            {"n": NOW},
        )
        rows = [
            {
                "id": f"p{i:06d}",
                # Every 37th row poisoned; every 5th a clean candidate (the word in a string).
                "a": '{"s":Infinity}' if i % 37 == 0 else ('{"w":"NaN"}' if i % 5 == 0 else f'{{"n":{i}}}'),
                "now": NOW,
            }
            for i in range(40_000)
        ]
        conn.execute(
            text(f"INSERT INTO profiles ({PROFILE_COLUMNS}) VALUES ('ws', :id, :a, '[]', '[]', :now, :now)"),
            rows,
        )
    printed = repair_command(sqlite_at_0017).splitlines()
    poisoned = len(range(0, 40_000, 37))
    assert printed[0] == f"profiles.attributes: {poisoned} values made null in {poisoned} rows"
    with engine.connect() as conn:
        texts = dict(conn.execute(text("SELECT id, attributes FROM profiles")).all())
    engine.dispose()
    assert sum(t == '{"s": null}' for t in texts.values()) == poisoned
    assert sum(t == '{"w":"NaN"}' for t in texts.values()) == len(
        [i for i in range(40_000) if i % 5 == 0 and i % 37]
    )


@pytest.mark.skipif(postgres_unavailable() is not None, reason="PostgreSQL is not reachable")
def test_on_postgresql_the_migration_and_the_command_change_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with postgres_database(revision="0017") as url:
        engine = create_engine(sync_url(url))
        # jsonb refuses the bare tokens: the old code's writes failed there, so no damage exists.
        with engine.begin() as conn, pytest.raises(Exception, match="invalid input syntax for type json"):
            conn.execute(text("SELECT CAST(:d AS jsonb)"), {"d": '{"a":NaN}'})
        finite = {k: json.dumps(json.loads(v[1])) for k, v in POISONED.items()}
        with engine.begin() as conn:
            insert_rows(conn, finite, CLEAN_PROFILE, CLEAN_EVENT)
            before = stored(conn)
        with caplog.at_level(logging.INFO, logger="flowline.store.json_repair"):
            upgrade(url)
        assert "JSON repair: postgresql cannot hold NaN or Infinity, nothing to repair" in caplog.messages
        printed = repair_command(url).splitlines()
        with engine.connect() as conn:
            assert stored(conn) == before
        engine.dispose()
        assert printed[0] == "profiles.attributes: 0 values made null in 0 rows"
        assert len(printed) == len(POISONED)
