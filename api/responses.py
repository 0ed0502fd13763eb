"""The error answers of the API as the OpenAPI document declares them, in one place.

Every error body is ``{"message": ...}`` (api/errors.py); a refused document or request adds
``faults: [{path, message}]``. Routers declare the answers every route of theirs can give
(``AUTHENTICATED``), routes add their own (``errors(404, 409)``), so that a client generator
knows each status and its body, and schemathesis can hold the API to them
(tests/test_openapi_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api.schemas import Fault


class Problem(BaseModel):
    """What went wrong, in words."""

    message: str


class Invalid(Problem):
    """A refused request or document: every fault with its path in the body (``$.steps[0].next``)
    or the name of the query or path parameter."""

    faults: list[Fault] = Field(default_factory=list)


_WHY = {
    400: "the body cannot be read (not UTF-8, or not a form)",
    401: "no API key, or an unknown or revoked one",
    403: "the API key's scope does not allow the request (a read key may only GET; managing keys "
    "needs an admin key), or a request's signature does not match",
    404: "no such resource in the workspace",
    409: "the resource's state refuses the request",
    413: "the request is too large (body size, or items in one call)",
    422: "the request is invalid: each fault with its path",
    429: "too many requests with this API key: send again after Retry-After seconds",
    503: "the store or Temporal is busy or unreachable: nothing was changed, send the request again "
    "(after Retry-After seconds)",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before sending again", "schema": {"type": "integer"}}
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route or router for these error statuses."""
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        answer: dict[str, Any] = {"description": _WHY[status], "model": Invalid if status == 422 else Problem}
        if status in (429, 503):
            answer["headers"] = _RETRY_AFTER
        declared[status] = answer
    return declared


# What any route behind an API key can answer: no key, a key whose scope does not allow the request
# (docs/keys.md), or the store or Temporal busy.
AUTHENTICATED = errors(401, 403, 429, 503)
# What a route that reads a body can answer besides: unreadable, too large, invalid.
WITH_BODY = errors(400, 413, 422)
# A route with query or path parameters that are checked.
WITH_PARAMETERS = errors(422)
