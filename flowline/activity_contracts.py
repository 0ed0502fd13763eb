"""Activities as typed references: a contract is an ``@activity.defn`` stub (no code, no I/O
imports) that workflow code passes to ``workflow.execute_activity``; the worker's implementation
declares itself with ``@implements(contract)``. Contracts: flowline/journey/contracts.py (the
journey's), ``run_entries`` in flowline/entry_runs.py, ``reevaluate_segments`` in
flowline/segment_clock.py."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from temporalio import activity

from flowline import entry_runs, segment_clock
from flowline.journey import contracts as journey_contracts

Request = ParamSpec("Request")
Result = TypeVar("Result")
Owner = TypeVar("Owner")
Method = Callable[Concatenate[Owner, Request], Coroutine[Any, Any, Result]]


def implements(
    contract: Callable[Request, Coroutine[Any, Any, Result]],
) -> Callable[[Method[Owner, Request, Result]], Method[Owner, Request, Result]]:
    """Declares the decorated method the worker's implementation of ``contract``: registered under
    the contract's name, and mypy checks that it takes the contract's request and returns its result."""
    name = activity_name(contract)

    def register(method: Method[Owner, Request, Result]) -> Method[Owner, Request, Result]:
        return activity.defn(name=name)(method)

    return register


def activity_name(contract: Callable[..., Any]) -> str:
    """The name a contract is registered and recorded under."""
    # Where @activity.defn keeps it (the SDK reads it back the same way).
    name: str = getattr(contract, "__temporal_activity_definition").name
    return name


# Every activity a workflow calls (tests/test_activity_contracts.py: the worker implements each).
EVERY_CONTRACT: tuple[Callable[..., Coroutine[Any, Any, Any]], ...] = (
    *journey_contracts.CONTRACTS,
    entry_runs.run_entries,
    segment_clock.reevaluate_segments,
)
