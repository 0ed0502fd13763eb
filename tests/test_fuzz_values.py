"""Arbitrary JSON values through the real API cannot break a workspace (issue 12, item 4).

Hypothesis sends values (deep nesting, huge strings, unicode edge cases, NaN and the infinities,
1e400, huge integers) as a profile attribute, an event property and a journey start variable, on
SQLite and PostgreSQL, then checks that the workspace still answers correctly: the value reads
back as sent, or was refused with 422 and exactly the paths ``value_faults`` names; segments whose
rules compare the fuzzed attribute are saved and list exactly the members the in-memory evaluator
expects; flow stats, journeys and the inbox answer.

Sized for the suite (``FLOWLINE_FUZZ_EXAMPLES``, default 50 per database, about 15 s in all). A
longer run: ``FLOWLINE_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/test_fuzz_values.py``.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from temporalio.testing import WorkflowEnvironment

from flowline.conditions import rules
from flowline.conditions.evaluate import evaluate
from flowline.conditions.facts import ProfileFacts
from flowline.conditions.rules import Condition
from flowline.json_values import JsonFault, value_faults
from flowline.settings import Settings
from tests.conftest import finish
from tests.test_journeys import publish

LIMITS = Settings().json_limits()
RULE: TypeAdapter[Condition] = TypeAdapter(Condition)

HUGE_INTS = st.sampled_from(
    [10**30, -(2**70), 2**63, -(2**63) - 1, 2**64, 2**1023, -(2**1024) + 1, 2**1024, -(10**400)]
)
NUMBERS = st.one_of(
    st.integers(),
    HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1.7976931348623157e308, 5e-324, -0.0, 0.1]),
)
EDGE_TEXT = st.sampled_from(
    [
        "",
        "\x00",
        "a\x00b",
        "\ud800",  # a lone surrogate: JSON can carry it escaped, UTF-8 cannot
        "x\udfffy",
        "\u2028\u2029",
        "\ufeff",
        "🙂",
        "e\u0301",
        "\U0010ffff",
        "NaN",
        "Infinity",
        "1e400",
        "x" * LIMITS.max_string,
        "y" * (LIMITS.max_string + 1),
    ]
)
TEXT = st.one_of(st.text(max_size=30), EDGE_TEXT)
KEYS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["", "a.b", "a b", "$", "[0]", "\x00", "\ud800", "k" * LIMITS.max_key, "k" * (LIMITS.max_key + 1)]
    ),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=16,
)


def nested(levels: int) -> Any:
    value: Any = "leaf"
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


FUZZED = st.one_of(VALUES, st.integers(LIMITS.max_depth - 4, LIMITS.max_depth + 4).map(nested))


def expected_paths(value: Any, path: str, depth: int) -> list[str]:
    faults: list[JsonFault] = value_faults(value, LIMITS, path, depth)
    return [f.path for f in faults]


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: PostgreSQL's jsonb keeps numbers as decimals, so 6.350194439525265e16 reads
    back as the integer 63501944395252650 (the same JSON number, the same double)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return a == b or ((isinstance(a, float) or isinstance(b, float)) and float(a) == float(b))
    return type(a) is type(b) and a == b


def body(document: Any) -> dict[str, Any]:
    """Keyword arguments for httpx: NaN and the infinities as the literals Python's json writes."""
    return {"content": json.dumps(document, allow_nan=True), "headers": {"Content-Type": "application/json"}}


def fault_paths(response: httpx.Response) -> list[str]:
    return [f["path"] for f in response.json()["faults"]]


# Names of our rule models: pydantic puts them into error locations, a client must never see one.
INTERNAL = {name for name, obj in vars(rules).items() if isinstance(obj, type)}


def no_internal_names(response: httpx.Response) -> None:
    for fault in response.json().get("faults", []):
        parts = re.split(r"[.\[\]]", fault["path"])
        assert not INTERNAL & set(parts), fault


def flow(flow_id: str) -> dict[str, Any]:
    return {
        "id": flow_id,
        "name": "Fuzzed",
        "trigger": {"type": "event", "event": "never_sent"},
        "steps": [
            {"id": "hi", "type": "send", "channel": "in_app", "content": {"body": "{{ vars.fz }}"}},
            {"id": "bye", "type": "exit"},
        ],
    }


async def check_segments(api: httpx.AsyncClient, profile_id: str, value: Any, now: datetime) -> None:
    """Segments comparing the fuzzed attribute are saved and list the members memory expects."""
    rules: list[dict[str, Any]] = [
        {"attribute": "fz", "op": "greater_than", "value": 0},
        {"attribute": "fz", "op": "is_not_empty"},
        {"attribute": "fz", "op": "contains", "value": "a"},
    ]
    # Equality with a float beyond 2**53 is left out: PostgreSQL's jsonb keeps such a float as its
    # decimal text (3.156706476301237e16 reads back as the integer 31567064763012370, and SQL
    # compares decimals) while memory compares the double's exact binary value.
    inexact = isinstance(value, float) and abs(value) >= 2**53
    if isinstance(value, str | int | float) and not isinstance(value, bool) and not inexact:
        rules.append({"attribute": "fz", "op": "is", "value": value})
    profile = await api.get(f"/v1/profiles/{profile_id}")
    assert profile.status_code == 200, profile.text
    facts = ProfileFacts(attributes=profile.json()["attributes"])
    for index, rule in enumerate(rules):
        response = await api.put(f"/v1/segments/fz-{index}", **body({"name": "fuzzed", "rule": rule}))
        if response.status_code == 422:
            no_internal_names(response)
            assert expected_paths(rule["value"], "$.rule.value", 2) == fault_paths(response) or all(
                p.startswith("$.rule") for p in fault_paths(response)
            ), response.text
            continue
        assert response.status_code == 200, (rule, response.text)
        members = await api.get(f"/v1/segments/fz-{index}/members", params={"limit": 1000})
        assert members.status_code == 200, (rule, members.text)
        expected = evaluate(RULE.validate_python(rule), facts, now)
        assert (profile_id in members.json()["members"]) == expected, (rule, facts.attributes)


# Journeys started so far per workspace whose flow is published: the api fixture (one workspace)
# lives for the whole test, across hypothesis's examples.
_STARTED: dict[str, int] = {}


@pytest.mark.usefixtures("worker")
@settings(
    max_examples=int(os.environ.get("FLOWLINE_FUZZ_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.function_scoped_fixture,  # on purpose: every example in the same workspace
    ],
)
@given(value=FUZZED)
async def test_fuzzed_values_never_break_a_workspace(
    api: httpx.AsyncClient, temporal: WorkflowEnvironment, value: Any
) -> None:
    workspace_key = api.headers["Authorization"]
    if workspace_key not in _STARTED:
        await publish(api, flow("fz"))
        _STARTED[workspace_key] = 0
    profile_id = f"p-{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)

    # A profile attribute.
    response = await api.put(f"/v1/profiles/{profile_id}", **body({"attributes": {"fz": value}}))
    refused = expected_paths(value, "$.attributes.fz", 2)
    if refused:
        assert response.status_code == 422, response.text
        assert fault_paths(response) == refused
        assert (await api.get(f"/v1/profiles/{profile_id}")).status_code == 404
    else:
        assert response.status_code == 200, response.text
        stored = (await api.get(f"/v1/profiles/{profile_id}")).json()["attributes"]
        assert same_json(stored, {} if value is None else {"fz": value}), stored
        await check_segments(api, profile_id, value, now)

    # An event property.
    event = {
        "id": uuid.uuid4().hex,
        "profile_id": profile_id,
        "name": "fuzzed",
        "properties": {"fz": value},
    }
    response = await api.post("/v1/events", **body([event]))
    refused = expected_paths(value, "$[0].properties.fz", 3)
    if refused:
        assert response.status_code == 422, response.text
        [rejected] = response.json()["rejected"]
        assert [f["path"] for f in rejected["faults"]] == refused
    else:
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 1

    # A journey start variable: the journey runs, its variables and the inbox answer.
    start = {"profile_id": profile_id, "variables": {"fz": value}}
    response = await api.post("/v1/flows/fz/journeys", **body(start))
    refused = expected_paths(value, "$.variables.fz", 2)
    if refused:
        assert response.status_code == 422, response.text
        assert fault_paths(response) == refused
    else:
        assert response.status_code == 201, response.text
        journey_id = response.json()["journey_id"]
        state = await finish(temporal, journey_id)
        assert same_json(state.variables.get("fz"), value)
        detail = await api.get(f"/v1/journeys/{journey_id}")
        assert detail.status_code == 200, detail.text
        assert same_json(detail.json()["variables"].get("fz"), value)
        inbox = await api.get(f"/v1/profiles/{profile_id}/inbox")
        assert inbox.status_code == 200, inbox.text
        assert len(inbox.json()["messages"]) == 1
        _STARTED[workspace_key] += 1
        listed = await api.get("/v1/journeys", params={"flow": "fz", "profile": profile_id})
        assert [j["id"] for j in listed.json()["journeys"]] == [journey_id], listed.text

    # The workspace as a whole still answers, and its stats count every journey started.
    stats = await api.get("/v1/flows/fz/stats")
    assert stats.status_code == 200, stats.text
    assert sum(v["entered"] for v in stats.json()["versions"]) == _STARTED[workspace_key]
    for url in (f"/v1/journeys?flow=fz&profile={profile_id}", "/v1/segments", "/v1/flows"):
        response = await api.get(url)
        assert response.status_code == 200, (url, response.text)
