"""A/B splits: weighted, stable per person, with an optional control group."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from flowline.flow.experiments import assign
from flowline.flow.graph import next_step
from flowline.flow.steps import SplitStep
from flowline.flow.validation import FlowInvalid, parse_flow
from tests.conftest import finish
from tests.test_journeys import publish, signed_up

BRANCHES = [("a", 5.0), ("b", 3.0), ("control", 2.0)]
AB = [{"name": "a", "weight": 1, "next": "send_a"}, {"name": "b", "weight": 1, "next": "send_b"}]
EVEN = [("a", 1.0), ("b", 1.0), ("control", 1.0)]


def test_proportions_on_ten_thousand_profiles_are_within_statistical_bounds() -> None:
    n = 10_000
    counts = Counter(assign(BRANCHES, flow_id="f", step_id="ab", profile_id=f"p{i}") for i in range(n))
    total = sum(w for _, w in BRANCHES)
    for name, weight in BRANCHES:
        p = weight / total
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[name] - n * p) < 4 * sd, (name, counts[name], n * p)


def test_assignment_is_stable_and_depends_on_the_step() -> None:
    first = [assign(BRANCHES, flow_id="f", step_id="ab", profile_id=f"p{i}") for i in range(200)]
    again = [assign(BRANCHES, flow_id="f", step_id="ab", profile_id=f"p{i}") for i in range(200)]
    other = [assign(BRANCHES, flow_id="f", step_id="cd", profile_id=f"p{i}") for i in range(200)]
    assert first == again
    assert first != other


def split_flow(**split: Any) -> dict[str, Any]:
    message = {"type": "send", "channel": "in_app"}
    return {
        "id": "ab",
        "name": "A/B",
        "trigger": {"type": "event", "event": "signed_up"},
        "steps": [
            {"id": "ab", "type": "split", **split},
            {"id": "send_a", **message, "content": {"body": "A"}, "next": "done"},
            {"id": "send_b", **message, "content": {"body": "B"}, "next": "done"},
            {"id": "done", "type": "exit"},
        ],
    }


def test_split_validation() -> None:
    variants = [{"name": "a", "weight": 1, "next": "send_a"}, {"name": "a", "weight": 1, "next": "send_b"}]
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(split_flow(variants=variants))
    assert caught.value.faults[0].message == "variant names must be distinct"
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(split_flow(variants=[{"name": "a", "weight": 1, "next": "send_a"}]))
    assert "two variants" in caught.value.faults[0].message
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(
            split_flow(variants=[{"name": "a", "weight": 0, "next": "nowhere"}], control={"weight": 1})
        )
    assert {f.path for f in caught.value.faults} == {"$.steps[0].variants[0].weight"}


def test_the_control_group_leaves_unless_told_otherwise() -> None:
    flow = parse_flow(
        split_flow(
            variants=[
                {"name": "a", "weight": 1, "next": "send_a"},
                {"name": "b", "weight": 1, "next": "send_b"},
            ],
            control={"weight": 1},
        )
    )
    step = flow.steps[0]
    assert isinstance(step, SplitStep)
    assert next_step(flow, step, "a") == "send_a"
    assert next_step(flow, step, "control") is None


async def test_journeys_follow_their_variant_and_the_control_group_gets_nothing(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(api, split_flow(variants=AB, control={"weight": 1}))
    seen = Counter()
    for i in range(24):
        profile = f"p{i}"
        [journey_id] = await signed_up(api, f"evt-{i}", profile=profile)
        await finish(temporal, journey_id)
        expected = assign(
            [("a", 1), ("b", 1), ("control", 1)], flow_id="ab", step_id="ab", profile_id=profile
        )
        detail = (await api.get(f"/v1/journeys/{journey_id}")).json()
        assert detail["path"][0]["branch"] == expected
        inbox = [m["body"] for m in (await api.get(f"/v1/profiles/{profile}/inbox")).json()["messages"]]
        if expected == "control":
            assert inbox == [] and detail["exit_reason"] == "control_group"
        else:
            assert inbox == [expected.upper()] and detail["exit_reason"] == "exit_step"
        seen[expected] += 1
    assert set(seen) == {"a", "b", "control"}, "24 people reach every branch"
