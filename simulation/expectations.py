"""A scenario's expectations checked against what the simulation did."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulation.runner import Message, Simulation
from simulation.scenario import SentExpectation


@dataclass(frozen=True)
class Check:
    name: str  # path | sent | exit | variables.<name>
    passed: bool
    expected: str
    actual: str


def _sent_line(message: Message) -> str:
    text = message.subject or message.title or message.body or ""
    return f"{message.step} ({message.channel} to {message.to}): {text}"


def _matches(expected: SentExpectation, message: Message) -> bool:
    if expected.step is not None and expected.step != message.step:
        return False
    if expected.channel is not None and expected.channel != message.channel:
        return False
    if expected.to is not None and expected.to != message.to:
        return False
    if expected.contains is not None:
        texts = [message.subject, message.title, message.body]
        return any(expected.contains in t for t in texts if t)
    return True


def _describe(expected: SentExpectation) -> str:
    fields = expected.model_dump(exclude_none=True)
    return ", ".join(f"{k}={v!r}" for k, v in fields.items()) or "any message"


def check(simulation: Simulation) -> list[Check]:
    expect = simulation.scenario.expect
    if expect is None:
        return []
    checks: list[Check] = []
    if expect.path is not None:
        actual = [p.step for p in simulation.path]
        checks.append(
            Check("path", actual == expect.path, " → ".join(expect.path), " → ".join(actual) or "(none)")
        )
    if expect.sent is not None:
        sent = [m for m in simulation.messages if m.status == "sent"]
        passed = len(sent) == len(expect.sent) and all(
            _matches(e, m) for e, m in zip(expect.sent, sent, strict=False)
        )
        checks.append(
            Check(
                "sent",
                passed,
                "; ".join(_describe(e) for e in expect.sent) or "nothing",
                "; ".join(_sent_line(m) for m in sent) or "nothing",
            )
        )
    if expect.exit is not None:
        actual_exit = (
            f"{simulation.status} ({simulation.exit_reason})" if simulation.exit_reason else simulation.status
        )
        passed = expect.exit in (simulation.status, simulation.exit_reason)
        checks.append(Check("exit", passed, expect.exit, actual_exit))
    for name, value in (expect.variables or {}).items():
        actual_value: Any = simulation.variables.get(name, "(unset)")
        checks.append(Check(f"variables.{name}", actual_value == value, repr(value), repr(actual_value)))
    return checks
