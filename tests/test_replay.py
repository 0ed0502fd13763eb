"""Every recorded history replays against today's workflow code (see tests/record_histories.py)."""

from __future__ import annotations

import base64
import json
import typing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from flowline.activity_contracts import EVERY_CONTRACT, activity_name
from launch.payload_codec import ENCODING, data_converter
from tests.flows import step_types
from tests.payload_keys import TEST_PAYLOAD_KEYS
from worker import WORKFLOWS

HISTORIES_DIR = Path(__file__).parent / "histories"
# Not histories/retired/: the old paths of deprecated patches, which today's code refuses.
HISTORIES = sorted(HISTORIES_DIR.glob("*.json"))


def test_histories_are_recorded() -> None:
    names = {p.stem for p in HISTORIES}
    before_lean_bookkeeping = {
        "welcome_pause_send_webhook_exit",
        "webhook_client_error_goes_on",
        "send_with_branches",
    }
    assert before_lean_bookkeeping <= names
    assert {f"lean_{name}" for name in before_lean_bookkeeping} | {"lean_send_then_exit"} <= names
    newer = {"pause_for_then_until_time_of_day", "split_then_send", "update_variable_then_send"}
    assert newer | {"wait_for_date_missing_then_send", "wait_for_date_every_year_then_send"} <= names
    assert {"call_api_success_saves_then_send", "call_api_client_error_then_send"} <= names
    assert "branch_on_attribute_then_send" in names
    assert "update_profile_tag_then_send" in names
    assert "add_to_flow_then_send" in names
    listening = {
        "wait_for_event_happened_saves_then_send",
        "wait_for_event_timeout_then_send",
        "wait_for_event_since_entry_then_send",
        "wait_for_change_then_send",
        "stop_when_mid_pause",
        "stop_when_segment_mid_pause",
        "stop_signal_mid_wait",
        "goal_exit_mid_pause",
        "max_duration_ends_indefinite_wait",
        "continue_as_new_in_wait_then_send",
        "continue_as_new_in_wait_then_send_first_run",
    }
    assert listening <= names
    assert "segment_clock_tick" in names
    assert {"version_move_mid_pause", "version_move_mid_pause_first_run"} <= names
    steps_written = {
        "steps_written_before_pause_then_send",
        "steps_written_continue_as_new_in_wait",
        "steps_written_continue_as_new_in_wait_first_run",
    }
    assert steps_written <= names
    assert "notify_internal_then_send" in names
    # Recorded before, under and since deprecating the "stop-mid-listen-v1" patch: the first is
    # retired (it took the old path, which no longer replays: tests/test_patches.py proves it is
    # refused), the others replay here.
    assert (HISTORIES_DIR / "retired" / "stop_when_mid_event_wait_unpatched.json").exists()
    assert {"stop_when_mid_event_wait", "stop_when_mid_event_wait_deprecated"} <= names
    # Recorded with the payload codec: no step input in the clear.
    assert "encrypted_send_then_exit" in names
    encrypted = {p.stem for p in HISTORIES if _encrypted(WorkflowHistory.from_json(p.stem, p.read_text()))}
    assert "encrypted_send_then_exit" in encrypted
    # NaN / Infinity refused at the step (issue 12).
    not_finite = {
        "update_variable_not_finite_then_send",
        "update_profile_not_finite_then_send",
        "call_api_not_finite_save_then_send",
    }
    assert not_finite <= names
    assert not encrypted & (before_lean_bookkeeping | listening), "recorded before the codec: plain"


# Histories recorded since the payload codec are encrypted with the tests' key; older ones are
# plain JSON, and journeys in flight from before the codec must still decode and replay with it.
CODEC_CONVERTER = data_converter(TEST_PAYLOAD_KEYS)


def _encrypted(history: WorkflowHistory) -> bool:
    started = history.events[0].workflow_execution_started_event_attributes
    return any(p.metadata.get("encoding") == ENCODING for p in started.input.payloads)


async def _journey_input(path: Path) -> dict[str, Any]:
    """The input a recorded run started with (the JourneyInput, or a continued run's carry-over)."""
    started = json.loads(path.read_text())["events"][0]  # noqa: ASYNC240 - a small local file
    [payload] = started["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    return await _decoded(payload)


async def _decoded(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload of a history's JSON, decrypted with the tests' key."""
    proto = Payload(metadata={k: base64.b64decode(v) for k, v in payload["metadata"].items()})
    proto.data = base64.b64decode(payload.get("data", ""))
    assert CODEC_CONVERTER.payload_codec is not None
    [plain] = await CODEC_CONVERTER.payload_codec.decode([proto])
    assert plain.metadata["encoding"] == b"json/plain"
    data: dict[str, Any] = json.loads(plain.data)
    return data


async def test_recorded_histories_cover_every_step_type() -> None:
    """Issue 3: the recorded histories run every member of the Step union, so a change to any
    step's commands shows in the replay test."""
    recorded = set()
    journeys = 0
    for path in HISTORIES:
        started = await _journey_input(path)
        if "flow" not in started:  # not a journey (the segment clock)
            continue
        journeys += 1
        recorded |= {step["type"] for step in started["flow"]["steps"]}
    assert journeys >= len(HISTORIES) - 1
    assert recorded >= step_types(), f"no recorded history runs {sorted(step_types() - recorded)}"


async def test_the_not_finite_histories_record_the_refusal_at_the_step() -> None:
    """The step refused the NaN / Infinity it computed, and the journey went on to its end."""
    for name, kept in [
        ("update_variable_not_finite_then_send", {"n": 2}),
        ("update_profile_not_finite_then_send", {}),
        ("call_api_not_finite_save_then_send", {"total": None, "id": "A-1"}),
    ]:
        events = json.loads((Path(__file__).parent / "histories" / f"{name}.json").read_text())["events"]
        [payload] = events[-1]["workflowExecutionCompletedEventAttributes"]["result"]["payloads"]
        state = await _decoded(payload)
        assert state["status"] == "completed", name
        assert "NaN or Infinity (not a finite number)" in state["path"][0]["error"], name
        assert [entry["branch"] for entry in state["path"]][1:] == ["sent", "exit"], name
        assert state["variables"] == kept, name


async def test_recorded_activity_requests_validate_against_their_contracts() -> None:
    """Every activity task a recorded history scheduled is read by today's request of its contract:
    tasks scheduled before the word "visit" say "iteration", and may still be in flight."""
    requests = {activity_name(c): next(iter(typing.get_type_hints(c).values())) for c in EVERY_CONTRACT}
    checked: Counter[str] = Counter()
    old_word = 0
    for path in HISTORIES:
        for event in json.loads(path.read_text())["events"]:
            scheduled = event.get("activityTaskScheduledEventAttributes")
            if scheduled is None or scheduled["activityType"]["name"] not in requests:
                continue
            name = scheduled["activityType"]["name"]
            [payload] = scheduled["input"]["payloads"]
            data = await _decoded(payload)
            old_word += "iteration" in data
            TypeAdapter(requests[name]).validate_python(data)
            checked[name] += 1
    steps = {"send_message", "send_in_app", "deliver_webhook", "call_api", "profile_step", "add_to_flow"}
    assert steps | {"notify_internal", "segments.reevaluate_all"} <= set(checked)
    assert old_word > 0


def _replays() -> list[Any]:
    """Every history with the codec; the plain ones (recorded before it) also without."""
    cases = []
    for path in HISTORIES:
        encrypted = _encrypted(WorkflowHistory.from_json(path.stem, path.read_text()))
        cases += [pytest.param(path, True, id=f"{path.stem}-codec")]
        cases += [] if encrypted else [pytest.param(path, False, id=f"{path.stem}-plain")]
    return cases


@pytest.mark.parametrize(("path", "codec"), _replays())
async def test_history_replays(path: Path, codec: bool) -> None:
    """Replays with Flowline's converter as deployed: without keys, and with the payload codec
    (which must pass plain payloads through)."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240 - a small local file
    converter = CODEC_CONVERTER if codec else pydantic_data_converter
    replayer = Replayer(workflows=WORKFLOWS, data_converter=converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
