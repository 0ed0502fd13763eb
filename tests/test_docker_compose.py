"""Static checks of docker-compose.yml and Dockerfile against the code they run.

No Docker engine is needed: the files are parsed and compared with the project (the commands
they run, the settings they set, the search attributes they create, the sources they copy).
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from flowline.journey import SEARCH_ATTRIBUTES
from flowline.settings import Settings
from tests.python_source import parse

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()

EXPECTED_SERVICES = {
    "postgresql",
    "temporal-admin-tools",
    "temporal",
    "temporal-create-namespace",
    "temporal-ui",
    "proxy",
    "migrate",
    "api",
    "worker",
    "prometheus",
}
ONE_OFF = {"temporal-admin-tools", "temporal-create-namespace", "migrate"}
TEMPORAL_SCHEMA_DIRS = {
    "temporal": "/etc/temporal/schema/postgresql/v12/temporal/versioned",
    "temporal_visibility": "/etc/temporal/schema/postgresql/v12/visibility/versioned",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value: object) -> str:
    """Compose's variable substitution with every variable unset (so defaults apply)."""
    text = str(value).replace("$$", "\0")
    return _VARIABLE.sub(lambda m: m.group(2) or "", text).replace("\0", "$")


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def command(service: str) -> list[str]:
    cmd = SERVICES[service].get("command")
    assert cmd, f"{service} has no command"
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def script(service: str) -> str:
    """The shell script of a service started as `sh -c <script>`, with compose's $$ unescaped."""
    assert SERVICES[service].get("entrypoint") == ["/bin/sh", "-c"], service
    cmd = SERVICES[service]["command"]
    return (cmd if isinstance(cmd, str) else "\n".join(cmd)).replace("$$", "$")


def built_here(service: str) -> bool:
    build = SERVICES[service].get("build")
    context = build.get("context") if isinstance(build, dict) else build
    return context in (".", "./")


def option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def test_expected_services_exist() -> None:
    assert set(SERVICES) >= EXPECTED_SERVICES
    assert {s for s in SERVICES if built_here(s)} == {"migrate", "api", "worker"}


def test_published_ports_bind_to_localhost_only() -> None:
    published: dict[str, set[str]] = {}
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host_ip, target = port.get("host_ip"), str(port["target"])
            else:
                parts = interpolate(port).split("/")[0].rsplit(":", 2)
                assert len(parts) == 3, f"{name}: {port!r} does not name a host IP"
                host_ip, target = parts[0], parts[2]
            assert host_ip == "127.0.0.1", f"{name}: {port!r} is reachable from other machines"
            published.setdefault(name, set()).add(target)
    assert published == {
        "proxy": {"8000"},
        "temporal-ui": {"8080"},
        "temporal": {"7233"},
        "prometheus": {"9090"},
    }
    # What is published is what the API listens on (and what its health check asks).
    assert option(command("api"), "--port") == "8000"


def test_api_replicas_are_reached_through_the_proxy() -> None:
    """Several API processes (FLOWLINE_API_REPLICAS, at least 2 by default), none published
    itself: deploy/nginx.conf, mounted into the proxy, spreads requests over them at the port
    they listen on, and lets bodies up to the API's own limit through (the API answers its 413)."""
    api, proxy = SERVICES["api"], SERVICES["proxy"]
    assert "FLOWLINE_API_REPLICAS" in str(api["deploy"]["replicas"])
    assert int(interpolate(api["deploy"]["replicas"])) >= 2
    assert "ports" not in api
    assert proxy["depends_on"]["api"]["condition"] == "service_healthy"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in proxy["volumes"]}
    conf = (ROOT / mounts["/etc/nginx/nginx.conf"]).read_text()
    upstream = re.search(r"upstream (\w+) \{\s*server ([\w-]+):(\d+);", conf)
    assert upstream is not None, conf
    assert (upstream.group(2), upstream.group(3)) == ("api", option(command("api"), "--port"))
    assert f"proxy_pass http://{upstream.group(1)};" in conf
    assert re.search(r"listen 8000;", conf)
    body = re.search(r"client_max_body_size (\d+)m;", conf)
    assert body is not None and int(body.group(1)) * 1024 * 1024 > Settings().max_body_bytes
    assert "127.0.0.1:8000/healthz" in " ".join(SERVICES["api"]["healthcheck"]["test"])


def test_postgres_keeps_its_data_in_a_named_volume() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    mounts = SERVICES["postgresql"].get("volumes", [])
    data = [m for m in mounts if str(m).endswith(":/var/lib/postgresql/data")]
    assert len(data) == 1, mounts
    source = data[0].split(":", 1)[0]
    assert source in declared, f"{source} is not a named volume (top-level volumes: {declared})"
    assert SERVICES["postgresql"]["healthcheck"]["test"][-1].startswith("pg_isready")


def _cli_command_names() -> set[str]:
    """The stack's commands (``python cli.py <name>``), read from the COMMANDS mapping of
    commands/stack.py (importing it is slow)."""
    tree = parse((ROOT / "commands" / "stack.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "COMMANDS" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            return {
                k.value for k in node.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
            }
    raise AssertionError("commands/stack.py has no COMMANDS mapping")


def _check_factory(module_name: str, attribute: str) -> None:
    """``module:attribute`` is a function uvicorn can import and call without arguments.

    Read from the source: importing the API (FastAPI, temporalio) would make this test slow,
    and tests/test_api.py imports and runs it anyway.
    """
    spec = importlib.util.find_spec(module_name)
    assert spec is not None and spec.origin, f"{module_name} is not importable"
    assert Path(spec.origin).resolve().is_relative_to(ROOT), f"{module_name} is not the project's"
    tree = parse(Path(spec.origin).read_text())
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert attribute in functions, f"{module_name} defines no function {attribute}"
    args = functions[attribute].args
    positional = args.posonlyargs + args.args
    assert len(args.defaults) == len(positional), f"{attribute} needs positional arguments"
    assert None not in args.kw_defaults, f"{attribute} needs keyword arguments"


def _check_runs_in_project(args: list[str], where: str) -> None:
    assert args[0] == "python", f"{where}: {args}"
    if args[1] == "-m":
        assert args[2] == "uvicorn", f"{where}: unexpected module {args[2]}"
        assert re.search(r"^uvicorn==", (ROOT / "requirements.lock").read_text(), re.M)
        target = option(args, "--factory")
        module_name, _, attribute = target.partition(":")
        _check_factory(module_name, attribute)
        return
    path = ROOT / args[1]
    assert path.is_file(), f"{where}: {args[1]} is not in the project"
    source = path.read_text()
    assert "__main__" in source, f"{where}: {args[1]} does nothing when run"
    if args[1] == "cli.py":
        assert len(args) >= 3 and args[2] in _cli_command_names(), f"{where}: no such command {args[2:]}"
    else:
        assert args[1] == "worker.py", f"{where}: unexpected script {args[1]}"


def test_app_services_run_code_that_exists() -> None:
    for name in ("migrate", "api", "worker"):
        _check_runs_in_project(command(name), name)
    assert command("migrate")[1:] == ["cli.py", "migrate"]
    assert "api.app:create_app" in command("api")
    assert command("worker")[1:] == ["worker.py"]
    cmd = re.search(r"^CMD\s+(\[.*\])\s*$", DOCKERFILE, re.M)
    assert cmd, "Dockerfile has no exec-form CMD"
    _check_runs_in_project(yaml.safe_load(cmd.group(1)), "Dockerfile CMD")


def test_flowline_environment_variables_are_settings() -> None:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    assert prefix == "FLOWLINE_"
    for name in SERVICES:
        for key in environment(name):
            if key.startswith(prefix):
                field = key[len(prefix) :].lower()
                assert field in Settings.model_fields, f"{name}: {key} is not a Settings field"
    required = {"database_url", "temporal_address", "temporal_namespace", "task_queue"}
    for name in ("migrate", "api", "worker"):
        env = environment(name)
        values = {k[len(prefix) :].lower(): interpolate(v) for k, v in env.items() if k.startswith(prefix)}
        assert required <= set(values), f"{name} lacks {required - set(values)}"
        Settings.model_validate(values)  # the values have the right types (no env or .env read)


def test_database_url_points_at_the_flowline_database() -> None:
    pg = environment("postgresql")
    for name in ("migrate", "api", "worker"):
        raw = environment(name)["FLOWLINE_DATABASE_URL"]
        url = urlsplit(interpolate(raw))
        assert url.scheme == "postgresql+psycopg"
        assert (url.hostname, url.port) == ("postgresql", 5432)
        assert url.path == "/" + interpolate(pg["POSTGRES_DB"])
        # Same variables as the server's, so overriding them in .env changes both.
        assert f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@" in raw
    temporal_databases = {environment("temporal")[k] for k in ("DBNAME", "VISIBILITY_DBNAME")}
    assert interpolate(pg["POSTGRES_DB"]) not in temporal_databases


def test_temporal_schemas_are_set_up_for_the_databases_the_server_uses() -> None:
    text = script("temporal-admin-tools")
    steps: dict[str, list[str]] = {}
    for db, rest in re.findall(r"--db\s+(\S+)\s+(.+)", text):
        steps.setdefault(db, []).append(rest.strip())
    server = environment("temporal")
    assert set(steps) == {server["DBNAME"], server["VISIBILITY_DBNAME"]} == set(TEMPORAL_SCHEMA_DIRS)
    for db, done in steps.items():
        assert done == ["create", "setup-schema -v 0.0", f"update-schema -d {TEMPORAL_SCHEMA_DIRS[db]}"], db
    assert "temporal-sql-tool --plugin postgres12 --ep postgresql -p 5432" in text
    assert server["DB"] == "postgres12" and server["POSTGRES_SEEDS"] == "postgresql"
    assert server["SKIP_SCHEMA_SETUP"] == "true"
    pg = environment("postgresql")
    assert (
        server["POSTGRES_USER"] == pg["POSTGRES_USER"] == environment("temporal-admin-tools")["POSTGRES_USER"]
    )
    assert (
        server["POSTGRES_PWD"]
        == pg["POSTGRES_PASSWORD"]
        == environment("temporal-admin-tools")["SQL_PASSWORD"]
    )
    # Schema and server must be of the same Temporal release.
    tag = SERVICES["temporal"]["image"].split(":", 1)[1]
    for name in ("temporal-admin-tools", "temporal-create-namespace"):
        assert SERVICES[name]["image"] == f"temporalio/admin-tools:{tag}"


def test_namespace_step_creates_exactly_the_search_attributes_of_the_code() -> None:
    text = script("temporal-create-namespace")
    created: dict[str, str] = {}
    for line in text.splitlines():
        if "search-attribute create" not in line:
            continue
        args = shlex.split(line)
        assert option(args, "--address") == "temporal:7233"
        assert option(args, "--namespace") == "$NAMESPACE"
        name, kind = option(args, "--name"), option(args, "--type")
        assert name not in created, f"{name} created twice"
        created[name] = kind
    assert created == SEARCH_ATTRIBUTES
    create = next(line for line in text.splitlines() if "operator namespace create" in line)
    assert option(shlex.split(create), "--namespace") == "$NAMESPACE"
    assert option(shlex.split(create), "--address") == "temporal:7233"
    # The namespace created is the one the API and the worker use.
    namespace = environment("temporal-create-namespace")["NAMESPACE"]
    for name in ("api", "worker", "migrate"):
        assert environment(name)["FLOWLINE_TEMPORAL_NAMESPACE"] == namespace
    assert environment("temporal-ui")["TEMPORAL_DEFAULT_NAMESPACE"] == namespace
    for name in ("api", "worker"):
        address = environment(name)["FLOWLINE_TEMPORAL_ADDRESS"]
        assert address == environment("temporal-ui")["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_dependencies_exist_and_order_the_startup() -> None:
    graph: dict[str, set[str]] = {}
    for name, service in SERVICES.items():
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {d: {"condition": "service_started"} for d in depends}
        graph[name] = set(depends)
        for target, spec in depends.items():
            assert target in SERVICES, f"{name} depends on unknown service {target}"
            condition = spec.get("condition", "service_started")
            assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{target} has no health check"
            if condition == "service_completed_successfully":
                assert target in ONE_OFF, f"{name} waits for {target} to exit"
                restart = str(SERVICES[target].get("restart", "no"))
                assert restart == "no" or restart.startswith("on-failure"), f"{target} never exits"
    for name in ("api", "worker"):
        for step in ("migrate", "temporal-create-namespace"):
            assert SERVICES[name]["depends_on"][step]["condition"] == "service_completed_successfully"
    assert SERVICES["temporal"]["depends_on"]["temporal-admin-tools"]["condition"] == (
        "service_completed_successfully"
    )
    # No cycles: every service can be started after its dependencies.
    started: set[str] = set()
    while len(started) < len(graph):
        ready = {name for name, deps in graph.items() if name not in started and deps <= started}
        assert ready, f"dependency cycle among {set(graph) - started}"
        started |= ready


def test_workers_scale() -> None:
    worker = SERVICES["worker"]
    assert "FLOWLINE_WORKER_REPLICAS" in str(worker["deploy"]["replicas"])
    assert int(interpolate(worker["deploy"]["replicas"])) >= 1
    # A fixed container name would stop a second replica from starting.
    for name in ("api", "worker"):
        assert "container_name" not in SERVICES[name]


def _local_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    # Packages with or without __init__.py (a folder of modules imports as a namespace package).
    return {n for n in names if (ROOT / f"{n}.py").is_file() or any((ROOT / n).glob("*.py"))}


def _needed_top_level() -> set[str]:
    """Project modules the entry points import, directly or through each other."""
    needed, todo = set(), ["worker.py", "cli.py", "api"]
    while todo:
        entry = todo.pop()
        if entry in needed:
            continue
        needed.add(entry)
        path = ROOT / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            todo += [f"{m}.py" if (ROOT / f"{m}.py").is_file() else m for m in _local_imports(file)]
    return needed


def test_dockerfile_copies_what_the_app_imports_and_installs_the_lock() -> None:
    logical = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.splitlines() if line[:1] != "#"))
    instructions = [line.split(maxsplit=1) for line in logical.splitlines() if line.strip()]
    copied = set()
    for keyword, rest in instructions:
        if keyword.upper() == "COPY" and "--from" not in rest:
            copied |= {src.rstrip("/").removeprefix("./") for src in shlex.split(rest)[:-1]}
    needed = _needed_top_level()
    assert needed >= {"flowline", "workflows", "activities", "api", "worker.py", "cli.py"}
    assert needed <= copied, f"not copied into the image: {needed - copied}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for source in copied:
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is ignored"
    assert {".venv", ".git", ".data"} <= set(ignored)

    keywords = [keyword.upper() for keyword, _ in instructions]
    assert instructions[0][1].startswith("python:3.11")
    lock_copy = next(i for i, (k, r) in enumerate(instructions) if k == "COPY" and "requirements.lock" in r)
    install = next(i for i, (k, r) in enumerate(instructions) if k == "RUN" and "pip install" in r)
    assert lock_copy < install
    assert "-r requirements.lock" in instructions[install][1]
    users = [rest.strip() for keyword, rest in instructions if keyword.upper() == "USER"]
    assert users and users[-1] not in {"root", "0"}, "the image runs as root"
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")


def test_prometheus_scrapes_the_api_and_every_worker_where_they_serve_metrics() -> None:
    """deploy/prometheus.yml, mounted into the prometheus service, names services of this file at
    the ports their processes serve metrics on (docs/metrics.md)."""
    prometheus = SERVICES["prometheus"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in prometheus["volumes"]}
    config_file = mounts["/etc/prometheus/prometheus.yml"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command("prometheus")
    config = yaml.safe_load((ROOT / config_file).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets: dict[str, set[tuple[str, int]]] = {}
    for name, job in jobs.items():
        found = set()
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                found.add((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            found |= {(host, int(dns["port"])) for host in dns["names"]}
        targets[name] = found
        for host, _ in found:
            assert host in SERVICES, f"{name}: {host} is no service of docker-compose.yml"
            assert host in prometheus["depends_on"], f"prometheus does not wait for {host}"

    worker = {k: interpolate(v) for k, v in environment("worker").items()}
    api_port = int(option(command("api"), "--port"))
    assert targets["flowline-api"] == {("api", api_port)}
    assert jobs["flowline-api"]["dns_sd_configs"], "every API replica, not one of them"
    assert jobs["flowline-api"].get("metrics_path", "/metrics") == "/metrics"
    assert targets["flowline-worker"] == {("worker", int(worker["FLOWLINE_WORKER_METRICS_PORT"]))}
    assert targets["temporal-sdk"] == {("worker", int(worker["FLOWLINE_TEMPORAL_METRICS_PORT"]))}
    # Reachable from the prometheus container: not bound to the worker's loopback only.
    assert worker["FLOWLINE_WORKER_METRICS_HOST"] == "0.0.0.0"
    # Every replica, not one of them: a worker scaled out is found through Docker's DNS.
    assert all(dns["type"] == "A" for job in jobs.values() for dns in job.get("dns_sd_configs", []))
    assert "FLOWLINE_METRICS_ENDPOINT" not in environment("api") or interpolate(
        environment("api")["FLOWLINE_METRICS_ENDPOINT"]
    ) in ("true", "1")
    # The Grafana dashboard asks for the metrics these processes expose.
    dashboard = (ROOT / "deploy" / "grafana" / "flowline.json").read_text()
    for metric in (
        "flowline_http_requests_total",
        "flowline_http_request_duration_seconds_bucket",
        "flowline_events_ingested_total",
        "flowline_journeys_ended_total",
        "flowline_sends_total",
        "flowline_export_records_total",
    ):
        assert metric in dashboard, metric
