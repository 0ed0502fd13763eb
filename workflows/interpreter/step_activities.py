"""How a step's activities run: retries and timeouts, and a failure for good taken as a branch.

Workflow code, deterministic like the rest of the interpreter (tests/test_workflow_determinism.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from flowline.flow.graph import ELSE
from flowline.flow.steps import BranchStep
from flowline.journey import ConditionsRequest, JourneyRef, NamedCondition, StepResult, StepVisit, contracts

# Sends are retried for a day: a provider outage delays a message, it does not drop it.
SEND_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
SEND_OPTIONS = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(days=1),
    "retry_policy": SEND_RETRY,
}
# Webhook and message activities heartbeat while they run (activities/heartbeat.py): when a worker dies
# mid-send, the retry starts once the beats stop, not after the 60 s start-to-close timeout.
# Timeouts are not part of the commands replay compares, so no patch is needed.
HEARTBEAT_OPTIONS = {**SEND_OPTIONS, "heartbeat_timeout": timedelta(seconds=10)}

# A step's request: mypy checks it is the request of the activity it is passed with.
Visit = TypeVar("Visit", bound=StepVisit)


async def run_activity(
    contract: Callable[[Visit], Awaitable[StepResult]],
    request: Visit,
    *,
    failed_branch: str,
    options: dict[str, Any] = SEND_OPTIONS,
) -> StepResult:
    """Run a side effect; when it fails for good the journey goes on down ``failed_branch``."""
    try:
        return await workflow.execute_activity(contract, request, **options)
    except ActivityError as error:
        cause = error.cause if error.cause is not None else error
        return StepResult(branch=failed_branch, error=str(cause))


async def first_branch(step: BranchStep, ref: JourneyRef) -> StepResult:
    """The first branch whose condition holds now; a failed evaluation takes "else"."""
    request = ConditionsRequest(
        journey=ref,
        conditions=[NamedCondition(name=b.name, when=b.when) for b in step.branches],
        now=workflow.now(),
    )
    try:
        chosen = await workflow.execute_local_activity(
            contracts.evaluate_conditions,
            request,
            start_to_close_timeout=timedelta(seconds=30),
        )
    except ActivityError as error:
        cause = error.cause if error.cause is not None else error
        return StepResult(branch=ELSE, error=str(cause))
    return StepResult(branch=chosen.branch, error=chosen.error)
