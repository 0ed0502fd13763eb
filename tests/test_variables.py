"""update_variable: CEL expressions over profile, event and variables."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from flowline.expressions import ExpressionError, evaluate
from flowline.flow.validation import FlowInvalid, parse_flow
from tests.conftest import finish
from tests.test_journeys import publish

COMPUTE = {"doubled": "vars.total * 2", "greeting": "'Hi ' + profile.first_name"}


def variables_flow(expressions: dict[str, str]) -> dict[str, Any]:
    return {
        "id": "vars",
        "name": "Variables",
        "trigger": {"type": "flow"},
        "steps": [
            {"id": "compute", "type": "update_variable", "set": expressions},
            {
                "id": "tell",
                "type": "send",
                "channel": "in_app",
                "content": {"body": "{{ vars.doubled }} {{ vars.greeting }}"},
            },
        ],
    }


def test_expressions_evaluate_over_json_values() -> None:
    context = {"vars": {"total": 20, "items": [1, 2, 3]}, "profile": {"first_name": "Ada"}}
    assert evaluate("vars.total * 2", context) == 40
    assert evaluate("size(vars.items) > 2 && profile.first_name.startsWith('A')", context) is True
    assert evaluate("has(profile.nick) ? profile.nick : 'friend'", context) == "friend"
    with pytest.raises(ExpressionError):
        evaluate("profile.nick + '!'", context)


def test_invalid_expressions_are_faults_with_their_path() -> None:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(variables_flow({"doubled": "vars.total *", "ok": "1 + 1"}))
    [fault] = caught.value.faults
    assert fault.path == "$.steps[0].set.doubled"
    assert fault.message.startswith("not a valid expression")
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(variables_flow({"not a name": "1"}))
    assert caught.value.faults[0].path == '$.steps[0].set["not a name"]'


# Calls CEL has, macros included: none is refused at validation.
KNOWN_CALLS = [
    "size(vars.items) > 1 && has(profile.nick)",
    "profile.first_name.startsWith('A') || profile.first_name.matches('^B')",
    "vars.items.map(x, x * 2).exists(x, x > 2) && vars.items.all(x, x > 0)",
    "int('3') + int(double(vars.total)) + dyn(1) + timestamp('2026-01-01T00:00:00Z').getFullYear()",
]


def test_an_unknown_function_is_a_fault_at_validation_with_its_path() -> None:
    """It compiles, but only evaluation would find that CEL has no such function: validation
    names it (in flows saved from now on; flows in flight still decode, see flowline/flow/base.py)."""
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(
            variables_flow({"ok": "1 + 1", "a": "sizee(vars.items)", "b": "profile.name.startswith('A')"})
        )
    assert {f.path: f.message for f in caught.value.faults} == {
        "$.steps[0].set.a": "not a valid expression: unknown function 'sizee'",
        "$.steps[0].set.b": "not a valid expression: unknown function 'startswith'",
    }
    assert parse_flow(variables_flow({f"v{i}": text for i, text in enumerate(KNOWN_CALLS)}))
    context = {"vars": {"items": [1, 2], "total": 2}, "profile": {"first_name": "Ada", "nick": "A"}}
    assert [evaluate(text, context) for text in KNOWN_CALLS] == [True, True, True, 3 + 2 + 1 + 2026]


async def test_variables_are_computed_and_used_by_later_steps(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(
        api, variables_flow({"doubled": "vars.total * 2", "greeting": "'Hi ' + profile.first_name"})
    )
    await api.put("/v1/profiles/ada", json={"attributes": {"first_name": "Ada"}})
    started = await api.post(
        "/v1/flows/vars/journeys", json={"profile_id": "ada", "variables": {"total": 21}}
    )
    state = await finish(temporal, started.json()["journey_id"])
    assert state.variables == {"total": 21, "doubled": 42, "greeting": "Hi Ada"}
    inbox = (await api.get("/v1/profiles/ada/inbox")).json()["messages"]
    assert [m["body"] for m in inbox] == ["42 Hi Ada"]


async def test_a_failing_expression_is_recorded_and_the_journey_goes_on(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, worker: None
) -> None:
    await publish(
        api, variables_flow({"doubled": "vars.total * 2", "greeting": "'Hi ' + profile.first_name"})
    )
    started = await api.post(
        "/v1/flows/vars/journeys", json={"profile_id": "nobody", "variables": {"total": 1}}
    )
    journey_id = started.json()["journey_id"]
    state = await finish(temporal, journey_id)
    assert state.variables == {"total": 1, "doubled": 2}
    compute = state.path[0]
    assert compute.error is not None and compute.error.startswith("greeting:")
    assert state.path[-1].step == "tell"
