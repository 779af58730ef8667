"""The lab's Airflow stack under the CeleryExecutor, as configuration: Redis, two named workers, one database."""

from __future__ import annotations

from pathlib import Path

import pytest

from bascule_lab.airflow_env import worker_hostname
from bascule_lab.airflow_stack import AirflowStack, AirflowStackError, component_command, component_env

pytestmark = pytest.mark.unit

BASE = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg://airflow_meta:pw@127.0.0.1:5999/airflow"}


def test_a_celery_stack_adds_two_named_workers_fed_by_its_redis_on_the_same_database(tmp_path: Path) -> None:
    stack = AirflowStack(home=tmp_path, env=BASE, users={"u": "user"}, executor="celery")
    assert stack.components[-2:] == ("celery-worker-1", "celery-worker-2")
    stack.port, stack.redis_port = 8081, 6390
    env = stack.env()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6390/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + BASE["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    worker = component_env(env, "celery-worker-2")
    assert worker["BASCULE_LAB_WORKER_NAME"] == "celery-worker-2"
    assert worker["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "bascule_lab.airflow_env.worker_hostname"
    assert component_command("airflow", "celery-worker-2")[:3] == ["airflow", "celery", "worker"]
    assert "--skip-serve-logs" in component_command("airflow", "celery-worker-2")
    assert component_command("airflow", "scheduler") == ["airflow", "scheduler"]


def test_the_local_stack_is_unchanged_and_a_bad_executor_is_named(tmp_path: Path, monkeypatch) -> None:
    assert AirflowStack(home=tmp_path, env=BASE, users={}).components == (
        "api-server", "scheduler", "dag-processor", "triggerer")
    with pytest.raises(AirflowStackError, match="executor must be 'local' or 'celery', got 'k8s'"):
        AirflowStack(home=tmp_path, env=BASE, users={}, executor="k8s")
    monkeypatch.setenv("BASCULE_LAB_WORKER_NAME", "celery-worker-1")
    assert worker_hostname() == "celery-worker-1"
