"""deploy/ (Dockerfile, compose.yaml, k8s manifests) agrees with the code it runs.

There is no Docker engine or cluster here, so the files are checked, not run: every command is a
real ``onevoice`` subcommand, every ``ONEVOICE_*`` variable is a setting and the values parse as
``Settings``, Services and probes point at ports and paths that exist, and the image layout
gives ``services/bootstrap.py`` the ``alembic.ini`` it looks for. compose.yaml and the manifests
are JSON (valid YAML), so the standard library parses them.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import configparser
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

import services
from services import bootstrap, cli
from services.api.routes import health
from services.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
SERVICE_ROLES = {"ingest", "api", "projector"}
HTTP_ROLES = {"ingest", "api"}  # behind a Service, on ONEVOICE_PORT
# The roles whose database connections count against PostgreSQL's default max_connections
# (100) minus superuser_reserved_connections (3).
PG_CONNECTION_BUDGET = 97
ONE_SHOTS = {"migrate", "topics"}
SETTING_NAMES = {f"ONEVOICE_{name.upper()}" for name in Settings.model_fields}

Doc = dict[str, Any]


# -- the code's side --------------------------------------------------------------------------


def subcommands() -> set[str]:
    """The names ``services/cli.py`` registers with ``add_parser``."""
    tree = ast.parse((ROOT / "services" / "cli.py").read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_parser"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def cli_exit_code(argv: list[str]) -> object:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    return exc.value.code


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``ONEVOICE_*`` variable from the outer environment leaks into ``Settings()``."""
    for name in list(os.environ):
        if name.startswith("ONEVOICE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``Settings()`` exactly as a container with ``env`` would build it."""
    assert set(env) <= SETTING_NAMES, f"not settings: {set(env) - SETTING_NAMES}"
    for name, value in env.items():
        assert isinstance(value, str), f"{name}: environment values must be strings"
        monkeypatch.setenv(name, value)
    try:
        return Settings()
    finally:
        for name in env:
            monkeypatch.delenv(name)


# -- the deploy side --------------------------------------------------------------------------


def load_json(path: Path) -> Doc:
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), path
    return doc


def compose() -> Doc:
    return load_json(DEPLOY / "compose.yaml")


def env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        assert match, f"{path.name}: not KEY=value: {line!r}"
        assert match[1] not in env, f"{path.name}: {match[1]} set twice"
        env[match[1]] = match[2]
    return env


def compose_env(service: Doc) -> dict[str, str]:
    """A compose service's environment: its env_file(s), then ``environment``."""
    env: dict[str, str] = {}
    files = service.get("env_file", [])
    for name in [files] if isinstance(files, str) else files:
        env.update(env_file(DEPLOY / name))
    extra = service.get("environment", {})
    if isinstance(extra, list):
        extra = dict(item.split("=", 1) for item in extra)
    env.update(extra)
    return env


def onevoice_services(doc: Doc) -> dict[str, Doc]:
    """Compose services built from deploy/Dockerfile."""
    found = {}
    for name, service in doc["services"].items():
        build = service.get("build")
        if build is None:
            continue
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context must be the repository root"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
        found[name] = service
    return found


def k8s_docs() -> list[tuple[Path, Doc]]:
    """Every object under deploy/k8s (``List`` items expanded), with its file."""
    docs = []
    for path in sorted(K8S.rglob("*")):
        if path.is_dir():
            continue
        assert path.suffix == ".json", f"{path}: manifests are JSON"
        doc = load_json(path)
        for item in doc["items"] if doc["kind"] == "List" else [doc]:
            docs.append((path, item))
    return docs


def k8s_objects(kind: str) -> list[Doc]:
    return [doc for _, doc in k8s_docs() if doc["kind"] == kind]


def k8s_named(kind: str, name: str) -> Doc:
    found = [doc for doc in k8s_objects(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def workloads() -> Iterator[tuple[Doc, Doc]]:
    """(Deployment or Job, its single container)."""
    for doc in k8s_objects("Deployment") + k8s_objects("Job"):
        containers = doc["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1, doc["metadata"]["name"]
        yield doc, containers[0]


def role_of(container: Doc) -> str:
    args = container["args"]
    assert isinstance(args, list) and len(args) == 1, container["name"]
    return str(args[0])


def k8s_env(container: Doc) -> dict[str, str]:
    """A container's environment from envFrom (ConfigMap data, Secret stringData) and env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(k8s_named("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            env.update(k8s_named("Secret", source["secretRef"]["name"])["stringData"])
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    return env


def container_port(container: Doc, port: int | str) -> int:
    """The containerPort that a Service targetPort or probe port (name or number) means."""
    for spec in container.get("ports", []):
        if port in (spec["containerPort"], spec.get("name")):
            return int(spec["containerPort"])
    raise AssertionError(f"{container['name']}: no container port {port!r}")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line.removesuffix(chr(92)).strip()}".strip()
        if line.endswith("\\"):
            continue
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending
    return instructions


def docker_values(keyword: str) -> list[str]:
    return [rest for key, rest in dockerfile() if key == keyword]


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in docker_values("ENV"):
        env.update(item.split("=", 1) for item in shlex.split(rest))
    return env


# -- commands ---------------------------------------------------------------------------------


def test_every_command_the_deploy_files_run_is_a_cli_subcommand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    known = subcommands()
    assert {"run", "ingest", "api", "projector", "migrate", "topics"} <= known
    used = {str(s["command"][0]) for s in onevoice_services(compose()).values()}
    used |= {role_of(container) for _, container in workloads()}
    used |= set(json.loads(docker_values("CMD")[-1]))
    assert used == SERVICE_ROLES | ONE_SHOTS
    assert used <= known
    for command in sorted(used):  # the real parser accepts each one
        assert cli_exit_code([command, "--help"]) == 0, command
    assert cli_exit_code(["no-such-command"]) == 2
    capsys.readouterr()


def test_every_onevoice_variable_in_deploy_is_a_setting() -> None:
    named: set[str] = set()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and "local" not in path.relative_to(DEPLOY).parts:
            named |= set(re.findall(r"\bONEVOICE_[A-Z0-9_]+", path.read_text(encoding="utf-8")))
    assert len(named) >= 9
    assert named - SETTING_NAMES == set()


# -- compose ----------------------------------------------------------------------------------


def test_compose_runs_each_role_as_its_own_service() -> None:
    doc = compose()
    ours = onevoice_services(doc)
    assert set(ours) == SERVICE_ROLES | ONE_SHOTS
    for name, service in ours.items():
        assert service["command"] == [name]
    assert len({service["image"] for service in ours.values()}) == 1
    assert ours["projector"]["deploy"]["replicas"] >= 2
    assert "ports" not in ours["projector"]
    for name in ONE_SHOTS:
        assert ours[name]["restart"] == "no"
        assert "deploy" not in ours[name]


def test_compose_services_get_valid_production_settings(clean_env: pytest.MonkeyPatch) -> None:
    doc = compose()
    kafka_env = doc["services"]["kafka"]["environment"]
    postgres_env = doc["services"]["postgres"]["environment"]
    for name, service in onevoice_services(doc).items():
        settings = settings_from(compose_env(service), clean_env)
        assert settings.log_backend == "kafka", name
        assert settings.host == "0.0.0.0", name
        assert settings.kafka_replication_factor == 1, name  # one broker
        host, _, port = settings.kafka_bootstrap.partition(":")
        assert host in doc["services"], name
        assert f"PLAINTEXT://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        assert f"PLAINTEXT://:{port}" in kafka_env["KAFKA_LISTENERS"]
        protocols = dict(
            pair.split(":") for pair in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        assert settings.kafka_security_protocol == protocols["PLAINTEXT"], name
        url = make_url(settings.database_url)
        assert url.drivername == "postgresql+psycopg", name
        assert url.host in doc["services"] and doc["services"][url.host]["image"].startswith(
            "postgres:"
        )
        assert (url.port, url.username, url.password, url.database) == (
            5432,
            postgres_env["POSTGRES_USER"],
            postgres_env["POSTGRES_PASSWORD"],
            postgres_env["POSTGRES_DB"],
        )


def test_compose_start_order() -> None:
    services_ = compose()["services"]
    for name, service in services_.items():
        for target, rule in service.get("depends_on", {}).items():
            assert target in services_, f"{name} depends on unknown {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in services_[target], target
    assert services_["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services_["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in SERVICE_ROLES:
        depends = services_[name]["depends_on"]
        # The services never migrate (they check the schema): the migrate job goes first.
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"] == {"condition": "service_healthy"}, name
    # The query API needs the database only: it starts while Kafka is down or the topic missing.
    assert set(services_["api"]["depends_on"]) == {"migrate", "postgres"}
    for name in SERVICE_ROLES - {"api"}:
        assert services_[name]["depends_on"]["topics"] == {
            "condition": "service_completed_successfully"
        }, name


def test_compose_http_ports_and_healthchecks(clean_env: pytest.MonkeyPatch) -> None:
    ours = onevoice_services(compose())
    published = []
    for name in SERVICE_ROLES:
        settings = settings_from(compose_env(ours[name]), clean_env)
        port = settings.projector_port if name == "projector" else settings.port
        if name in HTTP_ROLES:
            [mapping] = ours[name]["ports"]
            host_port, container = mapping.split(":")
            assert int(container) == port, name
            published.append(int(host_port))
        # Compose's health is what the role needs to serve: its /readyz (503 fails urlopen).
        test = ours[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]  # python:3.11-slim has no curl
        assert f"urlopen('http://127.0.0.1:{port}/readyz'" in test[3], name
    assert sorted(published) == [8001, 8002]


def test_compose_kafka_is_one_kraft_broker_and_controller() -> None:
    env = compose()["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert node == env["KAFKA_NODE_ID"]
    controller_port = voter.rpartition(":")[2]
    assert (
        f"{env['KAFKA_CONTROLLER_LISTENER_NAMES']}://:{controller_port}" in env["KAFKA_LISTENERS"]
    )
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # `onevoice topics` creates it
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16  # a Kafka Uuid
    [volume] = compose()["services"]["kafka"]["volumes"]
    assert volume.endswith(":" + env["KAFKA_LOG_DIRS"])


# -- kubernetes -------------------------------------------------------------------------------


def test_k8s_objects_are_well_formed_and_share_one_namespace() -> None:
    [namespace] = k8s_objects("Namespace")
    seen = set()
    for path, doc in k8s_docs():
        assert doc["apiVersion"] and doc["metadata"]["name"], path
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in seen, f"{key} defined twice"
        seen.add(key)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace["metadata"]["name"], path


def test_k8s_workloads_run_the_roles_with_valid_settings(clean_env: pytest.MonkeyPatch) -> None:
    deployments = {role_of(c): (d, c) for d, c in workloads() if d["kind"] == "Deployment"}
    jobs = {role_of(c): (d, c) for d, c in workloads() if d["kind"] == "Job"}
    assert set(deployments) == SERVICE_ROLES
    assert set(jobs) == ONE_SHOTS
    assert deployments["projector"][0]["spec"]["replicas"] >= 2
    [image] = {c["image"] for _, c in workloads()}
    assert image in {s["image"] for s in onevoice_services(compose()).values()}
    [user] = docker_values("USER")
    for doc, container in workloads():
        name = doc["metadata"]["name"]
        assert name == f"onevoice-{role_of(container)}"  # onevoice-migrate runs `migrate`
        assert doc["metadata"]["labels"]["app.kubernetes.io/component"] == role_of(container)
        pod = doc["spec"]["template"]["spec"]
        if doc["kind"] == "Job":
            assert pod["restartPolicy"] in ("Never", "OnFailure"), name
        else:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert str(pod["securityContext"]["runAsUser"]) == user.split(":")[0], name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
        settings = settings_from(k8s_env(container), clean_env)
        assert settings.log_backend == "kafka", name
        assert settings.host == "0.0.0.0", name
        assert settings.kafka_bootstrap != Settings.model_fields["kafka_bootstrap"].default
        assert make_url(settings.database_url).drivername == "postgresql+psycopg", name
        if role_of(container) in HTTP_ROLES:
            assert container_port(container, "http") == settings.port, name
        elif role_of(container) == "projector":
            assert [p["name"] for p in container["ports"]] == ["health"], name
            assert container_port(container, "health") == settings.projector_port, name
        else:
            assert "ports" not in container, name


def test_k8s_probes_use_the_health_endpoints_of_every_service_role() -> None:
    probed = set()
    for doc, container in workloads():
        name = doc["metadata"]["name"]
        probes = {key: container.get(key) for key in ("livenessProbe", "readinessProbe")}
        if role_of(container) not in SERVICE_ROLES:
            assert probes == {"livenessProbe": None, "readinessProbe": None}, name
            continue
        probed.add(role_of(container))
        assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        port = "http" if role_of(container) in HTTP_ROLES else "health"
        for probe in (*probes.values(), container.get("startupProbe")):
            if probe is not None:
                assert probe["httpGet"]["port"] == port, name
                container_port(container, probe["httpGet"]["port"])
        # A readiness answer must come within the probe's timeout: no role's /readyz waits
        # on a log it does not need, and ingest's/projector's waits at most the send timeout.
        assert probes["readinessProbe"]["timeoutSeconds"] >= 5, name
    assert probed == SERVICE_ROLES


def test_k8s_migrate_job_runs_before_the_services_which_do_not_migrate() -> None:
    job = k8s_named("Job", "onevoice-migrate")
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert job["spec"]["backoffLimit"] >= 1
    files = {doc["metadata"]["name"]: path.name for path, doc in k8s_docs()}
    deployments = [doc["metadata"]["name"] for doc in k8s_objects("Deployment")]
    # `kubectl apply -f deploy/k8s/` applies files in name order: the Job before every service.
    assert all(files["onevoice-migrate"] < files[name] for name in deployments)
    assert "migrate" not in {role_of(c) for d, c in workloads() if d["kind"] == "Deployment"}


def max_connections(settings: Settings) -> int:
    return settings.db_pool_size + settings.db_max_overflow


def test_k8s_database_pools_fit_postgres_max_connections_during_a_rollout(
    clean_env: pytest.MonkeyPatch,
) -> None:
    total = 0
    for doc, container in workloads():
        settings = settings_from(k8s_env(container), clean_env)
        replicas = doc["spec"].get("replicas", 1) if doc["kind"] == "Deployment" else 1
        surge = -(-replicas // 4)  # a RollingUpdate's default maxSurge: 25 %, rounded up
        if doc["kind"] == "Deployment":
            assert "strategy" not in doc["spec"], doc["metadata"]["name"]
            replicas += surge
        if role_of(container) != "topics":  # the topics job never opens the database
            total += replicas * max_connections(settings)
    assert total <= PG_CONNECTION_BUDGET


def test_compose_database_pools_fit_postgres_max_connections(
    clean_env: pytest.MonkeyPatch,
) -> None:
    total = 0
    for name, service in onevoice_services(compose()).items():
        if name != "topics":
            settings = settings_from(compose_env(service), clean_env)
            replicas = service.get("deploy", {}).get("replicas", 1)
            total += replicas * max_connections(settings)
    assert total <= PG_CONNECTION_BUDGET


def test_k8s_services_select_the_http_deployments() -> None:
    selected = set()
    for service in k8s_objects("Service"):
        selector = service["spec"]["selector"]
        matches = [
            (d, c)
            for d, c in workloads()
            if d["kind"] == "Deployment"
            and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, service["metadata"]["name"]
        [(_, container)] = matches
        for port in service["spec"]["ports"]:
            container_port(container, port["targetPort"])
        selected.add(role_of(container))
    assert selected == HTTP_ROLES  # the projector has no Service


def test_k8s_database_url_is_a_marked_placeholder_kept_out_of_the_applied_dir() -> None:
    top_level = [load_json(path) for path in sorted(K8S.glob("*.json"))]
    assert "Secret" not in {doc["kind"] for doc in top_level}  # `kubectl apply -f k8s/` skips it
    for config in k8s_objects("ConfigMap"):
        assert "ONEVOICE_DATABASE_URL" not in config["data"]
    [secret] = k8s_objects("Secret")
    assert "PLACEHOLDER" in secret["metadata"]["annotations"]["onevoice/placeholder"]
    url = make_url(secret["stringData"]["ONEVOICE_DATABASE_URL"])
    assert url.password == "CHANGE-ME"
    # The first key's slot is there and empty: the repository never holds a usable key.
    assert secret["stringData"]["ONEVOICE_BOOTSTRAP_KEY"] == ""
    assert "ONEVOICE_BOOTSTRAP_KEY" in secret["metadata"]["annotations"]["onevoice/placeholder"]


# -- probes against the real apps -------------------------------------------------------------


async def get_all(app: Any, paths: list[str]) -> dict[str, int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        return {path: (await client.get(path)).status_code for path in paths}


def test_the_probe_paths_are_served_by_each_service_role(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    probed = {
        probe["httpGet"]["path"]
        for _, c in workloads()
        for key in ("livenessProbe", "readinessProbe", "startupProbe")
        if (probe := c.get(key))
    }
    for service in onevoice_services(compose()).values():
        if "healthcheck" in service:
            probed |= set(re.findall(r"http://[^/']+(/[a-z]+)", service["healthcheck"]["test"][3]))
    assert probed == {"/healthz", "/readyz"}
    assert probed <= {getattr(route, "path", "") for route in health.router.routes}
    built = bootstrap.build(Settings(data_dir=tmp_path, partitions=2))
    try:
        for role in sorted(SERVICE_ROLES):
            answers = asyncio.run(get_all(bootstrap.build_app(built, role), sorted(probed)))
            assert answers == {path: 200 for path in probed}, role
    finally:
        built.close()


# -- the image --------------------------------------------------------------------------------


def test_dockerfile_base_entrypoint_user_and_install() -> None:
    instructions = dockerfile()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert json.loads(docker_values("ENTRYPOINT")[-1]) == ["onevoice"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert scripts["scripts"]["onevoice"] == "services.cli:main"
    assert json.loads(docker_values("CMD")[-1]) == ["api"]
    user = docker_values("USER")[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert docker_values("EXPOSE") == [str(Settings.model_fields["port"].default)]
    installs = [rest for rest in docker_values("RUN") if "pip install" in rest]
    assert len(installs) == 1
    assert re.search(r"pip install -c \S*constraints\.txt \S+", installs[0])
    assert not re.search(r"\s(-e|--editable)\s", installs[0])


def test_image_layout_gives_bootstrap_its_alembic_ini() -> None:
    # bootstrap.ROOT is the parent of the `services` package; alembic.ini lives there and
    # points at the migrations next to itself.
    package_parent = Path(services.__file__).resolve().parent.parent
    assert package_parent == bootstrap.ROOT
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(bootstrap.ROOT / "alembic.ini", encoding="utf-8")
    assert ini["alembic"]["script_location"] == "%(here)s/migrations"
    # In the image: WORKDIR /app is on PYTHONPATH, so `services` imports from /app/services,
    # ROOT is /app, and alembic.ini + migrations/ must be copied there.
    [workdir] = docker_values("WORKDIR")
    app_root = PurePosixPath(workdir)
    assert str(app_root) in docker_env()["PYTHONPATH"].split(":")
    copies: dict[str, PurePosixPath] = {}
    for rest in docker_values("COPY"):
        *sources, dest = [part for part in shlex.split(rest) if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        copies.update({source.rstrip("/"): app_root / dest for source in sources})
    assert copies["services"] == app_root / "services"
    assert copies["migrations"] == app_root / "migrations"
    assert copies["alembic.ini"] == app_root / "alembic.ini"
