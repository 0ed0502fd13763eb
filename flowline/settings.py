"""Configuration from the environment (``FLOWLINE_*``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from flowline.json_values import JsonLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWLINE_", env_file=".env", extra="ignore")

    # SQLite under .data/ by default; e.g. postgresql+psycopg://user@host:5432/flowline in production.
    database_url: str = "sqlite+aiosqlite:///.data/flowline.db"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "flowline-journeys"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    data_dir: Path = Path(".data")
    # Only `make run`'s embedded dev server uses these.
    temporal_ui_port: int = 8233
    # Flow language limits.
    max_steps: int = 100
    # What one request may carry (docs/api.md#limits): a larger body is refused with 413 before it
    # is read further (also when chunked); the rest are 422 with the path of each fault.
    max_body_bytes: int = 1024 * 1024
    # Requests per second each API key may send to one API process on average, and at once
    # (docs/api.md#rate-limits): past that, 429 with Retry-After. 0 turns the limit off.
    rate_limit_per_second: float = Field(default=200.0, ge=0)
    rate_limit_burst: int = Field(default=1000, ge=1)
    max_json_depth: int = 32
    max_string_chars: int = 100_000
    max_key_chars: int = 256
    max_profile_attributes: int = 500
    max_event_properties: int = 500
    # How long a process trusts the running flows an event can trigger it looked up (publishing
    # through the same process refreshes them at once). 0 turns caching off. API keys are not
    # cached: each request reads its key (docs/keys.md), so a revoked key is refused at once.
    flow_cache_seconds: float = 5.0
    # Every sweep_seconds the API routes events whose routing did not finish (Temporal refused,
    # a process died) once they are sweep_after_seconds old, and the events the engine writes
    # (flow_entered / flow_exited, message_sent, profile_changed, segment_*: only the sweeper
    # routes those an activity writes) once they are sweep_engine_after_seconds old. 0 turns the
    # sweeper off. Sweeping the engine's events after 2 s every 2 s made bench/latency.py's p50
    # go from 90 ms to 0.3-2.7 s on SQLite (their routing then competes with the load): lower
    # these where prompt flow_exited / message_sent triggers matter more than that.
    sweep_seconds: float = 10.0
    sweep_after_seconds: float = 30.0
    sweep_engine_after_seconds: float = 30.0
    # Outbound HTTP (webhooks).
    webhook_timeout_seconds: float = 10.0
    # Webhooks, call_api and HTTP providers may reach only public addresses (SSRF protection),
    # unless this is set; `cli.py run` (the embedded stack on a developer's machine) sets it.
    allow_private_outbound: bool = False
    # The export batcher (flowline/exports/batcher.py), run by each worker: a destination's
    # records go once a batch is full or its oldest record waited export_flush_seconds, at most
    # export_concurrency batches per destination at once. export_batcher false: this worker does
    # not deliver exports (another process does).
    export_batcher: bool = True
    export_flush_seconds: float = 2.0
    export_concurrency: int = 4
    # How long a delivery holds its records: a process that dies mid-batch delays them this long.
    export_lease_seconds: float = 120.0
    # Where people reach this API: the base of the links in messages (open pixel, click
    # redirects, unsubscribe).
    public_url: str = "http://127.0.0.1:8000"
    # Traces (docs/tracing.md): spans go over OTLP/HTTP to the collector at this base URL (say
    # http://otel-collector:4318; /v1/traces is appended). Empty: tracing off (no interceptor, no
    # tracer provider). The service name tells the processes apart in the collector.
    otlp_endpoint: str = ""
    trace_service_name: str = "flowline"
    # Payloads in Temporal histories (flow documents, event properties, variables, profile data)
    # are AES-256-GCM encrypted under these keys: "<key id>:<base64 32-byte key>,...". The first
    # encrypts, all decrypt (rotation: put the new key first). Empty: payloads stay plain JSON.
    payload_keys: SecretStr = SecretStr("")
    # Serve POST /codec/decode (Temporal's remote codec protocol) so a Temporal UI can show the
    # decrypted payloads: off unless chosen. It asks for an admin API key (`Authorization: Bearer`,
    # docs/keys.md#the-codec-endpoint) unless codec_open: only `cli.py run` sets that, for its
    # embedded UI, and only while the API listens on this machine alone.
    codec_endpoint: bool = False
    codec_open: bool = False
    # Origins of Temporal UIs (comma-separated, e.g. https://temporal.example.com) whose pages may
    # call the codec endpoint from the browser, besides the embedded UI's.
    codec_ui_origins: str = ""
    # Metrics and logs (docs/metrics.md). The API serves GET /metrics on its own port, without an
    # API key (counts by route, status and outcome: no ids, nothing personal); false removes it.
    metrics_endpoint: bool = True
    # The worker's Prometheus endpoint (Flowline's counters) on worker_metrics_host:port, and the
    # Temporal SDK's own metrics (its Rust core: polls, task latencies, slots) on
    # temporal_metrics_port. 0: off, the default, so that two workers on one machine do not
    # fight over a port; docker-compose.yml turns both on (9464, 9465).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    temporal_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    # Log lines as JSON objects (one a line, for a log collector) or plain text; `cli.py run`
    # chooses plain for its terminal unless this is set.
    log_format: Literal["json", "plain"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def json_limits(self) -> JsonLimits:
        return JsonLimits(
            max_depth=self.max_json_depth,
            max_string=self.max_string_chars,
            max_key=self.max_key_chars,
            # A JSON value takes at least two bytes with its separator: only YAML aliases reach this.
            max_values=self.max_body_bytes // 2 + 1,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
