"""Activity contracts (flowline/journey/contracts.py, the entry run's and the segment clock's) and
the worker's implementations cannot drift: each contract is implemented under its name, with its
request and result types, and the worker registers every one and nothing else. Requests
scheduled before the word "visit" still validate."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, cast

import pytest
from temporalio import activity

from flowline.activity_contracts import EVERY_CONTRACT, activity_name
from flowline.journey import AddToFlowRequest, JourneyRef, TemplateScope, contracts
from worker import activity_implementations

NOBODY = cast(Any, None)  # the implementations only keep their store, client and launcher


def _implementations() -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for implementation in activity_implementations(NOBODY, NOBODY, NOBODY, None):
        name = activity_name(implementation)
        assert name not in found, f"two activities are registered as {name!r}"
        found[name] = implementation
    return found


def _signature(fn: Callable[..., Any]) -> tuple[list[Any], Any]:
    """Parameter types (without ``self``) and the return type, resolved."""
    hints = typing.get_type_hints(fn)
    parameters = [p for p in inspect.signature(fn).parameters if p != "self"]
    return [hints[p] for p in parameters], hints["return"]


def test_every_journey_contract_is_listed() -> None:
    declared = [
        value
        for value in vars(contracts).values()
        if callable(value) and hasattr(value, "__temporal_activity_definition")
    ]
    assert sorted(map(activity_name, declared)) == sorted(map(activity_name, contracts.CONTRACTS))


def test_the_worker_registers_only_implementations_of_contracts() -> None:
    assert sorted(_implementations()) == sorted(map(activity_name, EVERY_CONTRACT))


@pytest.mark.parametrize("contract", EVERY_CONTRACT, ids=activity_name)
def test_the_worker_implements_each_contract_with_its_types(contract: Callable[..., Any]) -> None:
    implementations = _implementations()
    name = activity_name(contract)
    assert name in implementations, f"the worker registers no activity {name!r}"
    implementation = implementations[name]
    assert _signature(implementation) == _signature(contract)
    # The SDK reads the request and result types the same way on both sides.
    contract_types = activity._Definition.must_from_callable(contract)
    implementation_types = activity._Definition.must_from_callable(implementation)
    assert contract_types.arg_types == implementation_types.arg_types
    assert contract_types.ret_type == implementation_types.ret_type


def test_the_names_recorded_in_histories_stay() -> None:
    assert sorted(map(activity_name, EVERY_CONTRACT)) == [
        "add_to_flow",
        "call_api",
        "deliver_webhook",
        "evaluate_conditions",
        "evaluate_expressions",
        "events_since",
        "export_record",
        "notify_internal",
        "profile_attributes",
        "profile_step",
        "profile_time_zone",
        "record_journey_end",
        "record_journey_move",
        "record_journey_steps",
        "reserve_call_slot",
        "run_custom_element",
        "run_entries",
        "segments.reevaluate_all",
        "send_in_app",
        "send_message",
    ]


def test_a_request_scheduled_before_visit_still_validates() -> None:
    ref = JourneyRef(journey_id="j", workspace_id="w", flow_id="f", version=1, profile_id="p")
    old = {"journey": ref.model_dump(), "step_id": "add", "iteration": 2, "flow": "g", "scope": {}}
    request = AddToFlowRequest.model_validate(old)
    assert request.visit == 2
    new = AddToFlowRequest(journey=ref, step_id="add", visit=2, flow="g", scope=TemplateScope())
    assert new == request
    assert new.model_dump()["visit"] == 2 and "iteration" not in new.model_dump()
    assert AddToFlowRequest.model_validate_json(new.model_dump_json()) == new
