"""The step graph of a flow: where each branch of each step leads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import assert_never

from flowline.flow.document import FlowDocument
from flowline.flow.steps import (
    AddToFlowStep,
    BranchStep,
    CallApiStep,
    CustomStep,
    DoNotContactStep,
    ExitStep,
    ExportStep,
    NotifyInternalStep,
    PauseStep,
    SendStep,
    SplitStep,
    StartConversationStep,
    Step,
    TagStep,
    UpdateProfileStep,
    UpdateVariableStep,
    WaitForChangeStep,
    WaitForDateStep,
    WaitForEventStep,
    WebhookStep,
)
from flowline.flow.steps.control import AddToFlowNext
from flowline.flow.steps.http import CALL_BRANCHES, CallApiNext
from flowline.flow.steps.messaging import SEND_BRANCHES, SendNext
from flowline.flow.steps.waiting import ChangedNext, HappenedNext

# The branch a step takes when it has only one way out.
CONTINUE = "next"
# The branch of a split's control group: without a ``next`` of its own it ends the journey.
CONTROL = "control"
# The branch a branch step takes when no condition holds.
ELSE = "else"
# The branches of add_to_flow; with ``then: exit``, ADDED ends the journey.
ADDED = "added"
FAILED = "failed"
# A custom step's outcomes its ``next`` does not name (they go on to the step listed next): the
# element's outcomes are in the catalogue, not the document, so the graph stands for them by this.
OTHER_OUTCOMES = "*"


def branch_targets(step: Step) -> dict[str, str | None]:
    """Each branch of ``step`` and the step id it names (None: fall through to the next listed step)."""
    match step:
        case SendStep():
            if isinstance(sent := step.next, SendNext):
                return {"sent": sent.sent, "skipped": sent.skipped, "failed": sent.failed}
            return dict.fromkeys(SEND_BRANCHES, sent)
        case AddToFlowStep():
            if isinstance(added := step.next, AddToFlowNext):
                return {ADDED: added.added, FAILED: added.failed}
            return {ADDED: added, FAILED: added}
        case (
            PauseStep()
            | WebhookStep()
            | UpdateVariableStep()
            | WaitForDateStep()
            | NotifyInternalStep()
            | ExportStep()
        ):
            return {CONTINUE: step.next}
        case CallApiStep():
            if isinstance(called := step.next, CallApiNext):
                # A 4xx or 5xx without a branch of its own goes where ``error`` goes.
                return {
                    "success": called.success,
                    "client_error": called.client_error or called.error,
                    "server_error": called.server_error or called.error,
                    "error": called.error,
                }
            return dict.fromkeys(CALL_BRANCHES, called)
        case UpdateProfileStep() | TagStep() | DoNotContactStep() | StartConversationStep():
            return {CONTINUE: step.next}
        case WaitForEventStep():
            if isinstance(waited := step.next, HappenedNext):
                return {"happened": waited.happened, "timeout": waited.timeout}
            return {"happened": waited, "timeout": waited}
        case WaitForChangeStep():
            if isinstance(changed := step.next, ChangedNext):
                return {"changed": changed.changed, "timeout": changed.timeout}
            return {"changed": changed, "timeout": changed}
        case SplitStep():
            targets: dict[str, str | None] = {v.name: v.next for v in step.variants}
            if step.control is not None:
                targets[CONTROL] = step.control.next
            return targets
        case BranchStep():
            return {**{b.name: b.next for b in step.branches}, ELSE: step.else_}
        case ExitStep():
            return {}
        case CustomStep():
            if isinstance(outcomes := step.next, dict):
                return {**outcomes, OTHER_OUTCOMES: None}
            return {CONTINUE: outcomes}
        case _:
            assert_never(step)


def target_field(step: Step, branch: str) -> str:
    """Where, inside ``step``, the target of ``branch`` is written (for fault paths)."""
    if isinstance(step, SplitStep):
        names = [v.name for v in step.variants]
        return f"variants[{names.index(branch)}].next" if branch in names else "control.next"
    if isinstance(step, BranchStep):
        names = [b.name for b in step.branches]
        return f"branches[{names.index(branch)}].next" if branch in names else ELSE
    return "next" if branch == CONTINUE or isinstance(getattr(step, "next", None), str) else f"next.{branch}"


def following(flow: FlowDocument, step_id: str) -> str | None:
    """The step listed after ``step_id``, or None for the last step (which exits)."""
    ids = [s.id for s in flow.steps]
    index = ids.index(step_id)
    return ids[index + 1] if index + 1 < len(ids) else None


def next_step(flow: FlowDocument, step: Step, branch: str) -> str | None:
    """Where a journey goes after ``step`` took ``branch``; None ends the journey."""
    if isinstance(step, ExitStep):
        return None
    if (
        isinstance(step, SplitStep)
        and branch == CONTROL
        and step.control is not None
        and step.control.next is None
    ):
        return None
    if isinstance(step, AddToFlowStep) and branch == ADDED and step.then == "exit":
        return None
    if isinstance(step, CustomStep) and not isinstance(step.next, dict):
        branch = CONTINUE  # one step for every outcome
    if isinstance(step, WebhookStep | NotifyInternalStep):
        # One way out, whatever the activity answered: a webhook "sent", notify_internal "sent",
        # "skipped" or "failed"; both "next" when they failed for good.
        branch = CONTINUE
    target = branch_targets(step).get(branch)
    return target if target is not None else following(flow, step.id)


def edges(flow: FlowDocument) -> Iterator[tuple[str, str]]:
    for step in flow.steps:
        for branch in branch_targets(step):
            target = next_step(flow, step, branch)
            if target is not None:
                yield step.id, target


def ending_after(flow: FlowDocument, step: Step) -> tuple[str, str] | None:
    """If every branch of ``step`` ends the journey at once (an exit step or the end of the list),
    the (last step, exit reason) it ends with; otherwise None."""
    endings = set()
    for branch in branch_targets(step):
        target = next_step(flow, step, branch)
        if target is None:
            endings.add((step.id, "completed"))
        elif isinstance(flow.step(target), ExitStep):
            endings.add((target, "exit_step"))
        else:
            return None
    return endings.pop() if len(endings) == 1 else None


def drawn_edges(flow: FlowDocument) -> list[tuple[str, str | None, list[str], bool]]:
    """The step graph as a picture shows it: one edge per (step, target) with the branches that
    take it, target None where they end the journey, and ``implicit`` when no branch names its
    target (the journey goes on to the step listed next)."""
    drawn: dict[tuple[str, str | None], tuple[list[str], bool]] = {}
    for step in flow.steps:
        named = branch_targets(step)
        for branch in named:
            target = next_step(flow, step, branch)
            branches, implicit = drawn.get((step.id, target), ([], True))
            branches.append(branch)
            drawn[step.id, target] = (branches, implicit and named[branch] is None and target is not None)
    return [(source, target, branches, implicit) for (source, target), (branches, implicit) in drawn.items()]
