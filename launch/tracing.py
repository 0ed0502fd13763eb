"""Tracing across Temporal (docs/tracing.md): temporalio's ``TracingInterceptor`` on the client.

On the client the API uses, it opens a span for each workflow start and signal and carries the
trace context in the call's headers; a worker built on a client with it takes it as its own
interceptor too (temporalio does that), and continues the trace in the workflow (spans of zero
duration, none while replaying) and in each activity (a span its outbound calls nest under).
Workflows the client did not start under a span (schedules, the CLI) get no workflow spans.

``FlowlineTracing`` adds Flowline's ids (journey, flow, workspace, step) to the start and
activity spans, read from the request models; never a profile id or a value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from temporalio import client, worker

from flowline import tracing
from flowline.journey import JourneyRef
from flowline.settings import Settings


def temporal_interceptors(settings: Settings) -> list[client.Interceptor]:
    """The interceptor when tracing is on (starting this process's tracing), else none at all."""
    started = tracing.start(settings)
    if started is None:
        return []
    return [_interceptor(started.tracer)]


def _interceptor(tracer: trace.Tracer) -> client.Interceptor:
    # Imported only with tracing on (the module loads the OpenTelemetry SDK).
    from temporalio.contrib.opentelemetry import TracingInterceptor

    class FlowlineTracing(TracingInterceptor):
        def intercept_client(self, next: client.OutboundInterceptor) -> client.OutboundInterceptor:
            # Ours inside temporalio's: its span is the current one when ours runs.
            return super().intercept_client(_ClientIds(next))

        def intercept_activity(
            self, next: worker.ActivityInboundInterceptor
        ) -> worker.ActivityInboundInterceptor:
            return super().intercept_activity(_ActivityIds(next))

    return FlowlineTracing(tracer)


def ids_of(args: Iterable[Any]) -> dict[str, str]:
    """The journey, flow, workspace and step ids a workflow's or an activity's input names."""
    found: dict[str, str] = {}
    for arg in args:
        ref = arg if isinstance(arg, JourneyRef) else getattr(arg, "journey", None)
        if isinstance(ref, JourneyRef):
            found |= {
                tracing.JOURNEY_ID: ref.journey_id,
                tracing.FLOW_ID: ref.flow_id,
                tracing.WORKSPACE_ID: ref.workspace_id,
            }
        for name, key in (("journey_id", tracing.JOURNEY_ID), ("workspace_id", tracing.WORKSPACE_ID)):
            if isinstance(value := getattr(arg, name, None), str):
                found.setdefault(key, value)
        flow = getattr(arg, "flow", None)
        flow_id = getattr(arg, "flow_id", None) or getattr(flow, "id", None)
        if isinstance(flow_id, str):
            found.setdefault(tracing.FLOW_ID, flow_id)
        step = getattr(arg, "step", None)
        step_id = getattr(arg, "step_id", None) or getattr(step, "id", None)
        if isinstance(step_id, str):
            found.setdefault(tracing.STEP_ID, step_id)
    return found


class _ClientIds(client.OutboundInterceptor):
    async def start_workflow(self, input: client.StartWorkflowInput) -> client.WorkflowHandle[Any, Any]:
        trace.get_current_span().set_attributes(ids_of(input.args))
        return await super().start_workflow(input)


class _ActivityIds(worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: worker.ExecuteActivityInput) -> Any:
        trace.get_current_span().set_attributes(ids_of(input.args))
        return await super().execute_activity(input)
