"""The journey, flow and workspace ids on every log line an activity writes (flowline/logs.py).

A worker interceptor reads them from the activity's request: a ``JourneyRef`` itself or the
``journey`` of a step visit, an end, a path write; otherwise a ``workspace_id`` the request names.
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from flowline.journey import JourneyRef
from flowline.logs import log_ids


def ids_of(args: Any) -> dict[str, str | None]:
    for arg in args:
        ref = arg if isinstance(arg, JourneyRef) else getattr(arg, "journey", None)
        if isinstance(ref, JourneyRef):
            return {"journey_id": ref.journey_id, "flow_id": ref.flow_id, "workspace_id": ref.workspace_id}
        workspace_id = getattr(arg, "workspace_id", None)
        if isinstance(workspace_id, str):
            return {"workspace_id": workspace_id, "flow_id": _str(getattr(arg, "flow_id", None))}
    return {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with log_ids(**ids_of(input.args)):
            return await self.next.execute_activity(input)


class LogContext(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)
