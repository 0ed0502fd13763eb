"""Connecting to Temporal the same way everywhere (API, worker, CLI, tests)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from flowline.settings import Settings
from launch.payload_codec import data_converter
from launch.tracing import temporal_interceptors


async def connect(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """``runtime``: the worker's, with its metrics endpoint (worker.py); None: the SDK's default."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        # Traces through the client's calls and the workers built on it (launch/tracing.py).
        interceptors=temporal_interceptors(settings),
        # Encrypts payloads when FLOWLINE_PAYLOAD_KEYS is set (launch/payload_codec.py).
        data_converter=data_converter(settings.payload_keys.get_secret_value()),
        runtime=runtime,
    )
