"""OpenAPI links: what a client can do next with a resource it just created or changed.

A client generator shows them as next steps, and schemathesis follows them for its stateful runs
(create a profile, then read, change and erase it; tests/test_openapi_fuzz.py).
"""

from __future__ import annotations

from typing import Any

# (method, path, status) of the answer -> the operations it leads to, with where their
# parameters come from (runtime expressions of OpenAPI 3.1, section 4.8.20.4).
_LINKS: dict[tuple[str, str, str], list[tuple[str, str, dict[str, str]]]] = {
    ("put", "/v1/profiles/{profile_id}", "200"): [
        ("get", "/v1/profiles/{profile_id}", {"profile_id": "$request.path.profile_id"}),
        ("put", "/v1/profiles/{profile_id}/push_tokens", {"profile_id": "$request.path.profile_id"}),
        ("get", "/v1/profiles/{profile_id}/inbox", {"profile_id": "$request.path.profile_id"}),
        ("delete", "/v1/profiles/{profile_id}", {"profile_id": "$request.path.profile_id"}),
    ],
    ("put", "/v1/flows/{flow_id}", "200"): [
        ("get", "/v1/flows/{flow_id}", {"flow_id": "$request.path.flow_id"}),
        ("post", "/v1/flows/{flow_id}/publish", {"flow_id": "$request.path.flow_id"}),
        ("get", "/v1/flows/{flow_id}/versions", {"flow_id": "$request.path.flow_id"}),
        ("get", "/v1/flows/{flow_id}/stats", {"flow_id": "$request.path.flow_id"}),
    ],
    ("post", "/v1/flows/{flow_id}/publish", "200"): [
        ("post", "/v1/flows/{flow_id}/journeys", {"flow_id": "$request.path.flow_id"}),
        ("post", "/v1/flows/{flow_id}/drain", {"flow_id": "$request.path.flow_id"}),
        ("post", "/v1/flows/{flow_id}/stop", {"flow_id": "$request.path.flow_id"}),
    ],
    ("post", "/v1/flows/{flow_id}/journeys", "201"): [
        ("get", "/v1/journeys/{journey_id}", {"journey_id": "$response.body#/journey_id"}),
        ("post", "/v1/journeys/{journey_id}/stop", {"journey_id": "$response.body#/journey_id"}),
    ],
    ("post", "/v1/keys", "201"): [
        ("delete", "/v1/keys/{key_id}", {"key_id": "$response.body#/id"}),
    ],
    ("put", "/v1/segments/{segment_id}", "200"): [
        ("get", "/v1/segments/{segment_id}/members", {"segment_id": "$request.path.segment_id"}),
    ],
}


def add_links(schema: dict[str, Any]) -> None:
    """Adds the links above to the answers of ``schema`` (by operationId, as FastAPI names them)."""
    paths = schema["paths"]
    for (method, path, status), targets in _LINKS.items():
        answer = paths[path][method]["responses"][status]
        links = answer.setdefault("links", {})
        for target_method, target_path, parameters in targets:
            operation_id = paths[target_path][target_method]["operationId"]
            links[operation_id] = {"operationId": operation_id, "parameters": parameters}
