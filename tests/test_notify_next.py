"""A notify_internal step continues to its ``next`` whatever its activity answers (sent, skipped,
failed at once), as validation assumes; before the "notify-next-v1" patch it went to the step
listed after it. On the time-skipping server, through a real SMTP server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from flowline.flow.graph import edges, next_step
from flowline.flow.validation import parse_flow
from tests.conftest import Tenant, finish
from tests.smtp import SmtpServer
from tests.test_journeys import publish
from tests.test_notify_and_quiet_hours import mail, start

__all__ = ["mail"]  # the fixture, used by the tests below


def _flow(to: list[str]) -> dict[str, Any]:
    """tell → later → early; "early", the exit, is listed right after "tell"."""
    return {
        "id": "notify-next",
        "name": "Notify then next",
        "trigger": {"type": "event", "event": "go"},
        "steps": [
            {
                "id": "tell",
                "type": "notify_internal",
                "channel": "email",
                "to": to,
                "subject": "Lead: {{ profile.id }}",
                "body": "{{ profile.id }} signed up",
                "next": "later",
            },
            {"id": "early", "type": "exit"},
            {"id": "later", "type": "send", "channel": "in_app", "content": {"body": "hi"}, "next": "early"},
        ],
    }


def test_the_step_graph_follows_next_on_every_answer() -> None:
    flow = parse_flow(_flow(["team@example.com"]))
    tell = flow.step("tell")
    for branch in ("sent", "skipped", "failed", "next"):
        assert next_step(flow, tell, branch) == "later", branch
    assert ("tell", "early") not in set(edges(flow))


async def _walked(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, to: list[str], event: str
) -> list[Any]:
    await publish(api, _flow(to))
    state = await finish(temporal, await start(api, "ada", event))
    assert state.exit_reason == "exit_step"
    return [(e.step, e.branch) for e in state.path]


@pytest.mark.parametrize(
    ("to", "branch"),
    [
        (["team-{tag}@example.com"], "sent"),
        (["{{ event.cc | default: '' }}"], "skipped"),  # every address rendered empty
    ],
)
async def test_sent_and_skipped_go_to_next(
    api: httpx.AsyncClient,
    temporal: WorkflowEnvironment,
    worker: None,
    mail: SmtpServer,
    tenant: Tenant,
    to: list[str],
    branch: str,
) -> None:
    path = await _walked(api, temporal, [a.replace("{tag}", tenant.id) for a in to], f"e-{branch}")
    assert path == [("tell", branch), ("later", "sent"), ("early", "exit")]
    sent = [m for m in mail.received if tenant.id in m.recipients[0]]
    assert len(sent) == (1 if branch == "sent" else 0)


async def test_failed_at_once_goes_to_next(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None, tenant: Tenant
) -> None:
    """No email provider configured: the activity answers "failed" at once, without retries."""
    path = await _walked(api, temporal, ["team@example.com"], "e-failed")
    assert path == [("tell", "failed"), ("later", "sent"), ("early", "exit")]
