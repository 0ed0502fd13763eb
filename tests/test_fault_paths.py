"""Fault paths are the document's paths, for every body the API takes (issue 12, item 3).

Pydantic's error locations name union tags and member names (``$.rule.Attribute.op``); a client
only knows the document it sent, so a path names keys and indexes of that document, plus at most
one missing or unknown last key, and never a class name of ours.
"""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

import httpx
import pytest

from flowline.document_paths import document_path

# ------------------------------------------------------------------ the walker on its own


def test_a_location_is_walked_through_the_document() -> None:
    rule = {"rule": {"all": [{"tag": "vip"}, {"not": {"attribute": "plan", "op": "nope"}}]}}
    loc = ("rule", "All", "all", 1, "Not", "not", "Attribute", "op")
    assert document_path(rule, loc) == "$.rule.all[1].not.op"
    # A missing field is named last, even when it looks like a tag.
    assert document_path({"rule": {"attribute": "a"}}, ("rule", "Attribute", "op"), last_is_key=True) == (
        "$.rule.op"
    )
    # A tag that is also a key of the same mapping: {type: event, event: ...}.
    trigger = {"trigger": {"type": "event", "event": 5}}
    assert document_path(trigger, ("trigger", "event", "event")) == "$.trigger.event"
    assert document_path({"trigger": {"type": "event"}}, ("trigger", "event", "event"), last_is_key=True) == (
        "$.trigger.event"
    )
    # An unknown key named like the mapping's tag is still that key.
    declared = {"variables": {"n": {"type": "text", "text": 1}}}
    assert document_path(declared, ("variables", "n", "text"), last_is_key=True) == "$.variables.n.text"
    # Plain union members are not data; keys that are not names are quoted.
    document = {"steps": [{"next": {"sent": 1}, "headers": {"X-A": 1}}]}
    assert document_path(document, ("steps", 0, "next", "SendNext", "sent")) == "$.steps[0].next.sent"
    assert document_path(document, ("steps", 0, "next", "str")) == "$.steps[0].next"
    assert document_path(document, ("steps", 0, "headers", "X-A")) == '$.steps[0].headers["X-A"]'
    assert document_path(document, ("steps", 0, "headers", "X-A", "[key]")) == '$.steps[0].headers["X-A"]'
    # A location into something that is not there names nothing more than the document holds.
    assert document_path("text", ("rule", "Attribute", "op")) == "$"


# ------------------------------------------------------------------ each endpoint family

EVENT = {"id": "e1", "profile_id": "ada", "name": "viewed", "properties": {"sku": "a"}}
FLOW = {
    "name": "Paths",
    "trigger": {
        "type": "event",
        "event": "signed_up",
        "where": [{"property": "plan", "op": "is", "value": 1}],
    },
    "settings": {"variables": {"n": {"type": "number", "default": 1}}},
    "steps": [
        {
            "id": "pick",
            "type": "branch",
            "branches": [
                {"name": "pro", "when": {"attribute": "plan", "op": "is", "value": "pro"}, "next": "mail"}
            ],
        },
        {
            "id": "mail",
            "type": "send",
            "channel": "email",
            "content": {"subject": "Hi", "text": "Hello"},
            "next": {"sent": "wait"},
        },
        {"id": "wait", "type": "pause", "for": "1d"},
        {"id": "done", "type": "exit"},
    ],
}
CHANNELS = {
    "email": {"provider": "smtp", "host": "smtp.example.test", "from_address": "a@example.test"},
    "sms": {"provider": "twilio", "account_sid": "AC1", "auth_token": "t", "from_number": "+100"},
    "push": {"provider": "fcm", "project_id": "p", "access_token": "t"},
}

# (method, url, body, the exact paths of its faults)
CASES: list[tuple[str, str, Any, list[str]]] = [
    (
        "PUT",
        "/v1/segments/s",
        {"name": "S", "rule": {"attribute": "plan", "op": "nope", "value": 1}},
        ["$.rule.op"],
    ),
    (
        "PUT",
        "/v1/segments/s",
        {
            "name": "S",
            "rule": {"all": [{"tag": "vip"}, {"not": {"event": "buy", "count": {"op": "~", "value": 1}}}]},
        },
        ["$.rule.all[1].not.count.op"],
    ),
    ("PUT", "/v1/segments/s", {"rule": {"attribute": "plan"}}, ["$.name", "$.rule.op"]),
    ("PUT", "/v1/segments/s", {"name": "S", "rule": {"tag": "vip", "colour": 1}}, ["$.rule.colour"]),
    ("PUT", "/v1/segments/s", {"name": "S", "rule": {"plan": "pro"}}, ["$.rule"]),
    ("PUT", "/v1/profiles/p", {"attributes": [1]}, ["$.attributes"]),
    ("PUT", "/v1/profiles/p", {"friends": ["b", 7], "referrer_id": ""}, ["$.referrer_id", "$.friends[1]"]),
    (
        "PUT",
        "/v1/profiles/p/push_tokens",
        {"tokens": [{"token": "t", "platform": "windows"}]},
        ["$.tokens[0].platform"],
    ),
    (
        "POST",
        "/v1/events",
        {"events": [EVENT, {**EVENT, "id": "e2", "properties": []}]},
        ["$.events[1].properties"],
    ),
    ("POST", "/v1/events", [EVENT, {"id": "e3"}], ["$[1].profile_id", "$[1].name"]),
    ("POST", "/v1/events", {**EVENT, "timestamp": "yesterday"}, ["$.timestamp"]),
    ("PUT", "/v1/workspace", {"timezone": "Mars/Olympus"}, ["$.timezone"]),
    ("PUT", "/v1/workspace", {"zone": "UTC"}, ["$.zone"]),
    (
        "PUT",
        "/v1/workspace/channels",
        {**CHANNELS, "sms": {**CHANNELS["sms"], "account_sid": 5}, "push": {"provider": "fcm"}},
        ["$.sms.account_sid", "$.push.service_account"],
    ),
    (
        "PUT",
        "/v1/workspace/channels",
        {
            "push": {
                "provider": "fcm",
                "service_account": {
                    "type": "user",
                    "project_id": "p",
                    "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
                    "token_uri": "not a url",
                    "colour": 1,
                },
            }
        },
        [
            "$.push.service_account.type",
            "$.push.service_account.private_key",
            "$.push.service_account.client_email",
            "$.push.service_account.token_uri",
            "$.push.service_account.colour",
        ],
    ),
    (
        "POST",
        "/v1/flows/f/journeys",
        {"profile_id": "", "variables": [], "colour": 1},
        ["$.profile_id", "$.variables", "$.colour"],
    ),
    ("POST", "/v1/reports/email", {"delivery_id": "d", "status": "read"}, ["$.status"]),
    ("POST", "/v1/reports/email", {"status": "opened"}, ["$"]),
    ("PUT", "/v1/attributes/score", {"type": "color"}, ["$.type"]),
    (
        "POST",
        "/v1/flows/f/validate",
        {
            **FLOW,
            "steps": [
                {
                    **FLOW["steps"][0],
                    "branches": [{"name": "x", "when": {"attribute": "plan", "op": "nope"}}],
                },
                *FLOW["steps"][1:],
            ],
        },
        ["$.steps[0].branches[0].when.op"],
    ),
    ("POST", "/v1/flows/f/validate", {**FLOW, "trigger": {"type": "event", "event": 5}}, ["$.trigger.event"]),
    (
        "POST",
        "/v1/flows/f/validate",
        {
            **FLOW,
            "steps": [
                *FLOW["steps"][:1],
                {**FLOW["steps"][1], "content": {"subject": 7}, "next": {"sent": 1}},
                *FLOW["steps"][2:],
            ],
        },
        ["$.steps[1].content.subject", "$.steps[1].next.sent"],
    ),
]


def _paths(response: httpx.Response) -> list[str]:
    body = response.json()
    if "rejected" in body:
        return [f["path"] for r in body["rejected"] for f in r["faults"]]
    return [f["path"] for f in body["faults"]]


@pytest.mark.parametrize(
    ("method", "url", "body", "paths"), CASES, ids=[f"{c[0]} {c[1]} {i}" for i, c in enumerate(CASES)]
)
async def test_each_body_faults_at_its_document_paths(
    api: httpx.AsyncClient, method: str, url: str, body: Any, paths: list[str]
) -> None:
    response = await api.request(method, url, json=body)
    assert response.status_code in (202, 422), response.text
    assert sorted(_paths(response)) == sorted(paths), response.text


async def test_a_body_that_is_not_json_faults_at_the_root(api: httpx.AsyncClient) -> None:
    for url in ("/v1/segments/s", "/v1/profiles/p", "/v1/workspace"):
        response = await api.put(url, content=b'{"name": ', headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        [fault] = response.json()["faults"]
        assert fault["path"] == "$" and fault["message"].startswith("JSON decode error: "), fault
    events = await api.post("/v1/events", content=b"[1,", headers={"Content-Type": "application/json"})
    assert events.status_code == 422 and events.json()["faults"][0]["path"] == "$"


# ------------------------------------------------------------------ any invalid body

VALID: list[tuple[str, str, Any]] = [
    (
        "PUT",
        "/v1/segments/s",
        {
            "name": "S",
            "rule": {
                "all": [
                    {"attribute": "plan", "op": "is", "value": "pro"},
                    {"not": {"tag": "churned"}},
                    {
                        "event": "buy",
                        "count": {"op": ">=", "value": 2},
                        "within": "30d",
                        "where": [{"property": "sku", "op": "is", "value": "a"}],
                    },
                    {"any": [{"flow": "f", "state": "entered"}, {"do_not_contact": "email"}]},
                ]
            },
        },
    ),
    ("PUT", "/v1/profiles/p", {"attributes": {"plan": "pro", "n": 1}, "referrer_id": "r", "friends": ["b"]}),
    ("PUT", "/v1/profiles/p/push_tokens", {"tokens": [{"token": "t", "platform": "ios"}]}),
    ("POST", "/v1/events", {"events": [EVENT, {**EVENT, "id": "e2", "timestamp": "2026-01-01T00:00:00Z"}]}),
    ("POST", "/v1/events", [EVENT, {**EVENT, "id": "e4"}]),
    ("PUT", "/v1/workspace", {"timezone": "Europe/Paris"}),
    ("PUT", "/v1/workspace/channels", CHANNELS),
    ("POST", "/v1/flows/f/journeys", {"profile_id": "p", "variables": {"n": 1}, "entry_id": "x"}),
    ("POST", "/v1/reports/email", {"delivery_id": "d", "status": "delivered", "at": "2026-01-01T00:00:00Z"}),
    ("PUT", "/v1/attributes/score", {"type": "number"}),
    ("POST", "/v1/flows/f/validate", FLOW),
]
# Values that are wrong almost anywhere, including keys and tags pydantic knows by another name.
ODD_VALUES: list[Any] = [
    None,
    5,
    -1.5,
    "",
    "x",
    True,
    [],
    {},
    [1, {"a": 2}],
    {"type": "nope"},
    {"Attribute": 1},
]
ODD_KEYS = ["zz", "Attribute", "str", "type", "not_", "[key]", "a b"]


def _places(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location in a JSON value."""
    found = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _places(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _places(value, (*at, index))
    return found


def _mutate(document: Any, rng: random.Random) -> Any:
    document = copy.deepcopy(document)
    for _ in range(rng.randint(1, 2)):
        at = rng.choice(_places(document))
        parent = document
        for part in at[:-1]:
            parent = parent[part]
        kind = rng.choice(["replace", "replace", "add", "drop"])
        if not at:
            document = copy.deepcopy(rng.choice(ODD_VALUES)) if kind == "replace" else document
            continue
        target = parent[at[-1]]
        if kind == "add" and isinstance(target, dict):
            target[rng.choice(ODD_KEYS)] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif kind == "drop" and isinstance(parent, dict):
            del parent[at[-1]]
        else:
            parent[at[-1]] = copy.deepcopy(rng.choice(ODD_VALUES))
    return document


_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def _parts(path: str) -> list[str | int]:
    assert path.startswith("$"), path
    parts: list[str | int] = []
    rest = path[1:]
    while rest:
        step = _STEP.match(rest)
        assert step is not None, f"{path!r} is not a path of names, indexes and quoted keys"
        name, index, quoted = step.groups()
        parts.append(name if name is not None else int(index) if index is not None else json.loads(quoted))
        rest = rest[step.end() :]
    return parts


def _names_only_the_document(path: str, document: Any) -> bool:
    """Every part is a key or index of ``document`` but for one missing last key."""
    node = document
    parts = _parts(path)
    for position, part in enumerate(parts):
        if (isinstance(part, int) and isinstance(node, list) and part < len(node)) or (
            isinstance(part, str) and isinstance(node, dict) and part in node
        ):
            node = node[part]
        else:
            return position == len(parts) - 1 and isinstance(part, str) and isinstance(node, dict)
    return True


async def test_no_fault_path_names_what_the_document_does_not_hold(api: httpx.AsyncClient) -> None:
    rng = random.Random(12)
    checked = 0
    for method, url, valid in VALID:
        for _ in range(40):
            body = _mutate(valid, rng)
            response = await api.request(method, url, json=body)
            assert response.status_code < 500, (url, body, response.text)
            if response.status_code not in (202, 422) or "faults" not in response.text:
                continue
            for path in _paths(response):
                checked += 1
                assert _names_only_the_document(path, body), (url, body, path)
    assert checked > 200
