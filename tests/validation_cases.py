"""Flow documents for tests/test_validation_rules.py: for each rule of docs/flows.md#validation,
documents that break it and the faults expected, as ``(case id, document, {JSON path: message})``."""

from __future__ import annotations

import copy
from typing import Any

from tests.flows import STEP_EXAMPLES

Case = tuple[str, dict[str, Any], dict[str, str]]  # (id, document, {path: message})
NOT_AN_ID = "is not an id (1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit)"
WAIT_RANGE = "a wait lasts from 1s to 5 years"
COND = {"tag": "vip", "op": "has"}


def flow(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "f", "name": "F", "trigger": {"type": "event", "event": "e"}, "steps": list(steps), **extra}


def step(step_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, **copy.deepcopy(STEP_EXAMPLES[kind]), **fields}


def ids(cases: list[Case]) -> list[str]:
    return [case[0] for case in cases]


# ---------------------------------------------------------------- unknown step types or fields

UNKNOWN: list[Case] = [
    (
        "type",
        flow(step("a", "exit"), {"id": "b", "type": "teleport"}),
        {"$.steps[1]": "unknown type 'teleport'"},
    ),
    ("no-type", flow({"id": "a", "for": "1h"}), {"$.steps[0]": "'type' is missing"}),
    *[
        (f"field-{kind}", flow(step("a", kind, colour="red")), {"$.steps[0].colour": "unknown field"})
        for kind in STEP_EXAMPLES
    ],
    *[
        (
            f"branch-{kind}",
            flow(step("a", kind, next={"opened": "b"}), step("b", "exit")),
            {"$.steps[0].next.opened": "unknown field"},
        )
        for kind in ("send", "wait_for_event", "wait_for_change", "call_api", "add_to_flow")
    ],
    (
        "nested",
        flow(step("a", "split", control={"weight": 1, "nxt": "a"})),
        {"$.steps[0].control.nxt": "unknown field"},
    ),
    ("settings", flow(step("a", "exit"), settings={"speed": 1}), {"$.settings.speed": "unknown field"}),
]


# ---------------------------------------------------------------- missing or dangling targets

# (id, the step under test with TARGET where a target goes, the path of that target)
TARGET = "__target__"
BRANCH_KINDS: list[tuple[str, dict[str, Any], str]] = [
    *[
        (f"{kind}-next", step("a", kind, next=TARGET), "next")
        for kind in STEP_EXAMPLES
        if kind not in ("split", "branch", "exit")
    ],
    *[(f"send-{b}", step("a", "send", next={b: TARGET}), f"next.{b}") for b in ("sent", "skipped", "failed")],
    (
        "split-variant",
        step("a", "split", variants=[{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "next": TARGET}]),
        "variants[1].next",
    ),
    (
        "split-control",
        step("a", "split", variants=[{"name": "a", "weight": 1}], control={"weight": 1, "next": TARGET}),
        "control.next",
    ),
    (
        "branch-branch",
        step("a", "branch", branches=[{"name": "vip", "when": COND, "next": TARGET}]),
        "branches[0].next",
    ),
    ("branch-else", step("a", "branch", **{"else": TARGET}), "else"),
    *[
        (f"wait_for_event-{b}", step("a", "wait_for_event", next={b: TARGET}), f"next.{b}")
        for b in ("happened", "timeout")
    ],
    *[
        (f"wait_for_change-{b}", step("a", "wait_for_change", next={b: TARGET}), f"next.{b}")
        for b in ("changed", "timeout")
    ],
    *[
        (f"call_api-{b}", step("a", "call_api", next={b: TARGET}), f"next.{b}")
        for b in ("success", "client_error", "server_error", "error")
    ],
    *[
        (f"add_to_flow-{b}", step("a", "add_to_flow", next={b: TARGET}), f"next.{b}")
        for b in ("added", "failed")
    ],
]


def replaced(node: Any, old: str, new: str) -> Any:
    """A copy of ``node`` with every string ``old`` (value or key) replaced by ``new``."""
    if isinstance(node, dict):
        return {replaced(k, old, new): replaced(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [replaced(item, old, new) for item in node]
    return new if node == old else node


def target_cases(target: str, message: str) -> list[Case]:
    return [
        (
            case_id,
            flow(replaced(tested, TARGET, target), step("end", "exit")),
            {f"$.steps[0].{where}": message},
        )
        for case_id, tested, where in BRANCH_KINDS
    ]


DANGLING = target_cases("ghost", "no step has the id 'ghost'")
MISSING = target_cases("", f"'' {NOT_AN_ID}")


# ---------------------------------------------------------------- unreachable steps


def unreachable(step_id: str) -> str:
    return f"step {step_id!r} can never be reached"


UNREACHABLE: list[Case] = [
    ("after-an-exit", flow(step("a", "exit"), step("b", "send")), {"$.steps[1]": unreachable("b")}),
    (
        "every-branch-jumps-over-it",
        flow(
            step("a", "send", next={"sent": "c", "skipped": "c", "failed": "c"}),
            step("b", "tag"),
            step("c", "exit"),
        ),
        {"$.steps[1]": unreachable("b")},
    ),
    (
        "after-a-branch-step-whose-rules-and-else-jump",
        flow(
            step("a", "branch", branches=[{"name": "vip", "when": COND, "next": "c"}], **{"else": "c"}),
            step("b", "tag"),
            step("c", "exit"),
        ),
        {"$.steps[1]": unreachable("b")},
    ),
    (
        "after-a-control-group-that-leaves",
        flow(
            step("a", "split", variants=[{"name": "x", "weight": 1, "next": "c"}], control={"weight": 1}),
            step("b", "tag"),
            step("c", "exit"),
        ),
        {"$.steps[1]": unreachable("b")},
    ),
    (
        "after-add-to-flow-then-exit",
        flow(
            step("a", "add_to_flow", then="exit", next={"failed": "c"}), step("b", "tag"), step("c", "exit")
        ),
        {"$.steps[1]": unreachable("b")},
    ),
    (
        "a-cycle-nothing-enters",
        flow(step("a", "exit"), step("b", "pause", next="c"), step("c", "pause", next="b")),
        {"$.steps[1]": unreachable("b"), "$.steps[2]": unreachable("c")},
    ),
]


# ---------------------------------------------------------------- missing branches

MISSING_BRANCHES: list[Case] = [
    (
        "branch-without-branches",
        flow({"id": "a", "type": "branch"}),
        {"$.steps[0].branches": "Field required"},
    ),
    (
        "branch-with-no-branches",
        flow(step("a", "branch", branches=[])),
        {"$.steps[0].branches": "List should have at least 1 item after validation, not 0"},
    ),
    ("split-without-variants", flow({"id": "a", "type": "split"}), {"$.steps[0].variants": "Field required"}),
    (
        "split-with-no-variants",
        flow(step("a", "split", variants=[], control={"weight": 1})),
        {"$.steps[0].variants": "List should have at least 1 item after validation, not 0"},
    ),
    (
        "split-with-one-variant-and-no-control",
        flow(step("a", "split", variants=[{"name": "x", "weight": 1}])),
        {"$.steps[0]": "a split needs two variants, or one and a control group"},
    ),
]


# ---------------------------------------------------------------- loops that can spin without a wait


def loop_through(kind: str, **fields: Any) -> dict[str, Any]:
    """``w`` (a step of ``kind``) -> ``s`` (a send) -> back to ``w``."""
    return flow({"id": "w", "type": kind, **fields}, step("s", "send", next="w"))


SPINNING: list[Case] = [
    ("a-step-to-itself", flow(step("a", "webhook", next="a")), {"$.steps[0]": "loop without a wait: a -> a"}),
    (
        "through-a-branch-else",
        flow(
            step("a", "tag"),
            step("b", "branch", branches=[{"name": "vip", "when": COND, "next": "end"}], **{"else": "a"}),
            step("end", "exit"),
        ),
        {"$.steps[0]": "loop without a wait: a -> b -> a"},
    ),
    (
        "through-a-split-variant",
        flow(
            step("a", "update_variable"),
            step(
                "b", "split", variants=[{"name": "x", "weight": 1, "next": "a"}, {"name": "y", "weight": 1}]
            ),
            step("end", "exit"),
        ),
        {"$.steps[0]": "loop without a wait: a -> b -> a"},
    ),
    (
        "through-a-call-error",
        flow(
            step("a", "update_profile"),
            step("b", "call_api", next={"success": "end", "error": "a"}),
            step("end", "exit"),
        ),
        {"$.steps[0]": "loop without a wait: a -> b -> a"},
    ),
    (
        "through-add-to-flow-failed",
        flow(step("a", "add_to_flow", next={"failed": "a"}), step("end", "exit")),
        {"$.steps[0]": "loop without a wait: a -> a"},
    ),
    # Steps that wait only the first time round: the loop spins from the second visit on.
    (
        "a-pause-until-a-date-time",
        loop_through("pause", until="2026-01-01T00:00:00+00:00"),
        {"$.steps[0]": "loop without a wait: w -> s -> w"},
    ),
    (
        "a-date-wait-that-is-not-every-year",
        loop_through("wait_for_date", attribute="renewal", is_today=True),
        {"$.steps[0]": "loop without a wait: w -> s -> w"},
    ),
    (
        "an-event-wait-counting-events-since-entry",
        loop_through("wait_for_event", conditions=[{"event": "x"}], timeout="1d", include_since_entry=True),
        {"$.steps[0]": "loop without a wait: w -> s -> w"},
    ),
]


WAITING_LOOPS = {
    "pause-for": loop_through("pause", **{"for": "1d"}),
    "pause-until-a-weekday": loop_through("pause", until={"weekday": "monday", "time": "09:00"}),
    "every-year-date": loop_through("wait_for_date", attribute="birthday", is_today=True, every_year=True),
    "event-wait": loop_through("wait_for_event", conditions=[{"event": "x"}], timeout="1d"),
    "change-wait": loop_through("wait_for_change", attribute="plan", timeout="indefinite"),
}


# ---------------------------------------------------------------- `not happened` alone

NOT_HAPPENED_ALONE = "'not happened' conditions need a 'happened' condition beside them"
NOT_HAPPENED: list[Case] = [
    (
        "one",
        flow(step("a", "wait_for_event", conditions=[{"event": "bought", "happened": False}])),
        {"$.steps[0].conditions": NOT_HAPPENED_ALONE},
    ),
    (
        "two-in-a-later-step",
        flow(
            step("a", "tag"),
            step(
                "b",
                "wait_for_event",
                conditions=[{"event": "x", "happened": False}, {"event": "y", "happened": False}],
            ),
        ),
        {"$.steps[1].conditions": NOT_HAPPENED_ALONE},
    ),
]


# ---------------------------------------------------------------- durations out of range


def one_step(kind: str, **fields: Any) -> dict[str, Any]:
    return flow({**step("a", kind), **fields})


EVERY_YEAR = "with every_year, is_in and was are at most 365d"
CALL_TIMEOUT = "a call's timeout is from 1s to 60s"
DURATIONS: list[Case] = [
    ("pause-0s", one_step("pause", **{"for": "0s"}), {"$.steps[0].for": WAIT_RANGE}),
    ("pause-over-5-years", one_step("pause", **{"for": "1831d"}), {"$.steps[0].for": WAIT_RANGE}),
    (
        "past-any-date",
        one_step("pause", **{"for": "99999999999999w"}),
        {"$.steps[0].for": "'99999999999999w' is too long a duration"},
    ),
    (
        "not-a-duration",
        one_step("pause", **{"for": "3 fortnights"}),
        {"$.steps[0].for": "'3 fortnights' is not a duration such as '30s', '15m', '4h', '7d' or '2w'"},
    ),
    (
        "date-is-in-0s",
        one_step("wait_for_date", is_today=False, is_in="0s"),
        {"$.steps[0].is_in": WAIT_RANGE},
    ),
    (
        "date-was-over-5-years",
        one_step("wait_for_date", is_today=False, was="2000d"),
        {"$.steps[0].was": WAIT_RANGE},
    ),
    (
        "every-year-over-a-year",
        one_step("wait_for_date", is_today=False, is_in="366d", every_year=True),
        {"$.steps[0]": EVERY_YEAR},
    ),
    ("event-timeout-0s", one_step("wait_for_event", timeout="0s"), {"$.steps[0].timeout": WAIT_RANGE}),
    (
        "event-within-0s",
        one_step("wait_for_event", conditions=[{"event": "x", "within": "0s"}]),
        {"$.steps[0].conditions[0].within": WAIT_RANGE},
    ),
    (
        "change-timeout-over-5-years",
        one_step("wait_for_change", timeout="300w"),
        {"$.steps[0].timeout": WAIT_RANGE},
    ),
    ("call-timeout-0s", one_step("call_api", timeout="0s"), {"$.steps[0].timeout": CALL_TIMEOUT}),
    ("call-timeout-61s", one_step("call_api", timeout="61s"), {"$.steps[0].timeout": CALL_TIMEOUT}),
    (
        "branch-condition-within-0s",
        one_step("branch", branches=[{"name": "x", "when": {"event": "x", "within": "0s"}}]),
        {"$.steps[0].branches[0].when": "'within' must be longer than zero"},
    ),
    (
        "settings",
        flow(step("a", "exit"), settings={"goal": {"event": "x", "within": "0s"}, "max_duration": "2000d"}),
        {"$.settings.goal.within": WAIT_RANGE, "$.settings.max_duration": WAIT_RANGE},
    ),
]


DURATION_BOUNDS = [
    one_step("pause", **{"for": "1s"}),
    one_step("pause", **{"for": "1830d"}),
    one_step("wait_for_date", is_today=False, is_in="365d", every_year=True),
    one_step("wait_for_date", is_today=False, was="1830d"),
    one_step("wait_for_event", timeout="1s"),
    one_step("call_api", timeout="60s"),
]
