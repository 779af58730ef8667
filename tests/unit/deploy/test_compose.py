"""docker-compose.yaml and the Dockerfile, read as data: what a team deployment must have.

No Docker engine runs here; these tests and `docker-compose config`
(tests/integration/deploy/test_compose_config.py)
are what stands between a typo and a broken team deployment.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from bascule.paths import LAB_PLAN, REPO_ROOT
from bascule.plan import load_plan

pytestmark = pytest.mark.unit

COMPOSE = REPO_ROOT / "docker-compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"

AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker")
CORE_SERVICES = (*AIRFLOW_SERVICES, "postgres", "redis", "airflow-init")
# Run to completion and exit: a health check means nothing for them.
ONE_SHOT = ("airflow-init", "lab-seed", "oracle-connection")
MOUNTS = {"dags": "/opt/airflow/dags", "plugins": "/opt/airflow/plugins",
          "expectations": "/opt/airflow/expectations", "include": "/opt/airflow/include"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _long_running(services: dict[str, dict[str, Any]]) -> list[str]:
    return [name for name in services if name not in ONE_SHOT]


def test_required_services_exist(services):
    missing = [s for s in (*CORE_SERVICES, "flower", "lab-legacy", "lab-new", "lab-seed", "oracle-free")
               if s not in services]
    assert missing == []


def test_core_services_start_without_a_profile_and_optional_ones_need_theirs(services):
    assert [s for s in CORE_SERVICES if services[s].get("profiles")] == []
    assert services["lab-legacy"]["profiles"] == ["lab"]
    assert services["lab-new"]["profiles"] == ["lab"]
    assert services["lab-seed"]["profiles"] == ["lab"]
    assert services["oracle-free"]["profiles"] == ["oracle"]
    assert services["flower"]["profiles"] == ["flower"]
    # A service without a profile must never depend on one that has a profile: `up` would fail.
    for name in CORE_SERVICES:
        for dep in services[name].get("depends_on", {}):
            assert not services[dep].get("profiles"), f"{name} depends on profiled {dep}"


def test_every_long_running_service_has_a_health_check_and_restarts(services):
    for name in _long_running(services):
        check = services[name].get("healthcheck")
        assert check and check.get("test"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "retries", "start_period"):
            assert key in check, f"{name}: healthcheck without {key}"
        assert services[name].get("restart") == "always", name


def test_every_long_running_service_has_resource_limits(services):
    for name in _long_running(services):
        limits = services[name].get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory"} <= set(limits), f"{name}: limits {limits}"


def test_one_shot_services_are_not_restarted_and_gate_the_others(services):
    assert services["lab-seed"]["restart"] == "no"
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
    assert services["lab-seed"]["depends_on"] == {
        "lab-legacy": {"condition": "service_healthy"}, "lab-new": {"condition": "service_healthy"}}


def test_executor_is_celery_with_redis_and_postgres(services):
    for name in (*AIRFLOW_SERVICES, "airflow-init", "flower"):
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in env[
            "AIRFLOW__CELERY__BROKER_URL"]
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert services["airflow-worker"]["command"] == "celery worker"
    assert "AIRFLOW__CELERY__WORKER_CONCURRENCY" in services["airflow-worker"]["environment"]
    # Tasks fork from the worker: it pre-imports bascule's heavy modules (plugins/bascule_preload.py).
    worker_env = services["airflow-worker"]["environment"]
    assert worker_env["BASCULE_PRELOAD"] == "1" and worker_env["AIRFLOW__CORE__LAZY_LOAD_PLUGINS"] == "False"
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")


def test_project_directories_are_mounted_into_every_airflow_container(services):
    for name in (*AIRFLOW_SERVICES, "airflow-init", "flower"):
        mounts = {}
        for volume in services[name]["volumes"]:
            # The host side may hold "${VAR:-.}", so split on the container path, which starts with "/".
            match = re.fullmatch(r"(.+):(/[^:]+)(?::(?:ro|rw))?", volume)
            assert match, volume
            mounts[match.group(2)] = match.group(1)
        for directory, target in MOUNTS.items():
            assert target in mounts, f"{name}: {directory} not mounted"
            assert mounts[target] == f"${{AIRFLOW_PROJ_DIR:-.}}/{directory}", f"{name}: {mounts[target]}"
        assert services[name]["environment"]["PYTHONPATH"] == "/opt/airflow/include"


def test_image_is_built_from_the_projects_dockerfile(services):
    for name in (*AIRFLOW_SERVICES, "airflow-init", "flower", "lab-seed"):
        build = services[name]["build"]
        assert build == {"context": ".", "dockerfile": "Dockerfile"}, name
    assert DOCKERFILE.is_file()


def test_dockerfile_installs_the_pinned_stack_from_the_lock():
    text = DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert instructions[0] == "FROM apache/airflow:3.3.2-python3.11"
    assert re.search(r"^COPY .*requirements\.lock", text, re.MULTILINE)
    install = [line for line in instructions if "requirements.lock" in line and "install" in line]
    assert install and "--no-deps" in install[0] and " -r " in install[0]
    assert re.search(r"pip install .*--no-deps -e /opt/airflow", text)
    # Never a second, resolving install that could drift from the lock.
    for line in instructions:
        if re.search(r"\b(pip|uv pip) install\b", line):
            assert "--no-deps" in line, line
    assert "bascule plan check" in text


def test_dockerignore_keeps_the_venv_and_secrets_out_of_the_build_context():
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".lab", ".airflow", ".env", ".git"} <= ignored


def test_lab_profile_servers_are_postgres_15_with_logical_replication(services):
    for name in ("lab-legacy", "lab-new"):
        svc = services[name]
        assert svc["image"] == "postgres:15"
        settings = dict(arg.split("=", 1) for arg in svc["command"] if "=" in arg)
        assert settings["wal_level"] == "logical"
        assert int(settings["max_replication_slots"]) >= 4 and int(settings["max_wal_senders"]) >= 4
        assert settings["timezone"] == "UTC"
    assert services["lab-legacy"]["volumes"] != services["lab-new"]["volumes"]


def test_lab_seed_runs_the_remote_seeding_module(services):
    seed = services["lab-seed"]
    assert seed["entrypoint"] == ["python", "-m", "bascule_lab.remote"]
    env = seed["environment"]
    assert "host=lab-legacy" in env["BASCULE_LAB_SOURCE_DSN"]
    assert "host=lab-new" in env["BASCULE_LAB_TARGET_DSN"]
    for var in ("BASCULE_LAB_BASCULE_ADMIN_PASSWORD", "BASCULE_LAB_CLINIC_APP_PASSWORD",
                "BASCULE_LAB_BASCULE_REPL_PASSWORD"):
        assert var in env


def _conn_ids(env: dict[str, str]) -> set[str]:
    return {key.removeprefix("AIRFLOW_CONN_").lower() for key in env if key.startswith("AIRFLOW_CONN_")}


def test_lab_connections_cover_every_connection_the_lab_plan_needs(services, tmp_path):
    import json
    import stat

    from bascule.privacy.keys import weak_key_reason
    from bascule_lab.remote import write_connections

    plan = load_plan(LAB_PLAN)
    needed = {plan.source.conn_id, plan.target.conn_id, plan.source.app_conn_id, plan.target.app_conn_id,
              plan.validation.key_hash_conn_id, plan.decisions.key_conn_id}
    logical = plan.replication.postgres_logical
    if logical is not None:
        needed.add(logical.replication_conn_id)
    needed.discard(None)
    env = services["lab-seed"]["environment"]
    path = tmp_path / "connections.json"
    passwords = {"bascule_admin": "a", "clinic_app": "b", "bascule_repl": "c"}
    write_connections(path, env["BASCULE_LAB_SOURCE_DSN"], env["BASCULE_LAB_TARGET_DSN"], passwords=passwords,
                      dbname="clinic")
    conns = json.loads(path.read_text())
    assert needed <= set(conns)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Connections point at the compose lab servers, never at a host outside the file.
    assert conns[plan.source.conn_id]["host"] == "lab-legacy" and conns[plan.target.conn_id]["host"] == "lab-new"
    # The lab's keys are drawn at random, once: strong, in no file of the repository, kept on a re-run.
    key = conns[plan.validation.key_hash_conn_id]["password"]
    assert weak_key_reason(key) is None
    write_connections(path, env["BASCULE_LAB_SOURCE_DSN"], env["BASCULE_LAB_TARGET_DSN"], passwords=passwords,
                      dbname="clinic")
    assert json.loads(path.read_text())[plan.validation.key_hash_conn_id]["password"] == key


def test_no_production_connection_or_secret_in_the_compose_file(services):
    production = load_plan(REPO_ROOT / "include" / "plans" / "production-oracle.example.yaml")
    prod_ids = {production.source.conn_id, production.target.conn_id, production.validation.key_hash_conn_id,
                production.notifications.slack_conn_id}
    assert not prod_ids & _conn_ids(services["airflow-worker"]["environment"])
    # Production names its own backend; the file's default is none.
    assert services["airflow-worker"]["environment"]["AIRFLOW__SECRETS__BACKEND"] == "${BASCULE_SECRETS_BACKEND:-}"


def test_gate_answerers_of_the_lab_plan_are_users_who_may_answer(services):
    users = dict(pair.split(":")[:2] for pair in re.sub(
        r"^\$\{[A-Z_]+:-(.*)\}$", r"\1",
        services["airflow-apiserver"]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]).split(","))
    plan = load_plan(LAB_PLAN)
    for gate_id, gate in plan.gates.items():
        for user in gate.assigned_users:
            assert users.get(user) in ("user", "op", "admin"), f"gate {gate_id}: {user} cannot answer"


def test_pools_bound_sessions_per_database_of_the_lab_plan(services):
    script = "\n".join(services["airflow-init"]["command"])
    plan = load_plan(LAB_PLAN)
    for conn_id in (plan.source.conn_id, plan.target.conn_id):
        assert re.search(rf"airflow pools set {conn_id} ", script), conn_id
    assert "airflow db migrate" in script


def test_oracle_profile_uses_the_public_free_image_and_says_what_it_is_not(services):
    oracle = services["oracle-free"]
    assert oracle["image"] == "container-registry.oracle.com/database/free:latest"
    text = COMPOSE.read_text()
    assert "23ai, NOT 19c" in text and "NO GoldenGate" in text
    writer = services["oracle-connection"]
    assert writer["profiles"] == ["oracle"]
    assert '"conn_type": "oracle", "host": "oracle-free"' in writer["command"][0]


def test_compose_file_stays_within_what_docker_compose_1_29_understands(compose):
    # No top-level "version" (1.29 then reads the compose spec, profiles included) and no
    # keys that only Compose v2 knows.
    assert "version" not in compose
    assert set(compose) <= {"services", "volumes", "networks", "x-airflow-common"}
    text = COMPOSE.read_text()
    for v2_only in ("develop:", "include:\n", "models:", "configs:"):
        assert v2_only not in text


def test_every_airflow_container_shares_the_evidence_volume_and_the_public_url(compose, services):
    # ADR 0044: two workers and the api-server read and write the same evidence; no worker-local reports.
    assert "bascule-evidence" in compose["volumes"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__BASCULE__EVIDENCE_URL"].endswith("file:///opt/airflow/evidence}"), name
        assert "bascule-evidence:/opt/airflow/evidence" in services[name]["volumes"], name
        # Links to Required Actions (Slack, the migration view) are built from it.
        assert env["AIRFLOW__API__BASE_URL"].startswith("${BASCULE_AIRFLOW_URL:-http"), name


# What only a lab or an Oracle Free service may carry: its hosts, its passwords' variables, a connection.
LAB_MARKERS = ("AIRFLOW_CONN_", "lab-legacy", "lab-new", "oracle-free", "BASCULE_LAB_", "lab-only-hmac",
               "BASCULE_ORACLE_PASSWORD", "LabOnly_", "connections.json")


def test_no_service_outside_the_lab_and_oracle_profiles_carries_a_lab_connection_or_key(services):
    for name, service in services.items():
        if set(service.get("profiles") or ()) & {"lab", "oracle"}:
            continue
        env = service.get("environment") or {}
        assert not [k for k in env if str(k).startswith("AIRFLOW_CONN_")], name
        text = yaml.safe_dump({k: v for k, v in service.items() if k != "depends_on"})
        carried = [m for m in LAB_MARKERS if m in text]
        assert carried == [], f"{name} carries {carried}"
    # The lab reaches its connections through the secrets backend its env file names; production sets its own.
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__SECRETS__BACKEND"] == "${BASCULE_SECRETS_BACKEND:-}"
    lab_env = (REPO_ROOT / "compose" / "lab.env").read_text()
    assert "LocalFilesystemBackend" in lab_env and "PASSWORD" not in lab_env and "KEY=" not in lab_env
    assert "--connections-file" in services["lab-seed"]["command"]


def test_a_team_deployment_is_private_by_default(services):
    env = services["airflow-apiserver"]["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(":-airflow.providers.fab.auth_manager.fab_auth_manager."
                                                       "FabAuthManager}")
    assert "SimpleAuthManager" in (REPO_ROOT / "compose" / "lab.env").read_text()
    # Only the TLS proxy is published to the network; the API server on the loopback; Flower, Redis not at all.
    published = {name: s.get("ports", []) for name, s in services.items() if s.get("ports")}
    assert set(published) == {"tls-proxy", "airflow-apiserver", "oracle-free"}
    assert all(p.startswith("127.0.0.1:") for p in published["airflow-apiserver"] + published["oracle-free"])
    assert "reverse_proxy airflow-apiserver:8080" in (REPO_ROOT / "compose" / "Caddyfile").read_text()
    assert "ports" not in services["flower"] and "ports" not in services["redis"]
    # The gate role reads the migration DAGs and answers gates, and gets no right on task instances.
    script = "\n".join(services["airflow-init"]["command"])
    role = [line for line in script.splitlines() if '"Cutover Gate"' in line]
    assert any('"HITL Detail" -a can_read can_edit' in line for line in role)
    assert not [line for line in role if "Task Instances" in line]
