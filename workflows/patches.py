"""Every patch the journey workflow carries: what it changed, which recorded histories prove its
old and new paths, and when it may go (docs/patches.md has the procedure).

A change to the commands a journey issues must not break journeys in flight: their histories were
written by the old code, and a replay that issues other commands fails. So the new commands sit
behind a patch marker: runs that recorded it (or start now) take the new path; runs without it
replay the old path. A patch is retired in two steps, each once no running journey could still
need it (``python cli.py patches`` counts them):

- patched → deprecated: no running journey started before the patch (none can be on the old path).
  The old path is deleted; ``workflow.deprecate_patch`` still writes the marker, now flagged.
- deprecated → removed: no running journey started before the deprecation (none can hold the
  unflagged marker, which a run without the call refuses). The call goes; the record stays here.

Workflow code asks ``PATCHES.<name>.new_path()``; the ids stay exactly as recorded in histories.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum

from temporalio import workflow


class Stage(StrEnum):
    PATCHED = "patched"  # workflow.patched: old path for runs without the marker
    DEPRECATED = "deprecated"  # workflow.deprecate_patch: the new path only, the marker flagged
    REMOVED = "removed"  # no call: the new path only, no marker


@dataclass(frozen=True)
class Patch:
    id: str  # the marker's id, exactly as recorded in histories
    introduced: datetime  # when the patch entered main (UTC): journeys started earlier may be old
    old_path: str  # what runs without the marker do
    new_path_does: str
    # Recorded histories (tests/histories/<name>.json) that take each path. Retired ones (the old
    # path after deprecation) live in tests/histories/retired/ and are proven to be refused.
    old_histories: tuple[str, ...]
    new_histories: tuple[str, ...]
    stage: Stage = Stage.PATCHED
    deprecated: datetime | None = None  # when it reached Stage.DEPRECATED

    @property
    def cutoff(self) -> datetime | None:
        """Running journeys started before this block the next stage (None: nothing left to do)."""
        if self.stage is Stage.PATCHED:
            return self.introduced
        return self.deprecated if self.stage is Stage.DEPRECATED else None

    @property
    def retire_when(self) -> str:
        """The condition for the next stage, in words."""
        if self.stage is Stage.PATCHED:
            return "no running journey started before it was introduced: then deprecate it"
        if self.stage is Stage.DEPRECATED:
            return "no running journey started before it was deprecated: then remove the call"
        return "retired"

    def new_path(self) -> bool:
        """Workflow code only: whether this run takes the patched path (records the marker)."""
        if self.stage is Stage.PATCHED:
            return workflow.patched(self.id)
        if self.stage is Stage.DEPRECATED:
            workflow.deprecate_patch(self.id)
        return True


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Patches:
    lean_bookkeeping: Patch
    version_move: Patch
    journey_steps: Patch
    send_channels: Patch
    stop_mid_listen: Patch
    notify_next: Patch
    early_signals: Patch

    def __iter__(self) -> Iterator[Patch]:
        return (getattr(self, f.name) for f in fields(self))


PATCHES = Patches(
    lean_bookkeeping=Patch(
        id="lean-bookkeeping-v1",
        introduced=_utc("2026-11-22T20:13:46"),
        old_path="records the end with a local activity and upserts the StepId search attribute on "
        "every step",
        new_path_does="the last activity records the end when only the exit follows it; upserts that "
        "change nothing are skipped (fewer commands, one activation less per journey)",
        old_histories=(
            "welcome_pause_send_webhook_exit",
            "webhook_client_error_goes_on",
            "send_with_branches",
        ),
        new_histories=(
            "lean_welcome_pause_send_webhook_exit",
            "lean_webhook_client_error_goes_on",
            "lean_send_with_branches",
            "lean_send_then_exit",
        ),
    ),
    version_move=Patch(
        id="version-move-v1",
        introduced=_utc("2026-11-23T03:12:26"),
        old_path="continues as new on its own version, the move ignored (the move signal came with "
        "the patch, so no recorded run takes this path)",
        new_path_does="a move heard mid-wait continues as new on the new version; the first run on "
        "it upserts FlowVersion and records the move (a local activity)",
        old_histories=(),
        new_histories=("version_move_mid_pause", "version_move_mid_pause_first_run"),
    ),
    journey_steps=Patch(
        id="journey-steps-v1",
        introduced=_utc("2026-11-23T03:14:10"),
        old_path="writes the journey's path only at its end",
        new_path_does="writes the path (a local activity) before waits of a minute or more and before "
        "continuing as new",
        old_histories=(
            "lean_welcome_pause_send_webhook_exit",
            "continue_as_new_in_wait_then_send",
            "continue_as_new_in_wait_then_send_first_run",
        ),
        new_histories=(
            "steps_written_before_pause_then_send",
            "steps_written_continue_as_new_in_wait_first_run",
        ),
    ),
    send_channels=Patch(
        id="send-channels-v1",
        introduced=_utc("2026-11-23T03:14:40"),
        old_path="sends in-app messages through the send_in_app activity, without the send rules",
        new_path_does="sends every channel, in-app too, through send_message, which checks the send rules",
        old_histories=("lean_send_then_exit", "add_to_flow_then_send"),
        new_histories=("send_channels_window_rate_cap_then_send", "notify_internal_then_send"),
    ),
    stop_mid_listen=Patch(
        id="stop-mid-listen-v1",
        introduced=_utc("2026-11-23T05:44:22"),
        old_path="a stop (stop_when, a goal with exit) heard while a wait listens was lost: the same "
        "signal woke the wait, Python 3.11's asyncio.wait_for dropped the walk's cancellation, and "
        "the journey went on past the wait, sending its next messages",
        new_path_does="the stop ends the wait and the journey at once",
        old_histories=("retired/stop_when_mid_event_wait_unpatched",),
        new_histories=("stop_when_mid_event_wait", "stop_when_mid_event_wait_deprecated"),
        # The worked example of docs/patches.md: no journey of the old path can still be running.
        stage=Stage.DEPRECATED,
        deprecated=_utc("2026-12-05T07:05:11"),
    ),
    notify_next=Patch(
        id="notify-next-v1",
        introduced=_utc("2026-12-05T09:02:56"),
        old_path="a notify_internal step that was sent, skipped or failed at once went to the step "
        "listed after it, ignoring its `next` (followed only when the notification failed for good)",
        new_path_does="a notify_internal step always continues to its `next`, as validation assumes",
        old_histories=("notify_internal_next_unpatched",),
        new_histories=("notify_internal_next",),
    ),
    early_signals=Patch(
        id="early-signals-v1",
        introduced=_utc("2026-12-06T05:10:00"),
        old_path="an event or move signal that reached a run before its first workflow task (right "
        "after a start, or between two runs of a continue-as-new) was dropped: a stop_when event "
        "did not stop the journey, the first wait did not hear its event",
        new_path_does="the run takes those signals once its walk reached its first wait, as if they "
        "came just after the task (the marker is recorded only by runs that had such signals)",
        old_histories=("stop_when_before_first_task_unpatched", "wait_for_event_before_first_task_unpatched"),
        new_histories=("stop_when_before_first_task", "wait_for_event_before_first_task"),
    ),
)
