"""The patch registry (workflows/patches.py) against the recorded histories, the stages of the
procedure in docs/patches.md, and the command that counts the journeys keeping a patch."""

from __future__ import annotations

import ast
import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import temporalio.workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError
from typer.testing import CliRunner

from commands import get_app
from commands.stack import RUNNING_JOURNEYS, patch_statuses
from flowline.flow.validation import parse_flow
from flowline.journey import JourneyInput
from flowline.settings import get_settings
from launch.payload_codec import data_converter
from tests.flows import send_then_exit_flow
from tests.payload_keys import TEST_PAYLOAD_KEYS
from tests.python_source import parse
from worker import WORKFLOWS
from workflows.journey import JourneyWorkflow
from workflows.patches import PATCHES, Stage

HISTORIES = Path(__file__).parent / "histories"
RETIRED = sorted((HISTORIES / "retired").glob("*.json"))
WORKFLOW_CODE = Path(__file__).parent.parent / "workflows"


def _history(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(Path(name).name, (HISTORIES / f"{name}.json").read_text())


def _markers(name: str) -> dict[str, bool]:
    """The patch markers a history recorded: id -> flagged as deprecated."""
    found = {}
    for event in json.loads((HISTORIES / f"{name}.json").read_text())["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if marker and marker["markerName"] == "core_patch":
            [payload] = marker["details"]["patch-data"]["payloads"]
            data = json.loads(base64.b64decode(payload["data"]))
            found[data["id"]] = data["deprecated"]
    return found


async def _replay(name: str) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(TEST_PAYLOAD_KEYS))
    await replayer.replay_workflow(_history(name), raise_on_replay_failure=True)


def test_each_patch_is_proven_by_its_histories() -> None:
    """The histories named for a patch exist and took the path they are named for: the new ones
    recorded its marker (flagged once recorded under deprecate_patch), the old ones did not."""
    assert len({p.id for p in PATCHES}) == 7
    for patch in PATCHES:
        assert patch.new_histories, patch.id
        for name in patch.new_histories:
            assert patch.id in _markers(name), (patch.id, name)
        for name in patch.old_histories:
            assert patch.id not in _markers(name), (patch.id, name)
        # A deprecated patch's old path no longer replays: its histories are retired.
        retired = [name.startswith("retired/") for name in patch.old_histories]
        assert all(retired) if patch.stage is not Stage.PATCHED else not any(retired), patch.id
        assert (patch.deprecated is not None) == (patch.stage is not Stage.PATCHED), patch.id
    flagged = _markers("stop_when_mid_event_wait_deprecated")
    assert flagged[PATCHES.stop_mid_listen.id] is True
    assert _markers("stop_when_mid_event_wait")[PATCHES.stop_mid_listen.id] is False


def test_workflow_code_patches_only_through_the_registry() -> None:
    """No workflow module calls workflow.patched / deprecate_patch itself: every patch has its
    record, and its stage decides the call."""
    offenders = []
    for path in sorted(WORKFLOW_CODE.rglob("*.py")):
        if path.name == "patches.py":
            continue
        for node in ast.walk(parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in {"patched", "deprecate_patch"}:
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("path", RETIRED, ids=lambda p: p.stem)
async def test_retired_histories_are_refused(path: Path) -> None:
    """Why a patch is deprecated only once no journey started before it still runs: a journey that
    took the old path cannot go on under today's code."""
    assert PATCHES.stop_mid_listen.stage is Stage.DEPRECATED
    with pytest.raises(NondeterminismError):
        await _replay(f"retired/{path.stem}")


async def test_removing_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """The removal stage, tried on stop-mid-listen-v1: without the deprecate_patch call (the
    journey workflow runs unsandboxed, so the SDK function can be made a no-op), a history recorded
    under deprecate_patch replays, and one recorded under patched (its marker unflagged) is refused.
    Hence the call goes only once no journey started before the deprecation still runs."""
    monkeypatch.setattr(temporalio.workflow, "deprecate_patch", lambda _id: None)
    await _replay("stop_when_mid_event_wait_deprecated")
    with pytest.raises(NondeterminismError, match="Non-deprecated patch marker"):
        await _replay("stop_when_mid_event_wait")


# ------------------------------------------------------------------ the count (cli.py patches)


@pytest_asyncio.fixture
async def client(dev_server: WorkflowEnvironment) -> AsyncIterator[Client]:
    yield dev_server.client


async def _start_journey(client: Client, label: str, *, end: bool = False) -> datetime:
    """A journey no worker polls for: running, as far as visibility knows (``end``: terminated at
    once). Its start time."""
    flow = parse_flow(send_then_exit_flow("go", first={"id": "wait", "type": "pause", "for": "7d"}))
    journey_id = f"{label}-{uuid.uuid4().hex[:8]}"
    journey = JourneyInput(journey_id=journey_id, workspace_id="w", flow=flow, version=1, profile_id=label)
    handle = await client.start_workflow(JourneyWorkflow.run, journey, id=journey_id, task_queue="nobody")
    started = (await handle.describe()).start_time
    assert started is not None
    if end:
        await handle.terminate("ended before the count")
    return started


async def _counted(client: Client, before: dict[str, datetime], expected: dict[str, int]) -> dict[str, int]:
    """The counts per patch id once visibility shows every start (it is eventually consistent)."""
    for _ in range(100):
        counts = {s.patch.id: s.running_before for s in await patch_statuses(client, before)}
        if counts == expected:
            break
        await asyncio.sleep(0.1)
    return {k: v for k, v in counts.items() if v is not None}


async def test_the_count_of_running_journeys_started_before_each_patch(client: Client) -> None:
    """Journeys started before and after given dates: only running journeys started before a
    patch's cutoff count (not one that ended, nor another workflow type)."""
    early = await _start_journey(client, "early")
    ended = await _start_journey(client, "ended", end=True)
    await client.start_workflow("NotAJourney", id=f"other-{uuid.uuid4().hex[:8]}", task_queue="nobody")
    await asyncio.sleep(0.05)  # the next start a little later, so a cutoff falls between them
    late = await _start_journey(client, "late")
    assert early < ended < late
    ids = [p.id for p in PATCHES]
    before = {
        ids[0]: early - timedelta(seconds=1),  # none yet
        ids[1]: early + (late - early) / 2,  # the early one (the ended one is not running)
        ids[2]: late + timedelta(seconds=1),  # both running ones
        ids[3]: late + timedelta(days=1),
        ids[4]: early - timedelta(days=1),
        ids[5]: late + timedelta(seconds=1),
        ids[6]: early + (late - early) / 2,
    }
    expected = {ids[0]: 0, ids[1]: 1, ids[2]: 2, ids[3]: 2, ids[4]: 0, ids[5]: 2, ids[6]: 1}
    counts = await _counted(client, before, expected)
    assert counts == expected
    statuses = await patch_statuses(client, before)
    assert [s.retirable for s in statuses] == [True, False, False, False, True, False, False]


async def test_the_patches_command_prints_a_row_per_patch(
    dev_server: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python cli.py patches` against a server: one line per patch; a --before date counts."""
    await _start_journey(dev_server.client, "shown")
    for _ in range(100):  # visibility is eventually consistent
        if (await dev_server.client.count_workflows(RUNNING_JOURNEYS)).count:
            break
        await asyncio.sleep(0.1)
    monkeypatch.setenv("FLOWLINE_TEMPORAL_ADDRESS", dev_server.client.service_client.config.target_host)
    monkeypatch.setenv("FLOWLINE_TEMPORAL_NAMESPACE", dev_server.client.namespace)
    get_settings.cache_clear()
    try:
        # The command runs its own event loop: in a thread, away from the test's.
        command = ["patches", "--before", "version-move-v1=2999-01-01"]
        lines = (await asyncio.to_thread(CliRunner().invoke, get_app(), command)).output
    finally:
        get_settings.cache_clear()
    table, _, conditions = lines.partition("\n\n")
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert list(rows) == [p.id for p in PATCHES], lines
    assert rows["stop-mid-listen-v1"][1] == "deprecated"
    assert rows["lean-bookkeeping-v1"][-1] == "yes"  # nothing that old runs on this server
    assert rows["version-move-v1"][-1] == "no"  # the journey just started
    assert "deprecated: retirable once no running journey started before it was deprecated" in conditions
