"""Per-key rate limits: a token bucket per API key, in each API process (docs/api.md#rate-limits).

A key may send ``per_second`` requests a second on average and ``burst`` at once; past that the
API answers 429 with Retry-After (the seconds until the bucket holds a request again). An ASGI
middleware finds the bucket by the bearer token's hash before routing, body checks or the key's
database lookup, so a flood (with a known key or not) costs a dictionary lookup and a small
answer per request: the event loop keeps its time for the other clients. Each process counts
for itself: behind N API processes a key may send up to N times the rate (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimits:
    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = max(1, burst)
        self.max_keys = max_keys
        self.clock = clock
        # Least recently used first: a flood of made-up keys cannot grow the table without bound.
        self._buckets: OrderedDict[bytes, _Bucket] = OrderedDict()

    def take(self, key: str) -> float | None:
        """Take one request of ``key``'s bucket: None when allowed, else the seconds to wait."""
        now = self.clock()
        name = hashlib.sha256(key.encode()).digest()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(name)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.per_second)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.per_second


def retry_after(seconds: float) -> str:
    """Retry-After is whole seconds: round up, never 0."""
    return str(max(1, math.ceil(seconds)))


class RateLimit:
    """ASGI middleware: 429 for a ``/v1`` request whose bearer token's bucket is empty."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token:
                wait = self.limits.take(token.strip())
                if wait is not None:
                    message = (
                        f"too many requests with this API key (at most {self.limits.per_second:g} a "
                        f"second, {self.limits.burst} at once): send again after Retry-After seconds"
                    )
                    answer = JSONResponse(
                        {"message": message}, status_code=429, headers={"Retry-After": retry_after(wait)}
                    )
                    await answer(scope, receive, send)
                    return
        await self.app(scope, receive, send)
