"""Validation: every fault comes back with the JSON path of where it is."""

from __future__ import annotations

from typing import Any

import pytest

from flowline.flow.validation import FlowInvalid, load_document, parse_flow


def flow(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "f", "name": "F", "trigger": {"type": "event", "event": "e"}, "steps": list(steps), **extra}


def faults(document: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(document, **kwargs)
    return {f.path: f.message for f in caught.value.faults}


SEND = {"type": "send", "channel": "in_app", "content": {"body": "hi"}}


def test_a_valid_flow_parses_with_defaults() -> None:
    parsed = parse_flow(flow({"id": "a", "type": "pause", "for": "2d"}, {"id": "b", **SEND}))
    assert parsed.settings.reentry == "after_exit"
    assert parsed.steps[0].for_.days == 2  # type: ignore[union-attr]
    assert parsed.dump()["steps"][0]["for"] == "2d"


def test_unknown_step_type() -> None:
    assert faults(flow({"id": "a", "type": "teleport"})) == {"$.steps[0]": "unknown type 'teleport'"}


def test_unknown_field_in_step_and_settings() -> None:
    found = faults(flow({"id": "a", "type": "pause", "for": "1h", "colour": "red"}, settings={"speed": 1}))
    assert found == {"$.steps[0].colour": "unknown field", "$.settings.speed": "unknown field"}


def test_missing_field_names_its_path() -> None:
    assert "$.steps[0].content" in faults(flow({"id": "a", "type": "send", "channel": "in_app"}))
    assert faults(flow({"id": "a", "type": "pause"})) == {
        "$.steps[0]": "a pause takes either 'for' or 'until'"
    }


def test_pause_forms() -> None:
    ok = [
        {"for": "1d", "until_time": "09:00"},
        {"until": {"weekday": "monday", "time": "13:00"}, "timezone": "Europe/Berlin"},
        {"until": "2026-11-30T13:00:00"},
        {"until": "2026-11-30T13:00:00+01:00"},
    ]
    for fields in ok:
        parse_flow(flow({"id": "a", "type": "pause", **fields}))
    assert faults(flow({"id": "a", "type": "pause", "until_time": "09:00"})) == {
        "$.steps[0]": "a pause takes either 'for' or 'until'"
    }
    assert faults(flow({"id": "a", "type": "pause", "for": "1h", "timezone": "Mars/Base"})) == {
        "$.steps[0]": "unknown time zone 'Mars/Base'"
    }
    assert "$.steps[0].until_time" in faults(
        flow({"id": "a", "type": "pause", "for": "1h", "until_time": "25:00"})
    )
    assert "$.steps[0].until.weekday" in faults(
        flow({"id": "a", "type": "pause", "until": {"weekday": "someday", "time": "10:00"}})
    )


def test_bad_duration() -> None:
    found = faults(flow({"id": "a", "type": "pause", "for": "3 fortnights"}))
    assert "not a duration" in found["$.steps[0].for"]


def test_dangling_next_targets() -> None:
    found = faults(
        flow(
            {"id": "a", "type": "pause", "for": "1h", "next": "nowhere"},
            {"id": "b", **SEND, "next": {"sent": "c", "failed": "ghost"}},
            {"id": "c", "type": "exit"},
        )
    )
    assert found == {
        "$.steps[0].next": "no step has the id 'nowhere'",
        "$.steps[1].next.failed": "no step has the id 'ghost'",
    }


def test_duplicate_step_ids() -> None:
    found = faults(flow({"id": "a", "type": "pause", "for": "1h"}, {"id": "a", "type": "exit"}))
    assert found == {"$.steps[1].id": "duplicate step id 'a'"}


def test_unreachable_step() -> None:
    found = faults(flow({"id": "a", "type": "exit"}, {"id": "orphan", **SEND}))
    assert found == {"$.steps[1]": "step 'orphan' can never be reached"}


def test_loop_without_a_wait_is_rejected_and_with_a_pause_is_allowed() -> None:
    spinning = flow({"id": "a", **SEND}, {"id": "b", "type": "webhook", "url": "http://x.test/", "next": "a"})
    assert faults(spinning) == {"$.steps[0]": "loop without a wait: a -> b -> a"}
    waiting = flow(
        {"id": "a", **SEND}, {"id": "p", "type": "pause", "for": "1d"}, {"id": "b", **SEND, "next": "a"}
    )
    assert parse_flow(waiting).steps[2].id == "b"


def test_more_steps_than_the_limit() -> None:
    steps = [{"id": f"s{i}", "type": "pause", "for": "1m"} for i in range(5)]
    assert faults(flow(*steps), max_steps=4) == {"$.steps": "5 steps; a flow may have at most 4"}


def test_empty_steps_and_bad_trigger() -> None:
    found = faults(
        {"id": "f", "name": "F", "trigger": {"type": "event", "where": [{"op": "??"}]}, "steps": []}
    )
    assert set(found) == {
        "$.trigger.event",
        "$.trigger.where[0].property",
        "$.trigger.where[0].op",
        "$.steps",
    }


def test_not_a_mapping_and_not_yaml() -> None:
    assert faults(["a list"]) == {"$": "a flow document is a mapping (object)"}
    with pytest.raises(FlowInvalid) as caught:
        load_document("steps: [unclosed")
    assert caught.value.faults[0].path == "$"


def test_webhook_url_must_be_http() -> None:
    assert "$.steps[0].url" in faults(flow({"id": "a", "type": "webhook", "url": "ftp://example.test/x"}))


def test_the_readme_example_flow_is_valid() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "examples" / "welcome.yaml").read_text()
    parsed = parse_flow(load_document(text))
    assert [s.type for s in parsed.steps] == ["pause", "send", "webhook", "exit"]


def test_ending_after_tells_when_only_the_end_follows() -> None:
    from flowline.flow.graph import ending_after

    parsed = parse_flow(
        flow(
            {"id": "a", **SEND, "next": {"sent": "b", "failed": "x"}},
            {"id": "b", **SEND},
            {"id": "c", "type": "pause", "for": "1h", "next": "x"},
            {"id": "x", "type": "exit"},
        )
    )
    a, b, c, _x = parsed.steps
    assert ending_after(parsed, a) is None  # 'sent' goes on to b
    assert ending_after(parsed, b) is None  # falls through to c
    assert ending_after(parsed, c) == ("x", "exit_step")
    last = parse_flow(flow({"id": "p", "type": "pause", "for": "1h"}, {"id": "s", **SEND}))
    assert ending_after(last, last.steps[1]) == ("s", "completed")
